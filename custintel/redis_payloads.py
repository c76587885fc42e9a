"""Redis commands for materialization, laid out with numpy: HSETs, and whole hashes as RESTOREs.

Both writers store Feast's Redis layout: one hash per entity key (serialised entity key + project),
holding per feature view a `_ts:<view>` field (a serialised Timestamp) and one field per feature
(the murmur3 hash of `<view>:<feature>`, valued by a serialised ValueProto; b"" for a null).

- `hset_commands`: `HSET key _ts:view stamp field value ...` (then `EXPIRE key ttl`) per entity, one
  view at a time, as redis-py sends them for Feast. Works on any database.
- `restore_commands`: `RESTORE key ttl payload` per entity with *every* view's fields, for a load
  into a database that held no keys when it started. The payload is what `DUMP` returns for the
  hash those HSETs would build: the same fields in the same order in a listpack (Redis's compact
  hash encoding), in RDB format, with the RDB version and CRC-64 checksum Redis checks. The server
  then only checks the checksum and the listpack's header and links the value in, instead of
  parsing every field and searching the hash for it: about a sixth of the server's work
  (benchmarks/redis_restore.py), which on a small machine shares the cores with the client.

Each command's bytes are built as one row of a uint8 matrix (a block of columns per argument), with
a mask of the bytes in use where rows differ in length (a null value is shorter), and the masked
matrix read row by row (`RowBytes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

RDB_TYPE_HASH_LISTPACK = 16
DUMP_RDB_VERSION = 10  # Redis 7.0's RDB version: listpack hashes; every later server reads it
RESTORE_MIN_MAJOR = 7
LISTPACK_SHORT = 63  # listpack strings up to 63 bytes: a 1-byte header and a 1-byte back-length
LISTPACK_UNKNOWN_COUNT = 65535  # a listpack's element count field when there are more


def resp_bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


def listpack_string(data: bytes) -> bytes:
    """A listpack entry for a string of up to 63 bytes: header, data, back-length."""
    return bytes([0x80 | len(data)]) + data + bytes([len(data) + 1])


class RowBytes:
    """Row i of the result is the concatenation of every block's row i. Blocks are uint8 matrices of
    n rows; a block whose rows differ in length carries a mask of the bytes in use."""

    def __init__(self, n: int):
        self.n = n
        self.blocks: list[np.ndarray] = []
        self.masks: list[np.ndarray | None] = []
        self._const = b""

    def const(self, data: bytes) -> None:
        self._const += data  # consecutive constants become one block

    def matrix(self, block: np.ndarray, mask: np.ndarray | None = None) -> None:
        self._flush()
        self.blocks.append(block)
        self.masks.append(mask)

    def pick(self, pieces: Sequence[bytes], at: np.ndarray) -> None:
        """Row i gets pieces[at[i]]."""
        width = max(map(len, pieces))
        table = np.zeros((len(pieces), width), dtype=np.uint8)
        used = np.zeros((len(pieces), width), dtype=bool)
        for j, piece in enumerate(pieces):
            table[j, :len(piece)] = np.frombuffer(piece, dtype=np.uint8)
            used[j, :len(piece)] = True
        self.matrix(table[at], None if used.all() else used[at])

    def framed(self, raw: bytes, width: int, nulls: np.ndarray, head: bytes, tail: bytes,
               null: bytes) -> None:
        """Row i gets head + raw[i * width:(i + 1) * width] + tail, or `null` where nulls[i]."""
        block = np.empty((self.n, len(head) + width + len(tail)), dtype=np.uint8)
        block[:, :len(head)] = np.frombuffer(head, dtype=np.uint8)
        block[:, len(head):len(head) + width] = np.frombuffer(raw, dtype=np.uint8).reshape(self.n, width)
        block[:, len(head) + width:] = np.frombuffer(tail, dtype=np.uint8)
        mask = None
        if nulls.any():
            block[nulls, :len(null)] = np.frombuffer(null, dtype=np.uint8)
            mask = np.ones(block.shape, dtype=bool)
            mask[nulls, len(null):] = False
        self.matrix(block, mask)

    def extend(self, other: RowBytes) -> None:
        other._flush()
        self._flush()
        self.blocks += other.blocks
        self.masks += other.masks

    def lengths(self) -> np.ndarray:
        self._flush()
        return sum((block.shape[1] if mask is None else mask.sum(axis=1, dtype=np.int64)
                    for block, mask in zip(self.blocks, self.masks, strict=True)),
                   np.zeros(self.n, dtype=np.int64))

    def array(self) -> np.ndarray:
        """Every row's bytes, one after the other (a new, writable uint8 array)."""
        self._flush()
        matrix = np.concatenate(self.blocks, axis=1)
        if all(mask is None for mask in self.masks):
            return matrix.reshape(-1)
        return matrix[np.concatenate([np.ones(block.shape, dtype=bool) if mask is None else mask
                                      for block, mask in zip(self.blocks, self.masks, strict=True)],
                                     axis=1)]

    def _flush(self) -> None:
        if self._const:
            data = np.frombuffer(self._const, dtype=np.uint8)
            self.blocks.append(np.broadcast_to(data, (self.n, len(data))))
            self.masks.append(None)
            self._const = b""


