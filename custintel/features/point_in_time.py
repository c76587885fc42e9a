"""Point-in-time features and labels per (customer, snapshot): features with numpy over the raw
parquet tables (read once each with pyarrow), labels with DuckDB.

    custintel features     # writes <data_dir>/offline/customer_features.parquet and labels

Features at a snapshot use only events strictly before it; labels use only events in
[snapshot, snapshot + horizon) and exist only where that window is fully observed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from custintel.features.schema import (
    BASKET,
    CHURN_LABEL,
    ENGAGEMENT,
    ENTITY_KEY,
    GROUPS,
    PURCHASE,
    REVIEW_EMB_FEATURES,
    TEXT,
    TIMESTAMP,
    VALUE_LABEL,
    FeatureGroup,
    feature_names,
    groups_for_tables,
)

_NS_PER_DAY = 86_400 * 10**9

# The windows each group uses, in days before the snapshot.
_GROUP_WINDOWS: dict[str, tuple[int, ...]] = {
    PURCHASE.name: (30, 60, 90, 365),
    BASKET.name: (),
    ENGAGEMENT.name: (7, 30, 60, 90),
    TEXT.name: (),
}
_EVENT_TYPES = ("view", "search", "add_to_cart", "checkout")
_EVENT_BATCH = 1 << 20  # events rolled up at a time


# Every table is read once (pyarrow, only the columns needed) and every row gets a *segment*: the
# time between two consecutive cuts, where the cuts are every snapshot and every window start
# (snapshot - n days) its group uses, found by a binary search over the few cuts (timestamps as
# integer nanoseconds, no calendar arithmetic). Counts and sums go into dense (customer, segment)
# tables with one bincount, and a cumulative sum over the segments gives, for every customer and cut,
# the total of the rows before that cut: a window [snapshot - n days, snapshot) is the difference of
# two columns, a whole-history value the column at the snapshot. Nothing is rescanned per snapshot.
@dataclass(frozen=True)
class _Cuts:
    cuts: np.ndarray  # sorted ns; segment 0 is before cuts[0], segment k is [cuts[k-1], cuts[k])
    snaps: np.ndarray  # the distinct snapshots, sorted, ns

    @staticmethod
    def of(snaps: np.ndarray, days: tuple[int, ...]) -> _Cuts:
        return _Cuts(np.unique(np.concatenate([snaps - d * _NS_PER_DAY for d in (0, *days)])), snaps)

    @property
    def n(self) -> int:  # segments
        return len(self.cuts) + 1

    def seg(self, ts: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.cuts, ts, side="right")

    def table(self, ci: np.ndarray, seg: np.ndarray, n_customers: int,
              weights: np.ndarray | None = None) -> np.ndarray:
        """Cumulative (segment, customer) table: [k, c] = sum of `weights` (count) of c's rows in
        segments 0..k, i.e. before cuts[k]."""
        return next(self.tables(ci, seg, n_customers, weights))

    def tables(self, ci: np.ndarray, seg: np.ndarray, n_customers: int,
               *weights: np.ndarray | None) -> Iterator[np.ndarray]:
        """`table` for each of `weights` over the same rows, one at a time."""
        cells = np.multiply(seg, n_customers, dtype=np.int64) + ci  # seg and ci may be of small types
        for w in weights:
            dense = np.bincount(cells, w, minlength=n_customers * self.n)
            yield _running(np.add, dense.reshape(self.n, n_customers))

    def col(self, days: int) -> np.ndarray:
        """Per snapshot, the column of a cumulative table holding rows before snapshot - `days`."""
        return np.searchsorted(self.cuts, self.snaps - days * _NS_PER_DAY)

    def before(self, cum: np.ndarray, days: int = 0) -> np.ndarray:
        """(snapshot, customer): total of the rows before snapshot - `days`."""
        return cum[self.col(days)].astype(np.float64, copy=False)

    def window(self, cum: np.ndarray, days: int, until: int = 0) -> np.ndarray:
        """(snapshot, customer): total of the rows in [snapshot - days, snapshot - until)."""
        return self.before(cum, until) - self.before(cum, days)


def _running(ufunc: np.ufunc, a: np.ndarray) -> np.ndarray:
    """`ufunc`.accumulate over axis 0, in place, a row at a time (numpy's accumulate and cumsum over
    the first axis of a wide array walk it column by column, several times slower)."""
    for k in range(1, len(a)):
        ufunc(a[k - 1], a[k], out=a[k])
    return a


def _ns(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Nanoseconds since the epoch (a timestamp without zone is UTC) and where the value is null."""
    if not pa.types.is_timestamp(column.type):
        column = column.cast(pa.timestamp("ns"))
    values = column.cast(pa.timestamp("ns", tz=column.type.tz)).cast(pa.int64())
    if not values.null_count:
        return values.to_numpy(), np.zeros(len(values), dtype=bool)
    return values.fill_null(0).to_numpy(), values.is_null().to_numpy(zero_copy_only=False)


