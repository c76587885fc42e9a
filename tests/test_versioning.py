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
