"""Champion pointer, promotion ledger, rollback and the registry lock (no model store needed)."""

from __future__ import annotations

import json
import multiprocessing
import threading

import pytest

from custintel import ledger, registry
from custintel.errors import UserError
from custintel.paths import DataPaths

ACTOR = {"via": "test", "user": "pytest"}


def _promote(paths: DataPaths, tag: str) -> dict:
    with registry.locked(paths):
        return registry.record(paths, "promoted", tag, ACTOR, reasons=["test"], deltas={"delta": 0.01})


def test_ledger_is_append_only_and_rollbacks_walk_back(tmp_path):
    paths = DataPaths(tmp_path)
    assert registry.champion_tag(paths) is None
    snapshots = []

    def snapshot():
        snapshots.append(ledger.ledger_path(paths.registry).read_bytes())

    for tag in ("m:a", "m:b", "m:c"):
        _promote(paths, tag)
        snapshot()
    with registry.locked(paths):
        registry.record(paths, "rejected", "m:x", ACTOR, reasons=["CI contains zero"])
    snapshot()
    assert registry.champion_tag(paths) == "m:c"  # a rejection leaves the champion
    assert registry.rollback(paths, ACTOR)["tag"] == "m:b"
    snapshot()
    assert registry.rollback(paths, ACTOR, "bad segment")["tag"] == "m:a"  # further back, no toggle to c
    snapshot()
    assert registry.champion_tag(paths) == "m:a"
    with pytest.raises(UserError, match="no earlier champion"):
        registry.rollback(paths, ACTOR)
    _promote(paths, "m:d")
    assert registry.rollback(paths, ACTOR)["tag"] == "m:a"
    # every write only appended: each earlier ledger is a prefix of the later one
    assert all(later.startswith(earlier) for earlier, later in zip(snapshots, snapshots[1:], strict=False))
    entries = registry.ledger_entries(paths)
    assert [e["event"] for e in entries] == [
        "promoted", "promoted", "promoted", "rejected", "rollback", "rollback", "promoted", "rollback"]
    assert [e["seq"] for e in entries] == list(range(1, 9))
    assert entries[5] | {"at": None} == entries[5] | {
        "at": None, "tag": "m:a", "champion_before": "m:b", "champion_after": "m:a", "actor": ACTOR,
        "reasons": ["bad segment"]}
    assert registry.read_champion(paths) | {"updated_at": None} == {
        "champion": "m:a", "version": 8, "updated_at": None, "event": "rollback"}


def test_champion_history_replay():
    entries = [{"event": e, "tag": t} for e, t in [
        ("promoted", "a"), ("rejected", "x"), ("manual_promotion", "b"), ("promoted", "c"), ("rollback", "b"),
        ("promoted", "d")]]
    assert ledger.champion_history(entries) == ["a", "b", "d"]
    # a champion set before the ledger existed (older pointer) can be rolled back to
    legacy = [{"event": "promoted", "tag": "b", "champion_before": "old"}]
    assert ledger.champion_history(legacy) == ["old", "b"]


def _promote_many(root: str, prefix: str, n: int) -> None:
    paths = DataPaths(__import__("pathlib").Path(root))
    for i in range(n):
        _promote(paths, f"m:{prefix}{i}")


def _assert_serialised(paths: DataPaths, expected: int) -> None:
    entries = registry.ledger_entries(paths)
    assert len(entries) == expected and [e["seq"] for e in entries] == list(range(1, expected + 1))
    # each promotion saw the previous one's result: an unbroken chain of champions
    for before, after in zip(entries, entries[1:], strict=False):
        assert after["champion_before"] == before["tag"]
    pointer = registry.read_champion(paths)
    assert pointer["champion"] == entries[-1]["tag"] and pointer["version"] == expected


def test_concurrent_promotions_in_two_processes_are_serialised(tmp_path):
    paths = DataPaths(tmp_path)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_promote_many, args=(str(tmp_path), prefix, 25)) for prefix in ("p", "q")]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    _assert_serialised(paths, 50)


def test_concurrent_promotions_in_threads_and_readers_never_see_half_a_pointer(tmp_path):
    paths = DataPaths(tmp_path)
    _promote(paths, "m:first")
    stop, seen, errors = threading.Event(), set(), []

    def read():
        while not stop.is_set():
            try:
                seen.add(json.loads(registry.pointer_path(paths).read_text())["champion"])
            except (json.JSONDecodeError, FileNotFoundError) as exc:  # a torn or missing pointer
                errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=_promote_many, args=(str(tmp_path), prefix, 20)) for prefix in "xyz"]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    reader.join()
    assert errors == []
    assert seen <= {"m:first"} | {f"m:{p}{i}" for p in "xyz" for i in range(20)} and len(seen) > 1
    _assert_serialised(paths, 61)
