"""Hot swap of the served champion: a background thread checks the champion pointer's file
signature every `serve.reload_interval_s`; when the champion changed it loads the new version
fully (beside the old one, which keeps answering) and then swaps a single reference. Each request
reads that reference once, so it is answered wholly by the old or wholly by the new model and no
request waits for or fails on a swap. A version that fails to load is logged and the old one
keeps serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from custintel import registry
from custintel.errors import UserError
from custintel.paths import DataPaths

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Served:
    tag: str
    model: object  # what the loader returned (the service's OnlineScorer)
    metadata: dict  # the store's lineage of the version
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())


class ChampionWatcher:
    def __init__(self, paths: DataPaths, load: Callable[[str], object], pinned_tag: str | None = None,
                 interval_s: float = 2.0, describe: Callable[[str], dict] = registry.model_metadata) -> None:
        """`load(tag)` builds what serves a version; `describe(tag)` its lineage (the store's metadata)."""
        self._paths, self._load, self._describe, self._pinned = paths, load, describe, pinned_tag
        self._signature = self._pointer_signature()
        tag = pinned_tag or registry.champion_tag(paths)
        if tag is None:
            raise UserError("No champion model yet: run `custintel retrain` before serving.")
        self._served = self._make(tag)
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread = None
        if pinned_tag is None and interval_s > 0:
            self._thread = threading.Thread(target=self._watch, args=(interval_s,), daemon=True,
                                            name="champion-watch")
            self._thread.start()

    def current(self) -> Served:
        return self._served

    def stop(self) -> None:
        self._stop.set()

    def _make(self, tag: str) -> Served:
        return Served(tag=tag, model=self._load(tag), metadata=self._describe(tag))

    def _pointer_signature(self) -> tuple | None:
        try:
            stat = registry.pointer_path(self._paths).stat()
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_mtime_ns, stat.st_size  # os.replace gives a new inode

    def check(self) -> bool:
        """Swap in the pointer's champion if it changed; True when a new version is now served."""
        if self._pinned is not None:
            return False
        signature = self._pointer_signature()
        if signature == self._signature:
            return False
        tag = registry.champion_tag(self._paths)
        if tag is None or tag == self._served.tag:
            self._signature = signature
            return False
        try:
            served = self._make(tag)
        except Exception as exc:  # keep serving the old champion; retried on the next change
            self.last_error = f"{tag}: {type(exc).__name__}: {exc}"
            log.exception("could not load the new champion %s; still serving %s", tag, self._served.tag)
            self._signature = signature
            return False
        self._served, self._signature, self.last_error = served, signature, None
        log.info("now serving champion %s", tag)
        return True

    def _watch(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.check()
            except Exception:  # never let the watcher die
                log.exception("champion check failed")
