"""The serving hot path's pandas-free transforms give what the frame paths give, and the per-request
stage timings (serving/timing.py) are recorded and answered in a Server-Timing header."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd

from serving.timing import ServerTimingMiddleware, Stages, parse_header
from tests.test_segments import CENTRES, NAMES, _customers, _fit
from training.scaler import FeatureScaler


def _with_missing(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    holed = frame.copy()
    mask = np.random.default_rng(seed).random(holed.shape) < 0.2
    holed[mask] = np.nan
    return holed


def test_scaler_transform_array_equals_transform():
    frame, _ = _customers(dict.fromkeys(CENTRES, 50), seed=3)
    scaler = FeatureScaler(NAMES).fit(frame)
    holed = _with_missing(frame, seed=4)
    np.testing.assert_array_equal(scaler.transform_array(holed[NAMES].to_numpy()), scaler.transform(holed))


def test_segmenter_assign_array_equals_assign_with_columns_in_another_order():
    frame, _ = _customers(dict.fromkeys(CENTRES, 100), seed=5)
    segmenter, _ = _fit(frame, seed=1)
    holed = _with_missing(frame, seed=6)
    columns = ["unused", *reversed(NAMES)]  # a superset, in another order
    matrix = holed.assign(unused=7.0)[columns].to_numpy()
    got = segmenter.assign_array(matrix, segmenter.positions_in(columns))
    np.testing.assert_array_equal(got, segmenter.assign(holed))
    assert len(set(got.tolist())) > 1


def test_server_timing_header_carries_the_marked_stages_and_the_total():
    async def app(scope, receive, send):
        stages = scope["custintel.stages"]
        stages.mark("fetch")
        stages.mark("model")
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    asyncio.run(ServerTimingMiddleware(app)({"type": "http", "path": "/x", "headers": []}, receive, send))
    headers = dict(sent[0]["headers"])
    timings = parse_header(headers[b"server-timing"].decode())
    assert list(timings) == ["fetch", "model", "app"]
    assert timings["app"] >= timings["fetch"] + timings["model"] >= 0
    assert headers[b"content-type"] == b"text/plain" and sent[1]["body"] == b"ok"


def test_stages_restart_skips_time_that_is_no_stage():
    stages = Stages()
    stages.mark("a")
    stages.restart()
    stages.mark("b")
    assert stages.names == ["a", "b"] and all(s >= 0 for s in stages.seconds)
    assert parse_header(stages.header().decode()).keys() == {"a", "b", "app"}