def _ints(column: pa.ChunkedArray) -> np.ndarray:
    column = column.cast(pa.int64())
    return (column.fill_null(np.iinfo(np.int64).min) if column.null_count else column).to_numpy()


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    return column.cast(pa.float64()).to_numpy(zero_copy_only=False)  # nulls: NaN


def _codes(column: pa.ChunkedArray | pa.Array, names: tuple[str, ...]) -> np.ndarray:
    """Index of each value in `names`, -1 for any other value (or null)."""
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    parts = []
    for chunk in column.chunks if isinstance(column, pa.ChunkedArray) else [column]:
        lut = np.array([names.index(v) if v in names else -1 for v in chunk.dictionary.to_pylist()] + [-1],
                       dtype=np.int8)
        parts.append(lut[chunk.indices.fill_null(len(lut) - 1).to_numpy(zero_copy_only=False)])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int8)


def _lookup(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each of `values` in the sorted unique `keys`, and whether it is there."""
    if len(keys) and keys[-1] - keys[0] == len(keys) - 1:  # consecutive ids: no search
        pos = values - keys[0]
        if not len(values) or (values.min() >= keys[0] and values.max() <= keys[-1]):
            return pos, np.ones(len(values), dtype=bool)
        there = (pos >= 0) & (pos < len(keys))
        pos[~there] = 0
        return pos, there
    pos = np.searchsorted(keys, values)
    pos[pos == len(keys)] = 0
    return pos, (keys[pos] == values) if len(keys) else np.zeros(len(values), dtype=bool)


def _sort(*keys: np.ndarray) -> np.ndarray | None:
    """The order sorting by keys[0], then keys[1], ... (None where already sorted)."""
    if len(keys[0]) < 2:
        return None
    ok = np.ones(len(keys[0]) - 1, dtype=bool)
    tied = ok.copy()
    for key in keys:
        ok &= ~tied | (key[1:] >= key[:-1])
        tied &= key[1:] == key[:-1]
    return None if ok.all() else np.lexsort(keys[::-1])


@dataclass
class _Build:
    raw_dir: Path
    ids: np.ndarray  # customer ids, sorted
    signup: np.ndarray  # their signup, ns
    snaps: np.ndarray  # distinct snapshots, sorted, ns

    def read(self, table: str, columns: list[str]) -> pa.Table:
        return pq.read_table(self.raw_dir / f"{table}.parquet", columns=columns)

    def cuts(self, group: FeatureGroup) -> _Cuts:
        return _Cuts.of(self.snaps, _GROUP_WINDOWS[group.name])

    def days_since(self, ts: np.ndarray) -> np.ndarray:
        """(snapshot, customer): days from the (customer) time `ts` to the snapshot."""
        return (self.snaps[:, None] - ts[None, :]) / _NS_PER_DAY


def _div(num: np.ndarray, den: np.ndarray, other: np.ndarray | float = 0.0) -> np.ndarray:
    """num / den, `other` where den is not > 0."""
    return np.where(den > 0, num / np.where(den > 0, den, 1), other)


def _xlogx(x: np.ndarray) -> np.ndarray:
    """x ln x, 0 where x is not > 0."""
    return np.where(x > 0, x * np.log(np.where(x > 0, x, 1)), 0.0)


def _std(s1: np.ndarray, s2: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Population standard deviation from sums of x and x^2 over n (0 where n = 0)."""
    mean = _div(s1, n)
    return np.where(n > 0, np.sqrt(np.maximum(_div(s2, n) - mean**2, 0)), 0.0)


def _orders(b: _Build) -> dict[str, np.ndarray]:
    """Orders of known customers with a time, sorted by customer and time."""
    t = b.read("orders", ["order_id", "customer_id", "order_ts", "amount"])
    ci, known = _lookup(b.ids, _ints(t["customer_id"]))
    ts, nulls = _ns(t["order_ts"])
    keep = known & ~nulls
    o = {"ci": ci, "ts": ts, "order_id": _ints(t["order_id"]), "amount": _floats(t["amount"])}
    o = o if keep.all() else {k: v[keep] for k, v in o.items()}
    order = _sort(o["ci"], o["ts"])
    return o if order is None else {k: v[order] for k, v in o.items()}


# The group functions yield each feature, a (snapshot, customer) table, as soon as it is final, and
# drop what no later feature needs: the caller writes it into its column at once, so the build holds
# a few tables at a time, not a group's (the peak memory is most of the build's time on a cold process).
_Features = Iterator[tuple[str, np.ndarray]]


def _purchase(b: _Build, o: dict[str, np.ndarray]) -> _Features:
    cuts, nc = b.cuts(PURCHASE), len(b.ids)
    whole = _Cuts.of(b.snaps, ())  # whole-history values need the snapshots only as cuts
    ci, ts, amount = o["ci"], o["ts"], o["amount"]
    count, spend = cuts.tables(ci, cuts.seg(ts), nc, None, amount)
    orders_30, spend_30 = cuts.window(count, 30), cuts.window(spend, 30)
    yield "orders_30d", orders_30
    yield "spend_30d", spend_30
    yield "orders_trend_30d", orders_30 - cuts.window(count, 60, 30)
    yield "spend_trend_30d", spend_30 - cuts.window(spend, 60, 30)
    del orders_30, spend_30
    for d in (90, 365):
        yield f"orders_{d}d", cuts.window(count, d)
        yield f"spend_{d}d", cuts.window(spend, d)
    n, total = cuts.before(count), cuts.before(spend)
    del count, spend
    yield "frequency", n
    yield "monetary_mean", _div(total, n)
    wseg = whole.seg(ts)
    yield "order_value_std", _std(total, whole.before(whole.table(ci, wseg, nc, amount * amount)), n)
    del total
    # per (customer, segment) first / last order time and largest amount, then running min / max
    key = ci * whole.n + wseg  # sorted: orders are by customer and time
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, dtype=np.int64)
    ends = np.r_[starts[1:] - 1, len(key) - 1].astype(np.int64)
    del key
    at = wseg * nc + ci  # the (segment, customer) cell
    cols, has = whole.col(0), n > 0
    top = np.full(nc * whole.n, -np.inf)
    if len(starts):
        top[at[starts]] = np.fmax.reduceat(amount, starts)
    yield "order_value_max", np.where(has, _running(np.fmax, top.reshape(whole.n, nc))[cols], 0.0)
    del top
    since_signup = b.days_since(b.signup)
    yield "tenure_days", since_signup
    last = np.full(nc * whole.n, np.iinfo(np.int64).min)
    last[at[ends]] = ts[ends]
    last = _running(np.maximum, last.reshape(whole.n, nc))[cols]
    recency = np.where(has, (b.snaps[:, None] - np.where(has, last, 0)) / _NS_PER_DAY, since_signup)
    yield "recency_days", recency
    del recency
    del last
    first = np.full(nc * whole.n, np.iinfo(np.int64).max)
    first[at[starts]] = ts[starts]
    first = _running(np.minimum, first.reshape(whole.n, nc))[cols]
    since_first = np.where(has, (b.snaps[:, None] - np.where(has, first, 0)) / _NS_PER_DAY, since_signup)
    del first, since_signup, has, at
    yield "days_since_first_order", since_first
    after = np.r_[False, ci[1:] == ci[:-1]]  # an order with an earlier one of its customer: a gap
    gap = np.where(after, np.r_[0, np.diff(ts)] / _NS_PER_DAY, 0.0)
    n_gaps = np.maximum(n - 1, 0)  # every order but the first
    gaps, gaps2 = (whole.before(t) for t in whole.tables(ci, wseg, nc, gap, gap * gap))
    yield "interpurchase_mean_days", _div(gaps, n_gaps, since_first)
    yield "interpurchase_std_days", _std(gaps, gaps2, n_gaps)


