"""The served API over HTTP against one real BentoML server (API key on): validation (422 naming the
field), body limit (413), not-found and stale entries, what-if scoring, health, metrics and auth."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pandas as pd
import pytest

from custintel.config import load_settings
from custintel.features.schema import ENTITY_KEY, TIMESTAMP
from custintel.paths import DataPaths
from serving.timing import parse_header
from tests.servable import running_server

KEY = "test-key-123"
STALE_ID = 10**9


@pytest.fixture(scope="module")
def live(servable):
    with running_server(servable["params"], {"CUSTINTEL_API_KEY": KEY}, name="serve-auth") as url:
        with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=60) as client:
            yield client, servable


def _latest_features(servable) -> pd.DataFrame:
    features = pd.read_parquet(DataPaths(load_settings(servable["params"]).data_dir).features_file)
    ts = pd.to_datetime(features[TIMESTAMP], utc=True)
    return features[ts == ts.max()].set_index(ENTITY_KEY)


def _still_serving(client) -> None:
    assert client.post("/predict", json={"customer_ids": [1]}).status_code == 200


def test_predictions_carry_model_version_feature_time_and_not_found_entries(live):
    client, servable = live
    response = client.post("/predict", json={"customer_ids": [1, 2, 99999999, 1]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == servable["tag"]
    first, second, unknown, again = body["predictions"]
    newest = load_settings(servable["params"]).snapshot_dates()[-1]
    for answer in (first, second):
        assert answer["found"] and not answer["stale"] and answer["model_version"] == servable["tag"]
        assert datetime.fromisoformat(answer["feature_timestamp"]) == newest
        assert 0 <= answer["churn_probability"] <= 1 and answer["predicted_spend"] >= 0
    assert again == first
    assert unknown == {"customer_id": 99999999, "found": False,
                       "error": "customer not found in the online feature store"}
    # the time per stage of this request (serving/timing.py), milliseconds
    timings = parse_header(response.headers["server-timing"])
    assert {"parse", "fetch", "transform", "model", "segment", "assemble", "encode", "app"} <= timings.keys()
    assert timings["app"] >= sum(v for k, v in timings.items() if k != "app")


MAX_ID = 2**63 - 1


@pytest.mark.parametrize(("payload", "loc"), [
    ({"customer_ids": []}, ["customer_ids"]),
    ({"customer_ids": ["abc"]}, ["customer_ids", 0]),
    ({"customer_ids": ["1"]}, ["customer_ids", 0]),  # strings are not ids, even numeric ones
    ({"customer_ids": [1, 2.5]}, ["customer_ids", 1]),
    ({"customer_ids": [True]}, ["customer_ids", 0]),
    ({"customer_ids": [-1]}, ["customer_ids", 0]),
    ({"customer_ids": [MAX_ID + 1]}, ["customer_ids", 0]),
    ({"customer_ids": list(range(51))}, ["customer_ids"]),  # serve.max_ids_per_request = 50 here
    ({"ids": [1]}, ["customer_ids"]),
    ({"customer_ids": [1], "extra": 1}, ["extra"]),
    ([1, 2], []),
])
def test_malformed_requests_get_422_naming_the_field(live, payload, loc):
    client, _ = live
    response = client.post("/predict", json=payload)
    assert response.status_code == 422, response.text
    body = response.json()
    assert loc in [error["loc"] for error in body["detail"]]
    if loc:
        assert ".".join(map(str, loc)) in body["error"]
    _still_serving(client)


def test_invalid_json_gets_422(live):
    client, _ = live
    response = client.post("/predict", content=b'{"customer_ids": [1,',
                           headers={"content-type": "application/json"})
    assert response.status_code == 422 and "Invalid JSON" in response.json()["error"]
    _still_serving(client)


def test_oversized_bodies_get_413_declared_or_chunked(live):
    client, servable = live
    limit = servable["raw"]["serve"]["max_body_bytes"]
    big = json.dumps({"customer_ids": [1] * limit}).encode()
    response = client.post("/predict", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "serve.max_body_bytes" in response.json()["error"]

    def chunks():  # no Content-Length: the server counts while it reads
        for start in range(0, len(big), 8192):
            yield big[start:start + 8192]

    response = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413, response.text
    _still_serving(client)


def test_what_if_rows_score_like_the_online_customer(live):
    client, servable = live
    row = _latest_features(servable).loc[1, servable["features"]]
    online = client.post("/predict", json={"customer_ids": [1]}).json()["predictions"][0]
    changed = {**row.to_dict(), "recency_days": float(row["recency_days"]) + 300}
    response = client.post("/predict_features", json={"rows": [row.to_dict(), changed]})
    assert response.status_code == 200, response.text
    same, what_if = response.json()["predictions"]
    for field in ("churn_probability", "predicted_spend", "value_tier", "segment_id"):
        assert same[field] == pytest.approx(online[field], abs=1e-5)
    assert what_if["churn_probability"] != same["churn_probability"]
    assert same["model_version"] == servable["tag"] and same["row"] == 0


def test_what_if_rows_name_missing_and_unknown_features(live):
    client, servable = live
    row = _latest_features(servable).loc[1, servable["features"]].to_dict()
    lacking = {k: v for k, v in row.items() if k != "recency_days"}
    response = client.post("/predict_features", json={"rows": [row, {**lacking, "colour": 1.0}]})
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert {e["type"] for e in errors} == {"missing_features", "unknown_features"}
    assert all(e["loc"] == ["rows", 1] for e in errors)
    assert "recency_days" in response.json()["error"] and "colour" in response.json()["error"]
    for payload in ({"rows": [{**row, "frequency": "lots"}]}, {"rows": []}, {"rows": [row] * 21}):
        response = client.post("/predict_features", json=payload)
        assert response.status_code == 422 and response.json()["detail"][0]["loc"][0] == "rows", response.text


def test_stale_online_features_are_flagged(live):
    client, servable = live
    from custintel import feature_store

    settings = load_settings(servable["params"])
    store = feature_store.open_store(settings)
    row = _latest_features(servable).loc[1]
    ttl_days = settings.features.horizon_days
    old = settings.snapshot_dates()[-1] - timedelta(days=ttl_days + 30)
    for projection in feature_store.feature_service(store).feature_view_projections:
        names = [field.name for field in projection.features]
        values = {n: [float(row[n])] for n in names}
        frame = pd.DataFrame({ENTITY_KEY: [STALE_ID], TIMESTAMP: [old], **values})
        store.write_to_online_store(projection.name, frame)
    answer = client.post("/predict", json={"customer_ids": [STALE_ID]}).json()["predictions"][0]
    assert answer["found"] and answer["stale"], answer
    assert datetime.fromisoformat(answer["feature_timestamp"]) == old.astimezone(UTC)
    assert "materialize" in answer["warning"]
    fresh = client.post("/predict", json={"customer_ids": [1]}).json()["predictions"][0]
    assert answer["churn_probability"] == pytest.approx(fresh["churn_probability"], abs=1e-5)  # same values


def test_api_key_is_required_except_for_health_and_metrics(live):
    client, _ = live
    url = str(client.base_url)
    assert httpx.post(f"{url}/predict", json={"customer_ids": [1]}).status_code == 401
    wrong = httpx.post(f"{url}/predict", json={"customer_ids": [1]}, headers={"X-API-Key": "nope"})
    assert wrong.status_code == 401 and "CUSTINTEL_API_KEY" in wrong.json()["error"]
    assert httpx.get(f"{url}/segments").status_code == 401
    for path in ("/healthz", "/livez", "/readyz", "/metrics"):
        assert httpx.get(f"{url}{path}").status_code == 200, path


def test_metrics_count_requests_by_endpoint_and_status(live):
    client, _ = live
    client.post("/predict", json={"customer_ids": []})
    client.post("/predict", json={"customer_ids": [1]})
    text = client.get("/metrics").text
    counted = {}
    for line in text.splitlines():
        if line.startswith("bentoml_service_request_total{") and 'endpoint="/predict"' in line:
            code = line.split('http_response_code="')[1].split('"')[0]
            counted[code] = float(line.rsplit(" ", 1)[1])
    assert counted.get("200", 0) >= 1 and counted.get("422", 0) >= 1, counted
    assert "bentoml_service_request_duration_seconds" in text


def test_model_artifacts_are_checked_against_recorded_hashes(servable, tmp_path):
    import shutil
    import subprocess
    import sys

    from custintel.errors import UserError
    from custintel.model_integrity import check_file
    from tests.servable import serving_env
    from training.predictor import Predictor

    model = tmp_path / "model"
    shutil.copytree(f"{servable['run_dir']}/model", model)
    assert Predictor.load(model).feature_names == servable["features"]
    weights = model / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:-1] + bytes([weights.read_bytes()[-1] ^ 1]))
    with pytest.raises(UserError, match="weights.pt does not match the SHA-256"):
        Predictor.load(model)
    with pytest.raises(UserError, match="missing"):
        check_file(model / "gone.json", "0" * 64, "m")
    # a registered model whose segments file changed in the store is refused by serving
    script = ("import sys; from pathlib import Path; from custintel.config import load_settings; "
              "from custintel.runtime import configure; s = load_settings(sys.argv[1]); configure(s); "
              "from custintel import registry; from custintel.scoring import OnlineScorer; "
              "tag = registry.save_to_store(Path(sys.argv[2]), {}); "
              "seg = registry.model_path(tag) / 'segments.json'; seg.write_text(seg.read_text() + ' '); "
              "OnlineScorer.from_settings(s, tag)")
    model_dir = f"{servable['run_dir']}/model"
    proc = subprocess.run([sys.executable, "-c", script, str(servable["params"]), model_dir],
                          capture_output=True, text=True, env=serving_env(servable["params"]), timeout=300)
    assert proc.returncode != 0
    assert "segments.json does not match the SHA-256 recorded" in proc.stderr, proc.stderr[-3000:]


def _json_values():
    from hypothesis import strategies as st

    scalars = (st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.floats()
               | st.text(max_size=20))
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                        | st.dictionaries(st.text(max_size=10), inner, max_size=5), max_leaves=20)


def test_fuzzed_requests_never_get_a_server_error(live):
    """Random JSON (and raw bytes) at both POST endpoints: 200, 401, 413 or 422, never 5xx."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    client, servable = live
    values = _json_values()
    names = st.sampled_from(servable["features"]) | st.text(max_size=12)
    payloads = (values
                | st.fixed_dictionaries({"customer_ids": st.lists(values | st.integers(), max_size=60)})
                | st.fixed_dictionaries({"rows": st.lists(st.dictionaries(names, values), max_size=3)}))

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(path=st.sampled_from(["/predict", "/predict_features"]), payload=payloads,
           raw=st.none() | st.binary(max_size=64))
    def check(path, payload, raw):
        content = raw if raw is not None else json.dumps(payload).encode()
        response = client.post(path, content=content, headers={"content-type": "application/json"})
        assert response.status_code in (200, 413, 422), (path, content[:300], response.text[:300])

    check()
    _still_serving(client)


