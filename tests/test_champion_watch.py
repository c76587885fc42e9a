"""The server's champion watcher on a real pointer and ledger (the loader is a plain function, so
no model store is needed; the real server is tested in tests/test_lifecycle.py)."""

from __future__ import annotations

import threading

import pytest

from custintel import registry
from custintel.champion_watch import ChampionWatcher
from custintel.errors import UserError
from custintel.paths import DataPaths

ACTOR = {"via": "test", "user": "pytest"}


def _promote(paths: DataPaths, tag: str) -> None:
    with registry.locked(paths):
        registry.record(paths, "promoted", tag, ACTOR, reasons=["test"])


def _watcher(paths: DataPaths, loads: list[str], broken: set[str] = frozenset(), **kwargs) -> ChampionWatcher:
    def load(tag: str) -> str:
        if tag in broken:
            raise OSError(f"cannot read {tag}")
        loads.append(tag)
        return f"model {tag}"

    return ChampionWatcher(paths, load, describe=lambda tag: {"tag": tag}, **kwargs)


def test_no_champion_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="No champion model yet"):
        _watcher(DataPaths(tmp_path), [], interval_s=0)


def test_swaps_on_a_new_champion_and_keeps_serving_when_loading_fails(tmp_path):
    paths, loads = DataPaths(tmp_path), []
    _promote(paths, "m:a")
    watcher = _watcher(paths, loads, broken={"m:bad"}, interval_s=0)
    assert watcher.current().model == "model m:a" and not watcher.check()
    _promote(paths, "m:b")
    assert watcher.check() and watcher.current().tag == "m:b" and watcher.current().metadata == {"tag": "m:b"}
    _promote(paths, "m:bad")
    assert not watcher.check()
    assert watcher.current().tag == "m:b" and "cannot read m:bad" in watcher.last_error
    registry.rollback(paths, ACTOR)  # back from m:bad to m:b, which is still being served
    assert not watcher.check() and watcher.current().tag == "m:b"
    assert loads == ["m:a", "m:b"]  # m:b was served throughout; nothing reloaded for nothing


def test_a_pinned_version_is_never_swapped(tmp_path):
    paths, loads = DataPaths(tmp_path), []
    _promote(paths, "m:a")
    watcher = _watcher(paths, loads, pinned_tag="m:pinned", interval_s=0.01)
    _promote(paths, "m:b")
    assert not watcher.check()
    assert watcher.current().tag == "m:pinned" and loads == ["m:pinned"]


def test_background_thread_swaps_while_readers_always_get_a_whole_version(tmp_path):
    paths, loads = DataPaths(tmp_path), []
    _promote(paths, "m:0")
    watcher = _watcher(paths, loads, interval_s=0.01)
    seen, stop = [], threading.Event()

    def read():
        while not stop.is_set():
            served = watcher.current()
            seen.append((served.tag, served.model))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    try:
        for i in range(1, 6):
            _promote(paths, f"m:{i}")
            for _ in range(1000):  # up to ~10 s for the watcher to pick it up
                if watcher.current().tag == f"m:{i}":
                    break
                stop.wait(0.01)
            assert watcher.current().tag == f"m:{i}"
    finally:
        stop.set()
        for reader in readers:
            reader.join()
        watcher.stop()
    assert all(model == f"model {tag}" for tag, model in seen)  # tag and model always belong together
    assert loads == [f"m:{i}" for i in range(6)]