def _basket(b: _Build, o: dict[str, np.ndarray]) -> _Features:
    """A line is bought at its order's time, in its product's category; its return is known from
    max(order time, return time) on."""
    cuts, nc = b.cuts(BASKET), len(b.ids)
    t = b.read("order_lines", ["order_id", "product_id", "quantity", "unit_price", "discount", "return_ts"])
    by_id = np.argsort(o["order_id"], kind="stable")
    pos, in_orders = _lookup(o["order_id"][by_id], _ints(t["order_id"]))
    products = b.read("products", ["product_id", "category"])
    pid = _ints(products["product_id"])
    by_pid = np.argsort(pid, kind="stable")
    category = pd.factorize(products["category"].to_pandas(), use_na_sentinel=False)[0][by_pid]
    category = category.astype(np.min_scalar_type(len(category)))  # a small type sorts by radix
    ppos, in_products = _lookup(pid[by_pid], _ints(t["product_id"]))
    keep = in_orders & in_products
    row = by_id[pos[keep]]
    ci, order_ts, cat = o["ci"][row], o["ts"][row], category[ppos[keep]]
    del by_id, pos, in_orders, ppos, in_products, row
    gross = (_floats(t["quantity"]) * _floats(t["unit_price"]))[keep]
    discount = gross * _floats(t["discount"])[keep]
    ret_ts, not_returned = _ns(t["return_ts"])
    returned = ~not_returned[keep]
    known = cuts.seg(np.maximum(order_ts, ret_ts[keep])[returned])
    del t, ret_ts, not_returned, keep
    seg = cuts.seg(order_ts)
    del order_ts
    n_lines, total, disc = (cuts.before(t) for t in cuts.tables(ci, seg, nc, None, gross, discount))
    del discount
    yield "discount_share", _div(disc, total)
    del disc
    yield "return_rate", _div(cuts.before(cuts.table(ci[returned], known, nc)), n_lines)
    del n_lines, returned, known
    # per category (its lines a slice of those sorted by category) g, a customer's gross in it before
    # each cut: the largest over the categories, and sum(g ln g) - which changes only in the (segment,
    # customer) cells where the category has lines, so those changes are summed over the segments
    top, change = np.zeros((len(b.snaps), nc)), np.zeros(cuts.n * nc)
    by_cat = np.argsort(cat, kind="stable")
    bounds = np.searchsorted(cat[by_cat], np.arange(int(cat.max()) + 2 if len(cat) else 1))
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        rows = by_cat[lo:hi]
        g = np.bincount(seg[rows] * nc + ci[rows], gross[rows], minlength=cuts.n * nc)
        hit = np.flatnonzero(g)
        g = _running(np.add, g.reshape(cuts.n, nc))
        np.maximum(top, g[cuts.col(0)], out=top)
        after = g.ravel()[hit]
        before = np.where(hit >= nc, g.ravel()[hit - nc], 0.0)  # the cell before: the same customer's
        change[hit] += _xlogx(after) - _xlogx(before)
    del ci, seg, gross, cat, by_cat
    yield "top_category_share", _div(top, total)
    del top
    g_ln_g = _running(np.add, change.reshape(cuts.n, nc))[cuts.col(0)]
    safe = np.where(total > 0, total, 1)
    # -sum(p ln p) with p = g / G is ln G - sum(g ln g) / G
    yield "category_entropy", np.where(total > 0, np.maximum(np.log(safe) - g_ln_g / safe, 0), 0.0)


