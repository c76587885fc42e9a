"""Drift-triggered retrains: at most one per drift episode and champion.

The `monitor` flow starts `retrain` when the policy says so. If that retrain's challenger is rejected,
the drift persists against the same champion and the policy would start another retrain every day.
Instead the next one waits until the episode ends: the champion changes (a promotion or a rollback)
or a monitoring run reports no drift. The weekly `retrain` deployment is not affected.

State: <data_dir>/monitoring/retrain_trigger.json, {"champion", "run_id", "at"} of the last
drift-triggered retrain of the current episode.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from custintel.config import Settings


def _state_file(settings: Settings) -> Path:
    return settings.data_dir / "monitoring" / "retrain_trigger.json"


def earlier_retrain(settings: Settings, champion: str) -> dict | None:
    """The drift-triggered retrain of this episode against `champion`, if there was one."""
    path = _state_file(settings)
    state = json.loads(path.read_text()) if path.is_file() else None
    return state if state and state.get("champion") == champion else None


def record(settings: Settings, champion: str, run_id: str) -> None:
    path = _state_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"champion": champion, "run_id": run_id,
                               "at": datetime.now(UTC).isoformat(timespec="seconds")}))
    tmp.replace(path)


def end_episode(settings: Settings) -> None:
    """No drift any more: the next drift may trigger a retrain again."""
    _state_file(settings).unlink(missing_ok=True)
