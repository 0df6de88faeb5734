"""A heavy model's rollout rehearsed by `inferstack dev --candidate`: the candidate's container runs beside the
current one on the local endpoint, which splits the calls as SageMaker's blue/green deployment does; a candidate
failing on a share of its inputs is rolled back, and every error names the candidate's version."""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import onnx
import pytest

from tests.conftest import ROOT
from tests.e2e.conftest import PRO_KEY, RunningStack, eventually, start_dev, stop_dev

pytestmark = pytest.mark.e2e

MLP = ROOT / "models" / "mlp.onnx"
FAILING_HANDLER = """
import numpy as np

def preprocess(body):
    x = np.asarray(body["features"] if isinstance(body, dict) else body, dtype=np.float32)
    if (x[:, 0] > 0.5).any():
        raise RuntimeError("this version fails on half of its inputs")
    return {"features": x}
"""


@pytest.fixture(scope="module")
def heavy_rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    if not MLP.exists():
        pytest.fail("models/mlp.onnx is missing: run `make models`")
    d = tmp_path_factory.mktemp("heavy-rollout")
    candidate = onnx.load(str(MLP))
    candidate.doc_string = "v2"
    onnx.save(candidate, str(d / "mlp-v2.onnx"))
    (d / "v2").mkdir()
    (d / "v2" / "handler.py").write_text(FAILING_HANDLER)
    manifest = d / "inferstack.toml"
    manifest.write_text(f"""
[api]
throttle = {{ rate = 5000, burst = 5000 }}
[[api.plans]]
name = "pro"
throttle = {{ rate = 5000, burst = 5000 }}
[[models]]
name = "mlp"
path = "{MLP}"
tier = "heavy"
instance_type = "ml.g5.xlarge"
[models.rollout]
strategy = "linear"
percent = 20
interval_min = 1
min_requests = 5
alarms = [{{ metric = "error_rate", threshold = 0.05 }}]
""")
    stack = start_dev(d / "dev.log", "--api-key", f"{PRO_KEY}:pro", "--time-scale", "12",
                      "--candidate", f"mlp={d / 'mlp-v2.onnx'},handler={d / 'v2' / 'handler.py'}", manifest=manifest)
    yield stack
    stop_dev(stack)


def test_a_failing_heavy_candidate_is_rolled_back_on_its_endpoint(heavy_rehearsal: RunningStack) -> None:
    answers: list[tuple[float, int, str | None]] = []
    decided = threading.Event()

    def call(seed: int) -> None:
        rng = random.Random(seed)
        left = 20
        with httpx.Client(base_url=heavy_rehearsal.url, headers={"x-api-key": PRO_KEY}, timeout=60) as client:
            while left > 0:
                started = time.monotonic()
                r = client.post("/v1/models/mlp/predict", json={"inputs": [[rng.random() for _ in range(512)]]})
                answers.append((started, r.status_code, r.headers.get("x-model-version")))
                left -= decided.is_set()

    def status() -> dict[str, Any]:
        (found,) = httpx.get(f"{heavy_rehearsal.url}/_inferstack/rollouts", timeout=10).json()["rollouts"]
        return found  # type: ignore[no-any-return]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    try:
        final: dict[str, Any] = eventually(lambda: (s := status())["phase"] != "shifting" and s, timeout_s=120)
    finally:
        decided.set()
        decided_at = time.monotonic()
        for t in threads:
            t.join()
    candidate, current = final["versions"]["candidate"]["version"], final["versions"]["current"]["version"]
    assert final["phase"] == "rolled-back" and final["decision"]["reason"].startswith("alarm: error_rate")
    window = [a for a in answers if a[0] < decided_at]
    errors = [a for a in window if a[1] >= 500]
    # every error came from the candidate's container and says so; its share stays within its traffic share
    assert errors and all(a[2] == candidate for a in errors)
    share = max(s["percent"] for s in final["schedule"] if s["at_s"] <= final["decision"]["after_s"]) / 100
    saw = sum(a[2] == candidate for a in window) / len(window)
    assert len(errors) / len(window) <= saw <= share + 3 * math.sqrt(share * (1 - share) / len(window))
    after = [a for a in answers if a[0] > decided_at]
    assert after and all(a[1] == 200 and a[2] == current for a in after)
    print(f"HEAVY-ROLLOUT-FIGURES decision={final['decision']} window={len(window)} saw_candidate={saw:.3f} "
          f"errors={len(errors)}")