_Runs = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # customer, session id, segment, counts


def _roll_up(b: _Build, cuts: _Cuts, batch: pa.RecordBatch) -> _Runs | None:
    """A batch of events of known customers rolled up over its consecutive events of one (customer,
    session, segment): each run's customer, session, segment and events of each type (`_EVENT_TYPES`)."""
    ci, known = _lookup(b.ids, _ints(batch.column("customer_id")))
    ts, nulls = _ns(batch.column("event_ts"))
    kind, sess = _codes(batch.column("event_type"), _EVENT_TYPES), _ints(batch.column("session_id"))
    if not (keep := known & ~nulls).all():
        ci, ts, kind, sess = ci[keep], ts[keep], kind[keep], sess[keep]
    if not len(ci):
        return None
    seg = cuts.seg(ts)
    new = np.r_[True, (ci[1:] != ci[:-1]) | (sess[1:] != sess[:-1]) | (seg[1:] != seg[:-1])]
    run, starts = np.cumsum(new) - 1, np.flatnonzero(new)
    typed = np.bincount(run * (len(_EVENT_TYPES) + 1) + kind + 1, minlength=len(starts) * 5)
    typed = typed.reshape(len(starts), 5)[:, 1:].astype(np.int32)  # column 0: other event types
    # the smallest types that hold every customer and segment: a run is kept until all are rolled up
    small = np.min_scalar_type(-len(b.ids)), np.min_scalar_type(-cuts.n)
    return ci[starts].astype(small[0]), sess[starts], seg[starts].astype(small[1]), typed


