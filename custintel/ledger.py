"""The promotion ledger: an append-only JSONL file, <data_dir>/registry/ledger.jsonl.

One line per promotion, rejection, manual promotion and rollback, with who triggered it, the
metric deltas and the model's lineage. Lines are only ever appended (never rewritten); the
champion history, and so what a rollback goes back to, is replayed from it.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

LEDGER_FILE = "ledger.jsonl"
# Events that make their tag the champion; "rollback" pops the current champion off the history.
CHAMPION_EVENTS = ("promoted", "manual_promotion")


def ledger_path(registry_dir: Path) -> Path:
    return registry_dir / LEDGER_FILE


def read_entries(registry_dir: Path) -> list[dict]:
    path = ledger_path(registry_dir)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_entry(registry_dir: Path, entry: dict) -> dict:
    """Append one entry (numbered `seq`, timestamped `at`) and fsync it. The caller holds the
    registry lock, so `seq` is the line number."""
    registry_dir.mkdir(parents=True, exist_ok=True)
    entry = {"seq": len(read_entries(registry_dir)) + 1, "at": datetime.now(UTC).isoformat(), **entry}
    with open(ledger_path(registry_dir), "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, default=str, sort_keys=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return entry


def champion_history(entries: list[dict]) -> list[str]:
    """The stack of champions replayed from the ledger, oldest first; the last is the champion.

    A promotion pushes its tag; a rollback pops the current champion, so repeated rollbacks walk
    further back (a, b, c -> rollback -> a, b -> rollback -> a) instead of toggling. A champion
    from before the ledger existed (an older pointer) is the bottom of the stack."""
    stack: list[str] = []
    for entry in entries:
        if entry["event"] in CHAMPION_EVENTS and not stack and entry.get("champion_before"):
            stack.append(entry["champion_before"])
        if entry["event"] in CHAMPION_EVENTS and (not stack or stack[-1] != entry["tag"]):
            stack.append(entry["tag"])
        elif entry["event"] == "rollback" and stack:
            stack.pop()
    return stack
