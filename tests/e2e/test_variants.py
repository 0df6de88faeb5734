"""A/B variants on `inferstack dev`: every answer names its variant and version, the observed split matches the
manifest's weights within statistical tolerance, and jobs run on the variants too."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import onnx
import pytest

from tests.e2e.conftest import PRO_KEY, RunningStack, eventually, start_dev, stop_dev

pytestmark = pytest.mark.e2e

REQUESTS = 400
WEIGHTS = {"control": 70, "tuned": 30}


@pytest.fixture(scope="module")
def ab_stack(tmp_path_factory: pytest.TempPathFactory, iris_model: Path) -> Iterator[RunningStack]:
    d = tmp_path_factory.mktemp("variants")
    tuned = onnx.load(str(iris_model))
    tuned.doc_string = "tuned"  # another file, another version
    onnx.save(tuned, str(d / "iris-tuned.onnx"))
    manifest = d / "inferstack.toml"
    manifest.write_text(f"""
[api]
throttle = {{ rate = 5000, burst = 5000 }}
[[api.plans]]
name = "pro"
throttle = {{ rate = 5000, burst = 5000 }}
[[models]]
name = "iris"
tier = "light"
variants = [{{ name = "control", path = "{iris_model}", weight = {WEIGHTS['control']} }},
            {{ name = "tuned", path = "{d / 'iris-tuned.onnx'}", weight = {WEIGHTS['tuned']} }}]
""")
    stack = start_dev(d / "dev.log", "--api-key", f"{PRO_KEY}:pro", manifest=manifest)
    yield stack
    stop_dev(stack)


def test_weights_hold_within_tolerance_and_each_answer_names_its_variant(ab_stack: RunningStack) -> None:
    seen: Counter[str] = Counter()
    versions: dict[str, set[str]] = {}
    with ab_stack.client() as client:
        for _ in range(REQUESTS):
            r = client.post("/v1/models/iris/predict", json={"inputs": {"features": [[5.1, 3.5, 1.4, 0.2]]}})
            assert r.status_code == 200 and r.json()["outputs"]["label"] == [0]
            variant = r.headers["x-model-variant"]
            seen[variant] += 1
            versions.setdefault(variant, set()).add(r.headers["x-model-version"])
            assert r.json()["version"] == r.headers["x-model-version"]
    # each variant answers with its own version, one each
    assert set(seen) == set(WEIGHTS) and all(len(v) == 1 for v in versions.values())
    assert versions["control"] != versions["tuned"]
    # and the catalog tells which version is which variant, with its weight
    with ab_stack.client() as client:
        listed = client.get("/v1/models/iris").json()["variants"]
    assert {v["name"]: (v["weight"], {v["version"]}) for v in listed} == \
        {name: (WEIGHTS[name], versions[name]) for name in WEIGHTS}
    # the observed shares within 4 standard deviations of a binomial with the manifest's weights
    for name, weight in WEIGHTS.items():
        p = weight / 100
        tolerance = 4 * math.sqrt(p * (1 - p) / REQUESTS)
        assert abs(seen[name] / REQUESTS - p) <= tolerance, (seen, tolerance)
    print(f"VARIANT-FIGURES {dict(seen)} of {REQUESTS}")


def test_jobs_run_on_a_variant_and_record_its_version(ab_stack: RunningStack) -> None:
    with ab_stack.client() as client:
        versions = {client.post("/v1/models/iris/predict", json={"inputs": [[5.1, 3.5, 1.4, 0.2]]}).headers[
            "x-model-version"] for _ in range(40)}
        job = client.post("/v1/jobs", json={"model": "iris", "inputs": [[5.1, 3.5, 1.4, 0.2]]}).json()
        done = eventually(lambda: (j := client.get(f"/v1/jobs/{job['job_id']}").json())["status"] == "succeeded"
                          and j)
    assert done["model_version"] in versions and done["result"]["label"] == [0]