class _SessionRuns:
    """The events rolled up per (customer, session, segment), a row group at a time by whichever
    threads call `work` (the order groups' thread takes the row groups left when it is done), in
    batches of at most _EVENT_BATCH rows. `result` works too, waits for every row group, then joins
    the batches in file order: a run a boundary cuts is joined back in place, and the runs are sorted
    and merged only where the rows were not in (customer, session) order."""

    _COLUMNS = ["session_id", "customer_id", "event_ts", "event_type"]

    def __init__(self, b: _Build) -> None:
        self.b, self.cuts, self.path = b, b.cuts(ENGAGEMENT), b.raw_dir / "events.parquet"
        n = pq.ParquetFile(self.path).num_row_groups
        self._lock, self._todo, self._taken = threading.Lock(), iter(range(n)), 0
        self._parts: list[list[_Runs]] = [[] for _ in range(n)]
        self._done, self._error = [threading.Event() for _ in range(n)], None

    def work(self) -> None:
        file = pq.ParquetFile(self.path)  # a reader per thread
        while (group := self._take()) is not None:
            try:
                for batch in file.iter_batches(batch_size=_EVENT_BATCH, row_groups=[group],
                                               columns=self._COLUMNS):
                    if (part := _roll_up(self.b, self.cuts, batch)) is not None:
                        self._parts[group].append(part)
            except BaseException as error:
                self._error = error
                raise
            finally:
                self._done[group].set()

    def _take(self) -> int | None:
        with self._lock:
            if self._error is not None or (group := next(self._todo, None)) is None:
                return None
            self._taken += 1
            return group

    def result(self) -> _Runs:
        self.work()  # returns when every row group is taken (or one failed): wait for those taken
        for done in self._done[:self._taken]:
            done.wait()
        if self._error is not None:
            raise self._error
        runs: list[_Runs] = []
        for part in (part for parts in self._parts for part in parts):
            if runs and all(prev[-1] == this[0] for prev, this in zip(runs[-1][:3], part[:3], strict=True)):
                runs[-1][3][-1] += part[3][0]  # the previous batch ended inside this run
                part = tuple(a[1:] for a in part)
            if len(part[0]):
                runs.append(part)
        self._parts = []
        if not runs:
            none = np.zeros(0, np.int64)
            return none, none, none, np.zeros((0, 4), np.int32)
        columns = [list(column) for column in zip(*runs, strict=True)]
        del runs
        ci, sess, seg, counts = (_concatenate(column) for column in columns)
        order = _sort(ci, sess, seg)
        if order is None:  # every run is whole: (customer, session, segment) changes from one to the next
            return ci, sess, seg, counts
        ci, sess, seg, counts = ci[order], sess[order], seg[order], counts[order]
        new = np.r_[True, (ci[1:] != ci[:-1]) | (sess[1:] != sess[:-1]) | (seg[1:] != seg[:-1])]
        if not new.all():  # runs the sort brought together
            run, starts = np.cumsum(new) - 1, np.flatnonzero(new)
            counts = np.stack([np.bincount(run, counts[:, k], minlength=len(starts)) for k in range(4)],
                              axis=1).astype(np.int32)
            ci, sess, seg = ci[starts], sess[starts], seg[starts]
        return ci, sess, seg, counts


