"""The Redis commands the materializer lays out: RESTOREs of whole hashes build, in a real
redis-server (which checks every payload in depth: see conftest.start_redis), the hashes the HSETs
build, field for field and in order, with the TTL, for listpacks of every RDB length encoding."""

from __future__ import annotations

import numpy as np
import pytest

from custintel import redis_payloads
from custintel.materialization import _Packed


def _part(rng, n: int, view: int, n_fields: int, width: int = 9) -> redis_payloads.HashPart:
    values = [_Packed(rng.integers(0, 256, n * width, dtype=np.uint8).tobytes(), width, rng.random(n) < 0.3)
              for _ in range(n_fields)]
    return redis_payloads.HashPart(
        ts_field=b"_ts:view_%d" % view, stamps=[b"\x08\x01", b"\x08\xb2\xa9\xdd\xc2\x06\x10\x03"],
        stamp_at=rng.integers(0, 2, n), fields=[rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
                                                for _ in range(n_fields)], values=values)


def _send(client, commands: bytes, replies: int) -> list:
    """Every reply, an error reply as its ResponseError."""
    from redis.exceptions import ResponseError

    conn = client.connection_pool.get_connection()
    answers = []
    try:
        conn.send_packed_command([commands])
        for _ in range(replies):
            try:
                answers.append(conn.read_response())
            except ResponseError as error:
                answers.append(error)
        return answers
    finally:
        client.connection_pool.release(conn)


def _hashes(client, keys) -> dict:
    return {key: (list(client.hgetall(key).items()), client.ttl(key), client.object("encoding", key))
            for key in keys}


@pytest.mark.parametrize(("fields", "ttl"),
                         [((1,), None), ((5, 2, 3), None), ((5, 2, 3), 3600), ((700,), None)])
def test_restored_hashes_equal_the_hashes_hsets_build(redis_server, fields, ttl):
    """One feature (a listpack under 64 bytes: RDB's 1-byte length), a few views (2 bytes), and 700
    features (over 16 KiB: 5 bytes; and over 128 fields, so the server turns it into a hash table
    exactly as the HSETs do)."""
    import redis

    client = redis.Redis.from_url(f"{redis_server}/15")
    rng = np.random.default_rng(len(fields) + (ttl or 0))
    n = 40
    keys = [b"\x02\x00\x00\x00customer_id\x04\x00\x00\x00%08dcustintel" % i for i in range(n)]
    parts = [_part(rng, n, view, count) for view, count in enumerate(fields)]
    assert redis_payloads.fits_listpack(parts)

    client.flushdb()
    for part in parts:
        assert all(isinstance(r, int) for r in _send(client, redis_payloads.hset_commands(keys, part, ttl),
                                                     n * (2 if ttl else 1)))
    expected = _hashes(client, keys)
    client.flushdb()
    assert _send(client, redis_payloads.restore_commands(keys, parts, ttl), n) == [b"OK"] * n
    assert _hashes(client, keys) == expected
    encoding = b"hashtable" if fields == (700,) else b"listpack"
    assert {encoding_ for _, _, encoding_ in expected.values()} == {encoding}
    assert redis_payloads.restore_allowed(client)


def test_a_damaged_payload_is_refused(redis_server):
    import redis

    client = redis.Redis.from_url(f"{redis_server}/15")
    client.flushdb()
    rng = np.random.default_rng(0)
    keys = [b"key-%04d" % i for i in range(3)]
    commands = bytearray(redis_payloads.restore_commands(keys, [_part(rng, 3, 0, 4)], None))
    commands[60] ^= 0xFF  # one byte of the first payload
    replies = _send(client, bytes(commands), 3)
    assert isinstance(replies[0], redis.exceptions.ResponseError) and "checksum" in str(replies[0])
    assert replies[1:] == [b"OK", b"OK"] and client.exists(keys[0]) == 0


def test_crc64_is_redis_crc64():
    assert redis_payloads._crc64().calc(b"123456789") == 0xE9C6D914C4B8D9CA  # Redis's crc64.c test vector


def test_restore_needs_redis_7_and_short_entries():
    assert [redis_payloads.server_major(v) for v in ("7.0.15", "6.2.14", "8.2.1", "", "x")] == [7, 6, 8, 0, 0]
    rng = np.random.default_rng(1)
    part = _part(rng, 2, 0, 2)
    assert redis_payloads.fits_listpack([part])
    part.ts_field = b"_ts:" + b"v" * 60
    assert not redis_payloads.fits_listpack([part])
