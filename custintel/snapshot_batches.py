"""The newest snapshot of the offline feature table as a stream of Arrow record batches.

Only the entity key, the timestamp and the requested feature columns are decoded, only from the
row groups whose timestamp statistics can hold the newest snapshot (the others are skipped
unread), the file is memory-mapped, and the next batch is decoded on a background thread while
the caller works on the current one (Arrow's decoder releases the GIL).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from custintel.errors import UserError
from custintel.features.schema import ENTITY_KEY, TIMESTAMP

BATCH_ROWS = 65_536


def check_columns(features_file: Path, columns: list[str] | None) -> list[str]:
    """The file's column names; a UserError when it is missing or lacks the key, timestamp or `columns`."""
    import pyarrow.parquet as pq

    if not Path(features_file).is_file():
        raise UserError(f"{features_file} is missing: run `custintel features` first.")
    present = pq.read_schema(features_file).names
    missing = [name for name in [ENTITY_KEY, TIMESTAMP, *(columns or [])] if name not in present]
    if missing:
        raise UserError(f"{features_file} lacks the columns {missing} the model needs; rebuild the features "
                        "(`custintel features`) or score with a model trained on them (--model-tag).")
    return present


@dataclass
class NewestSnapshot:
    parquet: object  # pyarrow.parquet.ParquetFile (memory-mapped)
    newest: pa.Scalar | None  # the newest timestamp (None: the table has no rows)
    row_groups: list[int]  # the row groups that can hold rows of that timestamp
    rows_bound: int  # rows in those row groups (an upper bound of the snapshot's size)

    @classmethod
    def open(cls, features_file: Path, columns: list[str]) -> NewestSnapshot:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        check_columns(features_file, columns)
        parquet = pq.ParquetFile(features_file, memory_map=True, pre_buffer=False)  # zero-copy pages
        meta, position = parquet.metadata, parquet.schema_arrow.get_field_index(TIMESTAMP)
        highs = [_max(meta.row_group(g).column(position).statistics) for g in range(meta.num_row_groups)]
        groups = list(range(meta.num_row_groups))
        if highs and None not in highs:  # statistics: only the row groups reaching the highest maximum
            groups = [g for g in groups if highs[g] == max(highs)]
        # the exact newest timestamp from those groups' timestamp column (statistics may round it)
        newest = pc.max(parquet.read_row_groups(groups, columns=[TIMESTAMP])[TIMESTAMP]) if groups else None
        if newest is None or not newest.is_valid:
            return cls(parquet, None, [], 0)
        return cls(parquet, newest, groups, sum(meta.row_group(g).num_rows for g in groups))

    def batches(self, columns: list[str], batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """Record batches (key, timestamp, `columns`) of the newest snapshot's rows, file order."""
        if self.newest is None:
            return
        source = self.parquet.iter_batches(batch_size=batch_rows, row_groups=self.row_groups,
                                           columns=[ENTITY_KEY, TIMESTAMP, *columns], use_threads=False)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot-read") as reader:
            pending = reader.submit(next, source, None)
            while (batch := pending.result()) is not None:
                pending = reader.submit(next, source, None)
                yield self._newest_rows(batch)

    def _newest_rows(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        import pyarrow.compute as pc

        stamps = batch.column(1)
        bounds = pc.min_max(stamps)
        if stamps.null_count == 0 and bounds["min"] == self.newest and bounds["max"] == self.newest:
            return batch
        return batch.filter(pc.equal(stamps, self.newest))


def _max(statistics) -> object | None:
    """A row group's column maximum from its statistics; None when it has none."""
    return statistics.max if statistics is not None and statistics.has_min_max else None