def _concatenate(pieces: list[np.ndarray]) -> np.ndarray:
    """The pieces end to end, each dropped from the list once copied (one column's copy at a time)."""
    out = np.empty((sum(len(p) for p in pieces), *pieces[0].shape[1:]), dtype=pieces[0].dtype)
    at = 0
    for k, piece in enumerate(pieces):
        out[at:at + len(piece)] = piece
        at += len(piece)
        pieces[k] = None
    return out


def _engagement(b: _Build, runs: _SessionRuns) -> _Features:
    """Event counts by type per window; a session counts in a window where it has an event there, and
    is an abandoned cart in the 90 days where it has an add-to-cart but no checkout there."""
    cuts, nc, ns = runs.cuts, len(b.ids), len(b.snaps)
    ci, sess, seg, counts = runs.result()
    by_type = cuts.tables(ci, seg, nc, *counts.T)  # one type at a time
    for name, cum in zip(("views", "searches", "cart_adds", "checkouts"), by_type, strict=True):
        for d in (7, 30):
            yield f"{name}_{d}d", cuts.window(cum, d)
    del cum
    cart, checkout = counts[:, 2] > 0, counts[:, 3] > 0
    new_sess = np.r_[True, (ci[1:] != ci[:-1]) | (sess[1:] != sess[:-1])]
    run_ci, run_seg, run_sess = ci, seg, np.cumsum(new_sess) - 1
    del sess, counts, new_sess
    single = np.bincount(run_sess)[run_sess] == 1  # sessions within one segment: almost all
    s_ci, s_seg = run_ci[single], run_seg[single]
    sessions, carted, abandoned = cuts.tables(s_ci, s_seg, nc, None, cart[single], (cart & ~checkout)[single])
    counts = {"sessions_7d": cuts.window(sessions, 7), "sessions_30d": cuts.window(sessions, 30),
              "sessions_prev_30d": cuts.window(sessions, 60, 30),
              "cart_sessions_90d": cuts.window(carted, 90), "abandoned_90d": cuts.window(abandoned, 90)}
    # sessions over several segments, exactly: per snapshot and window, whether they have an event there
    multi = ~single
    m_ci, m_seg, m_cart, m_checkout = run_ci[multi], run_seg[multi], cart[multi], checkout[multi]
    m_sess = np.unique(run_sess[multi], return_inverse=True)[1]
    sess_ci = np.zeros(m_sess.max(initial=-1) + 1, dtype=np.int64)
    sess_ci[m_sess] = m_ci
    col = {d: cuts.col(d) for d in (0, 7, 30, 60, 90)}

    def per_customer(mask: np.ndarray) -> np.ndarray:
        return np.bincount(sess_ci[mask], minlength=nc)

    def any_in(rows: np.ndarray) -> np.ndarray:
        return np.bincount(m_sess[rows], minlength=len(sess_ci)) > 0

    for s in range(ns if len(sess_ci) else 0):
        def inside(lo: int, hi: int) -> np.ndarray:
            return (m_seg > col[lo][s]) & (m_seg <= col[hi][s])  # noqa: B023
        for name, lo, hi in (("sessions_7d", 7, 0), ("sessions_30d", 30, 0), ("sessions_prev_30d", 60, 30)):
            counts[name][s] += per_customer(any_in(inside(lo, hi)))
        in_90 = inside(90, 0)
        has_cart, has_checkout = any_in(in_90 & m_cart), any_in(in_90 & m_checkout)
        counts["cart_sessions_90d"][s] += per_customer(has_cart)
        counts["abandoned_90d"][s] += per_customer(has_cart & ~has_checkout)
    yield "sessions_7d", counts["sessions_7d"]
    yield "sessions_30d", counts["sessions_30d"]
    yield "sessions_trend_30d", counts["sessions_30d"] - counts["sessions_prev_30d"]
    yield "cart_sessions_90d", counts["cart_sessions_90d"]
    yield "cart_abandon_rate_90d", _div(counts["abandoned_90d"], counts["cart_sessions_90d"])