def test_serving_refuses_a_model_the_feature_service_no_longer_matches(servable, tmp_path):
    """The data changes under the model (its text features are no longer served): the scorer the
    service builds at start refuses to load, naming the features."""
    import shutil
    import subprocess
    import sys

    import yaml

    from tests.servable import serving_env

    source = load_settings(servable["params"]).data_dir
    shutil.copytree(source, tmp_path / "data", symlinks=True)
    meta_file = tmp_path / "data" / "offline" / "features.json"
    meta = json.loads(meta_file.read_text())
    meta["feature_groups"] = [g for g in meta["feature_groups"] if g != "text_features"]
    meta_file.write_text(json.dumps(meta))
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({**servable["raw"], "paths": {"data_dir": str(tmp_path / "data")}}))
    script = ("import sys; from custintel.config import load_settings; "
              "from custintel.runtime import configure; s = load_settings(sys.argv[1]); configure(s); "
              "from custintel import feature_store; "
              "feature_store.apply_definitions(feature_store.open_store(s), s); "
              "from custintel.scoring import OnlineScorer; OnlineScorer.from_settings(s)")
    proc = subprocess.run([sys.executable, "-c", script, str(params)], capture_output=True, text=True,
                          env=serving_env(params), timeout=300)
    assert proc.returncode != 0
    assert "that the feature service no longer serves" in proc.stderr and "review_sentiment" in proc.stderr, \
        proc.stderr[-3000:]


def test_cli_predict_sends_the_api_key_from_the_environment(live):
    import subprocess
    import sys

    from tests.servable import serving_env

    client, servable = live
    command = [sys.executable, "-m", "custintel.cli", "-p", str(servable["params"]), "predict", "1",
               "--url", str(client.base_url)]
    env = serving_env(servable["params"], {"CUSTINTEL_API_KEY": KEY})
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["predictions"][0]["found"]
    without = subprocess.run(command, capture_output=True, text=True, env=serving_env(servable["params"]),
                             timeout=120)
    assert "X-API-Key header missing" in without.stdout
