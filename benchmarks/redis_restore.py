"""redis-server's own work for the two ways custintel materializes into Redis: HSETs (one per
customer and feature view, any database) against RESTOREs of whole hashes (one per customer, a
database that held no keys when the load started), for the same hashes.

Both command streams are built beforehand with custintel.redis_payloads from synthetic values of
the current feature groups' shape (Float64 features, 10% null), sent at once on one connection into
an emptied database of a throwaway redis-server, every reply read: the seconds are the server's
(no client work overlaps them). Prints the medians of --repeats runs and their ratio, and checks
that both streams leave the same hashes.

    PYTHONPATH=. python benchmarks/redis_restore.py --customers 100000 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.materialize import _start_redis, _stop_redis  # noqa: E402


def _parts(n: int, rng: np.random.Generator) -> list:
    from google.protobuf.timestamp_pb2 import Timestamp

    from custintel.features.schema import GROUPS
    from custintel.materialization import _Packed
    from custintel.redis_payloads import HashPart

    stamps = []
    for seconds in (1_766_188_800, 1_763_596_800):
        stamp = Timestamp()
        stamp.seconds = seconds
        stamps.append(stamp.SerializeToString())
    parts = []
    for group in GROUPS:
        values = []
        for _ in group.features:
            raw = np.empty((n, 9), dtype=np.uint8)
            raw[:, 0] = 0x29  # a ValueProto double_val
            raw[:, 1:] = rng.normal(size=n).view(np.uint8).reshape(n, 8)
            values.append(_Packed(raw.tobytes(), 9, rng.random(n) < 0.1))
        parts.append(HashPart(f"_ts:{group.name}".encode(), stamps, rng.integers(0, 2, n),
                              [rng.bytes(4) for _ in group.features], values))
    return parts


def _apply(port: int, commands: bytes, replies: int) -> float:
    sock = socket.create_connection(("127.0.0.1", port))
    try:
        sock.sendall(b"*1\r\n$7\r\nFLUSHDB\r\n")
        if not sock.recv(64).startswith(b"+OK"):
            raise RuntimeError("FLUSHDB failed")
        start, lines, received = time.perf_counter(), 0, []
        sock.sendall(commands)
        while lines < replies:
            data = sock.recv(1 << 20)
            received.append(data)
            lines += data.count(b"\n")
        seconds = time.perf_counter() - start
    finally:
        sock.close()
    if any(answer.startswith(b"-") for answer in b"".join(received).split(b"\r\n")):
        raise RuntimeError("redis-server refused a command")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import redis

    from custintel.redis_payloads import hset_commands, restore_commands

    n = args.customers
    keys = [b"\x02\x00\x00\x00customer_id\x04\x00\x00\x00%08dcustintel" % i for i in range(n)]
    parts = _parts(n, np.random.default_rng(0))
    hsets = b"".join(hset_commands(keys, part, None) for part in parts)
    restores = restore_commands(keys, parts, None)

    workdir = Path(tempfile.mkdtemp(prefix="custintel-redis-restore-"))
    process, url = _start_redis(workdir)
    if process is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    port = int(url.rsplit(":", 1)[1])
    try:
        client = redis.Redis(port=port)
        seconds = {"hset": [], "restore": []}
        for _ in range(args.repeats):  # interleaved, so drift in the machine's load hits both alike
            seconds["hset"].append(_apply(port, hsets, n * len(parts)))
            sample = {key: client.hgetall(key) for key in keys[:: max(1, n // 500)]}
            seconds["restore"].append(_apply(port, restores, n))
            same = all(client.hgetall(key) == fields for key, fields in sample.items())
        medians = {kind: statistics.median(values) for kind, values in seconds.items()}
        print(json.dumps({
            "customers": n, "views": len(parts), "fields_per_customer": sum(1 + len(p.fields) for p in parts),
            "megabytes": {"hset": round(len(hsets) / 2**20, 1), "restore": round(len(restores) / 2**20, 1)},
            "seconds": {kind: [round(s, 3) for s in values] for kind, values in seconds.items()},
            "median_seconds": {kind: round(s, 3) for kind, s in medians.items()},
            "hset_over_restore": round(medians["hset"] / medians["restore"], 1),
            "same_hashes_on_sample": same,
        }, indent=2))
    finally:
        _stop_redis(process)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