# The text group reads `review_text` (one row per review with text: its sentiment and projected
# embedding, custintel.features.text) beside `reviews`; reviews without text count in review_count
# and mean_rating only. Means are 0 where a customer has no review (with text) before the snapshot.
def _text(b: _Build, review_text: pd.DataFrame) -> _Features:
    cuts, nc = b.cuts(TEXT), len(b.ids)
    t = b.read("reviews", ["review_id", "customer_id", "review_ts", "rating"])
    ci, known = _lookup(b.ids, _ints(t["customer_id"]))
    ts, nulls = _ns(t["review_ts"])
    reviews = pd.DataFrame({"review_id": _ints(t["review_id"]), "ci": ci, "seg": cuts.seg(ts),
                            "rating": _floats(t["rating"])})[known & ~nulls]
    columns = ["review_sentiment", *REVIEW_EMB_FEATURES]
    reviews = reviews.merge(review_text[["review_id", *columns]], on="review_id", how="left")
    ci, seg = reviews["ci"].to_numpy(), reviews["seg"].to_numpy()
    yield "review_count", cuts.before(cuts.table(ci, seg, nc))
    for name, column in (("mean_rating", "rating"), *((c, c) for c in columns)):
        x = reviews[column].to_numpy(dtype=np.float64)
        there = ~np.isnan(x)
        total, count = cuts.tables(ci[there], seg[there], nc, x[there], None)
        yield name, _div(cuts.before(total), cuts.before(count))

_LABELS_SQL = f"""
SELECT cs.customer_id AS {ENTITY_KEY}, cs.snapshot_ts AS {TIMESTAMP},
    (count(o.order_id) = 0)::INTEGER AS {CHURN_LABEL},
    coalesce(sum(o.amount), 0)::DOUBLE AS {VALUE_LABEL}
FROM (SELECT c.customer_id, s.snapshot_ts FROM customers c JOIN snaps s ON c.signup_ts < s.snapshot_ts) cs
LEFT JOIN orders o
  ON o.customer_id = cs.customer_id
 AND o.order_ts >= cs.snapshot_ts AND o.order_ts < cs.snapshot_ts + INTERVAL (?) DAY
GROUP BY cs.customer_id, cs.snapshot_ts
ORDER BY {TIMESTAMP}, {ENTITY_KEY}
"""


def available_tables(raw_dir: Path) -> list[str]:
    """The tables of the feature groups that `raw_dir` holds."""
    wanted = dict.fromkeys(t for group in GROUPS for t in group.tables)
    return [table for table in wanted if (raw_dir / f"{table}.parquet").is_file()]


def _connect(raw_dir: Path, snapshots: list[datetime]):
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for table in available_tables(raw_dir):
        path = raw_dir / f"{table}.parquet"
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{path.as_posix()}')")
    con.register("snaps", pd.DataFrame({"snapshot_ts": pd.to_datetime(snapshots, utc=True)}))
    return con


def _utc_frame(frame: pd.DataFrame) -> pd.DataFrame:
    frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], utc=True)
    frame[ENTITY_KEY] = frame[ENTITY_KEY].astype("int64")
    return frame


