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
