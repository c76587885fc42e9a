import shutil

from custintel.data import versioning


def test_add_push_then_pull_restores_the_same_version(tmp_path):
    repo, remote = tmp_path / "versioned", tmp_path / "remote"
    versioning.configure_remote(repo, str(remote))
    (repo / "raw").mkdir()
    (repo / "raw" / "t.csv").write_text("a,b\n1,2\n")
    version = versioning.track_and_push(repo)
    assert any(remote.rglob("*"))
    shutil.rmtree(repo / "raw")
    shutil.rmtree(repo / ".dvc" / "cache")
    assert versioning.pull(repo) == version
    assert (repo / "raw" / "t.csv").read_text() == "a,b\n1,2\n"


def _catalogued(repo, files: dict[str, str], origin: dict) -> str:
    from custintel.data import catalogue

    shutil.rmtree(repo / "raw", ignore_errors=True)
    (repo / "raw").mkdir(parents=True)
    for name, text in files.items():
        (repo / "raw" / name).write_text(text)
    versioning.track_and_push(repo)
    return catalogue.record(repo, origin, {"files": len(files)})


def test_tags_name_versions_and_checkout_restores_exactly_that_version(tmp_path):
    import pytest

    from custintel.data import catalogue
    from custintel.errors import UserError

    repo = tmp_path / "versioned"
    versioning.configure_remote(repo, str(tmp_path / "remote"))
    v1 = _catalogued(repo, {"t.csv": "1\n"}, {"n": 1})
    v2 = _catalogued(repo, {"t.csv": "2\n", "extra.csv": "x\n"}, {"n": 2})
    assert catalogue.add_tag(repo, "baseline-2024", v1[:8]) == v1
    assert catalogue.add_tag(repo, "latest") == v2  # default: the current version
    assert catalogue.resolve(repo, "baseline-2024") == v1 and catalogue.resolve(repo, v2[:6]) == v2
    catalogue.add_tag(repo, "latest", v1)  # a tag names one version at a time: it moves
    assert [v["tags"] for v in catalogue.list_versions(repo)] == [["baseline-2024", "latest"], []]
    for bad in ("has space", "abc123", "../up"):
        with pytest.raises(UserError, match="is not usable"):
            catalogue.add_tag(repo, bad)
    catalogue.checkout(repo, catalogue.resolve(repo, "baseline-2024"))
    assert sorted(p.name for p in (repo / "raw").iterdir()) == ["t.csv"]  # v2's extra file is gone
    assert (repo / "raw" / "t.csv").read_text() == "1\n"
    # recording the same data again keeps its tags
    catalogue.record(repo, {"n": 1}, {"files": 1}, "ignored-for-known-versions")
    assert catalogue.resolve(repo, "baseline-2024") == v1


def test_new_versions_get_a_unique_name(tmp_path):
    from custintel.data import catalogue

    repo = tmp_path / "versioned"
    versioning.configure_remote(repo, str(tmp_path / "remote"))
    _catalogued(repo, {"t.csv": "1\n"}, {"n": 1})
    for text in ("2\n", "3\n"):
        shutil.rmtree(repo / "raw")
        (repo / "raw").mkdir()
        (repo / "raw" / "t.csv").write_text(text)
        versioning.track_and_push(repo)
        catalogue.record(repo, {"n": text}, {}, "generated-none-n10-seed1")
    assert [v["tags"] for v in catalogue.list_versions(repo)] == [
        [], ["generated-none-n10-seed1"], ["generated-none-n10-seed1-2"]]


def _rot(path, data: bytes) -> None:
    """Replace a read-only DVC object's bytes keeping its size and mtime (how bit rot looks to DVC)."""
    import os

    stat = path.stat()
    path.chmod(0o644)
    path.write_bytes(data)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_corrupted_or_partial_cache_is_caught_by_hash_with_the_fix(tmp_path):
    import pytest

    from custintel.data import catalogue
    from custintel.data.integrity import cache_object, md5_file
    from custintel.errors import UserError

    repo, remote = tmp_path / "versioned", tmp_path / "remote"
    versioning.configure_remote(repo, str(remote))
    version = _catalogued(repo, {"a.csv": "a,b\n1,2\n" * 50, "b.csv": "x\n" * 50}, {"n": 1})
    a_obj, b_obj = (cache_object(repo, md5_file(repo / "raw" / n)) for n in ("a.csv", "b.csv"))
    # bit rot in the local cache: same size and mtime, so DVC checks it out without a word
    _rot(a_obj, b"Z" + a_obj.read_bytes()[1:])
    with pytest.raises(UserError) as caught:
        catalogue.checkout(repo, version)
    message = str(caught.value)
    assert str(repo / "raw" / "a.csv") in message and "does not match data version" in message
    assert f"rm -f {a_obj}" in message and "custintel ingest" in message and "dvc pull --force" in message
    # the fix the message gives: the object is fetched again from the remote
    a_obj.unlink()
    assert catalogue.checkout(repo, version) == version
    # a truncated object (in the cache and in the remote: a partial push) is caught too
    remote_b = remote / b_obj.relative_to(repo / ".dvc" / "cache")
    for obj in (b_obj, remote_b):
        _rot(obj, obj.read_bytes()[:10])
    with pytest.raises(UserError, match=r"raw/b\.csv does not match .* is corrupted or truncated"):
        catalogue.checkout(repo, version)
    # an object missing from both the cache and the remote: DVC's failure, worded with the fix
    b_obj.unlink()
    remote_b.unlink()
    with pytest.raises(UserError, match=r"`dvc pull` of data version .* failed: .*partial cache"):
        catalogue.checkout(repo, version)