def compute_features(raw_dir: Path, snapshots: list[datetime],
                     groups: list[FeatureGroup] | None = None,
                     review_text: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (customer signed up before the snapshot, snapshot) with the features of `groups`
    (default: every group whose tables `raw_dir` holds), ordered by snapshot and customer.

    `review_text` is the per-review table of `custintel.features.text.review_text_table` for the
    text group; without it, it is computed here (projection fitted before the first snapshot, not saved)."""
    groups = groups_for_tables(available_tables(raw_dir)) if groups is None else groups
    lacking = [g.name for g in groups if not set(g.tables) <= set(available_tables(raw_dir))]
    if lacking or PURCHASE not in groups:
        raise ValueError(f"{raw_dir} lacks the tables of feature groups {lacking or [PURCHASE.name]}")
    customers = pq.read_table(raw_dir / "customers.parquet", columns=["customer_id", "signup_ts"])
    ids = _ints(customers["customer_id"])
    signup, nulls = _ns(customers["signup_ts"])
    by_id = np.argsort(ids[~nulls], kind="stable")
    ids, signup = ids[~nulls][by_id], signup[~nulls][by_id]
    wanted = np.sort(pd.to_datetime(snapshots, utc=True).as_unit("ns").asi8)
    build = _Build(raw_dir, ids, signup, np.unique(wanted))
    # the rows: per snapshot (each time it is asked for), the customers signed up before it
    rows_ci = np.concatenate([np.flatnonzero(signup < s) for s in wanted] or [np.zeros(0, dtype=np.int64)])
    rows_s = np.repeat(np.searchsorted(build.snaps, wanted), [int((signup < s).sum()) for s in wanted])
    names = feature_names(groups)
    block = np.empty((len(names), len(rows_ci)))  # the feature columns, one float block

    cells = rows_s * len(ids) + rows_ci  # each row's cell of a (snapshot, customer) table

    written: set[str] = set()

    def add(features: _Features) -> None:  # (snapshot, customer) tables -> row columns, one at a time
        for name, v in features:
            # mode="clip" (every cell is in range): with the default "raise", `out` is buffered
            np.take(np.asarray(v, dtype=np.float64).ravel(), cells, out=block[names.index(name)], mode="clip")
            written.add(name)

    # the events roll-up (the largest input) runs on a second thread beside the order groups, which
    # then take its row groups left: most of both is numpy and pyarrow work that releases the GIL
    # (benchmarks/feature_build.py); each thread writes its own features' columns
    runs = _SessionRuns(build) if ENGAGEMENT in groups else None
    engagement = _in_thread(add, _engagement(build, runs)) if runs is not None else None
    orders = _orders(build)
    add(_purchase(build, orders))
    if BASKET in groups:
        add(_basket(build, orders))
    del orders
    if runs is not None:  # and so engagement
        runs.work()
        engagement.result()
    if TEXT in groups:
        add(_text(build, _review_text(raw_dir, snapshots) if review_text is None else review_text))
    if missing := [name for name in names if name not in written]:
        raise RuntimeError(f"feature build left {missing} unset")  # a bug here, never the data
    frame = pd.DataFrame(block.T, columns=names, copy=False)
    frame.insert(0, TIMESTAMP, pd.to_datetime(build.snaps[rows_s], utc=True).as_unit("us"))
    frame.insert(0, ENTITY_KEY, ids[rows_ci])
    return frame


def _in_thread(function, *args):
    """`function(*args)` started on a thread of its own; `.result()` waits for it (and re-raises)."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="custintel-features")
    try:
        return pool.submit(function, *args)
    finally:
        pool.shutdown(wait=False)  # the submitted call still runs to the end


def _review_text(raw_dir: Path, snapshots: list[datetime]) -> pd.DataFrame:
    from custintel.features.text import review_text_table

    reviews = pd.read_parquet(raw_dir / "reviews.parquet", columns=["review_id", "review_ts", "text"])
    return review_text_table(reviews, min(snapshots))[0]


def compute_labels(raw_dir: Path, snapshots: list[datetime], horizon_days: int,
                   end: datetime) -> pd.DataFrame:
    """Churn and spend in [snapshot, snapshot + horizon) for snapshots whose horizon ends by `end`."""
    labelled = [s for s in snapshots if s + timedelta(days=horizon_days) <= end]
    if not labelled:
        return pd.DataFrame(columns=[ENTITY_KEY, TIMESTAMP, CHURN_LABEL, VALUE_LABEL])
    con = _connect(raw_dir, labelled)
    return _utc_frame(con.execute(_LABELS_SQL, [horizon_days]).df())
