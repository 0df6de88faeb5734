"""The result cache, the digits cascade, latency budgets and the circuit breaker under `inferstack dev`, with
faults injected into the heavy container (stopped with SIGSTOP: slow; SIGKILL: gone). Each test states what must
hold. The order matters little: every fault test waits for recovery before it ends."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.e2e.conftest import PRO_KEY, RunningStack, child_processes, eventually, start_dev, stop_dev

pytestmark = pytest.mark.e2e
COOL_DOWN_S = 3
HEAL_S = 90


@pytest.fixture(scope="module")
def heldout(digits_models: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((digits_models / "digits-heldout.json").read_text())
    return data


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, digits_models: Path) -> Iterator[RunningStack]:
    d = tmp_path_factory.mktemp("cascades")
    manifest = d / "inferstack.toml"
    manifest.write_text(f"""
name = "cascades"
[[api.plans]]
name = "free"
throttle = {{ rate = 500, burst = 1000 }}
[[models]]
name = "digits-light"
path = "{digits_models / 'digits-light.onnx'}"
tier = "light"
cache = {{ ttl_s = 60, max_entries = 100 }}
[[models]]
name = "digits-heavy"
path = "{digits_models / 'digits-heavy.onnx'}"
tier = "heavy"
instance_type = "ml.g5.xlarge"
budget_ms = 2000
fallback = "digits-light"
circuit = {{ failures = 2, window_s = 60, cool_down_s = {COOL_DOWN_S}, slow_call_ms = 500 }}
cache = {{ ttl_s = 60 }}
[[cascades]]
name = "digits"
stages = ["digits-light", "digits-heavy"]
accept = {{ output = "probabilities", min_confidence = 0.8 }}
budget_ms = 2000
cache = {{ ttl_s = 60 }}
""")
    running = start_dev(d / "dev.log", "--api-key", f"{PRO_KEY}:free", manifest=manifest)
    yield running
    stop_dev(running)


def heavy_pid(stack: RunningStack) -> int:
    (pid,) = child_processes(stack.proc.pid, "inferstack.heavy.server")
    return pid


def as_floats(value: Any) -> Any:
    if isinstance(value, list):
        return [as_floats(v) for v in value]
    if isinstance(value, dict):
        return {k: as_floats(v) for k, v in value.items()}
    return float(value) if isinstance(value, int) else value


def cascade(client: httpx.Client, rows: list[list[int]], **headers: str) -> httpx.Response:
    return client.post("/v1/cascades/digits/predict", json={"inputs": {"pixels": rows}},
                       headers={k.replace("_", "-"): v for k, v in headers.items()})


def test_a_repeated_request_is_a_hit_with_the_same_body_and_etag_and_if_none_match_is_304(
        stack: RunningStack, heldout: dict[str, Any]) -> None:
    client = stack.client()
    for path, body in (("/v1/models/digits-light/predict", {"inputs": heldout["pixels"][:3]}),
                       ("/v1/models/digits-heavy/predict", {"inputs": {"pixels": heldout["pixels"][3:6]}}),
                       ("/v1/cascades/digits/predict", {"inputs": {"pixels": heldout["pixels"][6:9]}})):
        first, again = client.post(path, json=body), client.post(path, json=body)
        assert (first.status_code, again.status_code) == (200, 200), first.text
        assert (first.headers["x-cache"], again.headers["x-cache"]) == ("miss", "hit"), path
        assert first.content == again.content and first.headers["etag"] == again.headers["etag"]
        assert first.headers["cache-control"] == "private, max-age=60"
        # the same inputs written another way (ints as floats) are the same request
        floats = as_floats(body)
        assert json.dumps(floats) != json.dumps(body)
        assert client.post(path, json=floats).headers["x-cache"] == "hit", path
        revalidated = client.post(path, json=body, headers={"If-None-Match": first.headers["etag"]})
        assert revalidated.status_code == 304 and revalidated.content == b""
        other = client.post(path, json=body, headers={"If-None-Match": '"another"'})
        assert other.status_code == 200


def test_a_heavy_job_whose_inputs_were_answered_completes_from_the_cache(
        stack: RunningStack, heldout: dict[str, Any]) -> None:
    # GIVEN a heavy answer in the cache and the heavy container stopped (it cannot answer anything)
    client = stack.client()
    rows = {"pixels": heldout["pixels"][530:534]}
    predicted = client.post("/v1/models/digits-heavy/predict", json={"inputs": rows})
    assert predicted.status_code == 200 and "x-degraded" not in predicted.headers
    pid = heavy_pid(stack)
    os.kill(pid, signal.SIGSTOP)
    try:
        # WHEN a job with the same inputs is submitted THEN it completes, with the cached outputs
        job_id = client.post("/v1/jobs", json={"model": "digits-heavy", "inputs": rows}).json()["job_id"]
        job = eventually(lambda: (j := client.get(f"/v1/jobs/{job_id}").json())["status"] in ("succeeded", "failed")
                         and j, 30)
        assert job["status"] == "succeeded" and job["result"] == predicted.json()["outputs"]
    finally:
        os.kill(pid, signal.SIGCONT)


def test_a_cascade_job_answers_row_by_row_with_the_stage_of_each(
        stack: RunningStack, heldout: dict[str, Any]) -> None:
    client = stack.client()
    rows = heldout["pixels"][200:260]
    direct = cascade(client, rows).json()
    submitted = client.post("/v1/jobs", json={"cascade": "digits", "inputs": {"pixels": rows}})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    job = eventually(lambda: (j := client.get(f"/v1/jobs/{job_id}").json())["status"] in ("succeeded", "failed")
                     and j, 60)
    assert job["status"] == "succeeded" and job["model"] == "cascade/digits"
    result = job["result"]
    assert result["stage"] == direct["stage"] and result["escalated"] == direct["escalated"] > 0
    assert result["outputs"]["label"] == direct["outputs"]["label"]
    unknown = client.post("/v1/jobs", json={"cascade": "nope", "inputs": {"pixels": rows[:1]}})
    assert unknown.status_code == 404
    both = client.post("/v1/jobs", json={"cascade": "digits", "model": "digits-light", "inputs": rows[:1]})
    assert both.status_code == 422 and "not both" in both.json()["detail"]
    bad = client.post("/v1/jobs", json={"cascade": "digits", "inputs": {"pixels": [[1, 2]]}}).json()["job_id"]
    failed = eventually(lambda: (j := client.get(f"/v1/jobs/{bad}").json())["status"] in ("succeeded", "failed")
                        and j, 60)
    assert failed["status"] == "failed" and failed["attempts"] == 1


def test_bad_input_is_never_cached(stack: RunningStack) -> None:
    client = stack.client()
    for _ in range(2):
        bad = client.post("/v1/models/digits-light/predict", json={"inputs": [[1, 2, 3]]})
        assert bad.status_code == 422 and "x-cache" not in bad.headers and "etag" not in bad.headers


def test_the_cascade_escalates_only_the_rows_the_light_model_is_unsure_of(
        stack: RunningStack, heldout: dict[str, Any]) -> None:
    client = stack.client()
    rows = heldout["pixels"][100:220]
    answer = cascade(client, rows)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    light = client.post("/v1/models/digits-light/predict", json={"inputs": rows}).json()["outputs"]
    heavy = client.post("/v1/models/digits-heavy/predict", json={"inputs": rows}).json()["outputs"]
    unsure = np.max(np.array(light["probabilities"]), axis=1) < 0.8
    assert 0 < unsure.sum() < len(rows)
    assert body["stage"] == ["digits-heavy" if u else "digits-light" for u in unsure]
    assert body["escalated"] == int(unsure.sum()) and "degraded" not in body and "x-degraded" not in answer.headers
    expected = np.where(unsure, heavy["label"], light["label"])
    assert body["outputs"]["label"] == expected.tolist()
    listed = client.get("/v1/cascades").json()["cascades"]
    assert [c["name"] for c in listed] == ["digits"] and listed[0]["stages"] == ["digits-light", "digits-heavy"]
    assert client.post("/v1/cascades/nope/predict", json={"inputs": rows[:1]}).status_code == 404


def test_a_bad_budget_header_is_a_422(stack: RunningStack, heldout: dict[str, Any]) -> None:
    answer = cascade(stack.client(), heldout["pixels"][:2], x_latency_budget_ms="soon")
    assert answer.status_code == 422 and "x-latency-budget-ms" in answer.json()["detail"]


def test_a_budget_smaller_than_the_heavy_call_answers_degraded_from_the_light_stage(
        stack: RunningStack, heldout: dict[str, Any]) -> None:
    # GIVEN a heavy container that is slow (stopped) WHEN a request's budget is shorter than its call
    client = stack.client()
    pid = heavy_pid(stack)
    rows = heldout["pixels"][300:340]
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        answer = cascade(client, rows, x_latency_budget_ms="300")
        took = time.monotonic() - started
        # THEN the light stage's answer comes back, marked degraded, and is not cached
        assert answer.status_code == 200 and answer.headers["x-degraded"] == "budget"
        body = answer.json()
        assert body["degraded"] is True and set(body["stage"]) == {"digits-light"} and body["escalated"] > 0
        assert answer.headers["x-cache"] == "miss" and answer.headers["cache-control"] == "no-store"
        assert took < 20  # not held until the call's own timeout (25 s); loose: a loaded machine is slow
        # a plain heavy predict with a fallback answers from it, marked likewise
        plain = client.post("/v1/models/digits-heavy/predict", json={"inputs": rows[:2]},
                            headers={"x-latency-budget-ms": "300"})
        assert plain.status_code == 200 and plain.headers["x-degraded"] == "budget"
        assert plain.json()["answered_by"] == "digits-light"
    finally:
        os.kill(pid, signal.SIGCONT)
    # AND a 300 ms budget is too short to blame the endpoint: the circuit stays closed, full answers go on
    eventually(lambda: "x-degraded" not in cascade(client, rows).headers, HEAL_S)


def test_a_slow_heavy_container_opens_the_circuit_then_it_recovers_after_the_cool_down(
        stack: RunningStack, heldout: dict[str, Any]) -> None:
    client = stack.client()
    pid = heavy_pid(stack)
    rows = heldout["pixels"][400:440]
    os.kill(pid, signal.SIGSTOP)
    try:
        # two calls run past their 2 s budget (over slow_call_ms): each degraded, and they open the circuit
        reasons = [cascade(client, rows[i:i + 20]).headers.get("x-degraded") for i in (0, 20)]
        assert reasons == ["budget", "budget"]
        opened = cascade(client, rows)
        assert opened.status_code == 200 and opened.headers["x-degraded"] == "circuit-open"
        assert set(opened.json()["stage"]) == {"digits-light"}
    finally:
        os.kill(pid, signal.SIGCONT)
    # THEN after the cool-down a probe goes through and the heavy stage answers again
    time.sleep(COOL_DOWN_S)
    recovered = eventually(lambda: (r := cascade(client, rows)).status_code == 200
                           and "x-degraded" not in r.headers and r, HEAL_S)
    assert "digits-heavy" in recovered.json()["stage"]


def test_a_killed_heavy_container_gives_degraded_answers_then_recovery(
        stack: RunningStack, heldout: dict[str, Any]) -> None:
    client = stack.client()
    rows = heldout["pixels"][500:540]
    os.kill(heavy_pid(stack), signal.SIGKILL)
    down = cascade(client, rows)
    assert down.status_code == 200 and down.headers["x-degraded"] in ("unavailable", "circuit-open")
    assert set(down.json()["stage"]) == {"digits-light"}
    plain = client.post("/v1/models/digits-heavy/predict", json={"inputs": rows[:2]})
    assert plain.status_code == 200 and plain.headers.get("x-degraded") in ("unavailable", "circuit-open", None)
    # the local endpoint replaces the container; after the cool-down the heavy stage answers again
    recovered = eventually(lambda: (r := cascade(client, rows)).status_code == 200
                           and "x-degraded" not in r.headers and r, HEAL_S)
    assert "digits-heavy" in recovered.json()["stage"]