def _key_block(keys: Sequence[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), len(keys[0]))


def _decimal(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ASCII decimals of positive integers, right-aligned in 20 columns, with the mask of the digits."""
    powers = 10 ** np.arange(19, -1, -1, dtype=np.uint64)
    values = values.astype(np.uint64)
    digits = (values[:, None] // powers % 10).astype(np.uint8) + ord("0")
    return digits, values[:, None] >= powers


@dataclass
class HashPart:
    """One feature view's share of every entity's hash: its `_ts` field with each row's stamp
    (stamps[stamp_at[i]]), and its feature fields with one packed value column each (objects
    with `raw`, `width` and `nulls`: see materialization._Packed)."""

    ts_field: bytes
    stamps: list[bytes]
    stamp_at: np.ndarray
    fields: list[bytes]
    values: list


def hset_commands(keys: Sequence[bytes], part: HashPart, ttl_seconds: int | None) -> bytes:
    """`HSET key ts_field stamp field_1 value_1 ...` (then `EXPIRE key ttl`) per entity, in RESP, as
    redis-py would send them. Keys must all have one length."""
    rows = RowBytes(len(keys))
    rows.const(b"*%d\r\n$4\r\nHSET\r\n$%d\r\n" % (2 + 2 * (1 + len(part.fields)), len(keys[0])))
    rows.matrix(_key_block(keys))
    rows.const(b"\r\n" + resp_bulk(part.ts_field))
    rows.pick([resp_bulk(stamp) for stamp in part.stamps], part.stamp_at)
    for name, packed in zip(part.fields, part.values, strict=True):
        rows.const(resp_bulk(name))
        rows.framed(packed.raw, packed.width, packed.nulls, b"$%d\r\n" % packed.width, b"\r\n",
                    resp_bulk(b""))
    if ttl_seconds:
        rows.const(b"*3\r\n$6\r\nEXPIRE\r\n$%d\r\n" % len(keys[0]))
        rows.matrix(_key_block(keys))
        rows.const(b"\r\n" + resp_bulk(str(int(ttl_seconds)).encode()))
    return rows.array().tobytes()


def fits_listpack(parts: Sequence[HashPart]) -> bool:
    """Whether `restore_commands` can lay these parts out: every field, stamp and value short."""
    return all(len(p.ts_field) <= LISTPACK_SHORT and max(map(len, p.stamps)) <= LISTPACK_SHORT
               and all(len(f) <= LISTPACK_SHORT for f in p.fields)
               and all(v.width <= LISTPACK_SHORT for v in p.values) for p in parts)


@lru_cache(maxsize=1)
def _crc64():
    import anycrc

    return anycrc.Model("CRC64-REDIS")  # Redis's crc64 (Jones polynomial, reflected)


def restore_commands(keys: Sequence[bytes], parts: Sequence[HashPart], ttl_seconds: int | None) -> bytes:
    """`RESTORE key ttl_ms payload` per entity (ttl 0: none), the payload holding `parts` in order:
    the hash that `hset_commands` of each part, one after the other, builds in an empty database.
    Needs `fits_listpack(parts)` and keys of one length."""
    n, key_len = len(keys), len(keys[0])
    body = RowBytes(n)
    pairs = 0
    for part in parts:
        body.const(listpack_string(part.ts_field))
        body.pick([listpack_string(stamp) for stamp in part.stamps], part.stamp_at)
        for name, packed in zip(part.fields, part.values, strict=True):
            body.const(listpack_string(name))
            body.framed(packed.raw, packed.width, packed.nulls, bytes([0x80 | packed.width]),
                        bytes([packed.width + 1]), listpack_string(b""))
        pairs += 1 + len(part.fields)
    total = 6 + body.lengths() + 1  # listpack: 4-byte size, 2-byte count, entries, end byte
    length, length_used = _rdb_length(total)
    header = np.empty((n, 6), dtype=np.uint8)
    header[:, :4] = total.astype("<u4").view(np.uint8).reshape(n, 4)
    count = min(2 * pairs, LISTPACK_UNKNOWN_COUNT).to_bytes(2, "little")
    header[:, 4:] = np.frombuffer(count, dtype=np.uint8)
    payload = 1 + length_used.sum(axis=1) + total + 2 + 8  # type, length, listpack, version, crc
    digits, digits_used = _decimal(payload)

    rows = RowBytes(n)
    rows.const(b"*4\r\n$7\r\nRESTORE\r\n$%d\r\n" % key_len)
    rows.matrix(_key_block(keys))
    rows.const(b"\r\n" + resp_bulk(str(int(ttl_seconds or 0) * 1000).encode()) + b"$")
    rows.matrix(digits, digits_used)
    rows.const(b"\r\n")
    prefix = rows.lengths()
    rows.const(bytes([RDB_TYPE_HASH_LISTPACK]))
    rows.matrix(length, length_used)
    rows.matrix(header)
    rows.extend(body)
    rows.const(b"\xff" + DUMP_RDB_VERSION.to_bytes(2, "little") + bytes(8) + b"\r\n")
    flat = rows.array()
    starts = np.concatenate([[0], np.cumsum(rows.lengths())[:-1]]) + prefix
    ends = starts + payload - 8  # the checksum covers everything before it
    view, calc = memoryview(flat), _crc64().calc
    crcs = np.fromiter((calc(view[a:b]) for a, b in zip(starts.tolist(), ends.tolist(), strict=True)),
                       dtype=np.uint64, count=n)
    flat[ends[:, None] + np.arange(8)] = crcs.astype("<u8").view(np.uint8).reshape(n, 8)
    return flat.tobytes()


def _rdb_length(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RDB's length encoding of each value (1, 2 or 5 bytes) in 5 columns, with the mask in use."""
    n = len(values)
    out, used = np.zeros((n, 5), dtype=np.uint8), np.zeros((n, 5), dtype=bool)
    small, big = values < 64, values >= 16384
    mid = ~small & ~big
    out[small, 0] = values[small]
    used[small, 0] = True
    out[mid, 0] = 0x40 | (values[mid] >> 8)
    out[mid, 1] = values[mid] & 0xFF
    used[mid, :2] = True
    out[big, 0] = 0x80
    out[big, 1:] = values[big].astype(">u4").view(np.uint8).reshape(-1, 4)
    used[big] = True
    return out, used


def server_major(version: str) -> int:
    """The major version of an INFO `redis_version` (Valkey reports its Redis-compatible one)."""
    head = str(version).split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def restore_allowed(client) -> bool:
    """Whether this server reads our RESTORE payloads and lets this client run RESTORE: Redis 7.0 or
    later, and a probe with a malformed payload is refused for its checksum (it writes nothing),
    not for an ACL rule or a renamed or disabled command."""
    from redis.exceptions import RedisError, ResponseError

    try:
        if server_major(client.info("server").get("redis_version", "0")) < RESTORE_MIN_MAJOR:
            return False
        client.execute_command("RESTORE", "custintel:restore-probe", 0, b"not a dump")
    except ResponseError as refused:
        return "checksum" in str(refused)
    except RedisError:
        return False
    return False  # accepted a malformed payload: do not trust it
