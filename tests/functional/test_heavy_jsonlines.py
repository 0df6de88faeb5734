"""The heavy container's JSON Lines `/invocations` (a Batch Transform job's records, `SplitType: Line`,
`BatchStrategy: MultiRecord`): one answer line per input line, in order; bad lines answered as error lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from inferstack import env
from inferstack_infra.catalog import build_catalog
from inferstack_infra.local.sagemaker import ModelServer
from inferstack_infra.packaging import stage_heavy_model
from tests.functional.test_heavy import direct, heavy_manifest, rows
from tests.functional.test_minilm import REFERENCE, TOLERANCE, minilm_manifest

JSONL = {"Content-Type": "application/jsonlines"}


def _start(manifest: Any, name: str, tmp: Path, **kwargs: Any) -> ModelServer:
    model_dir = stage_heavy_model(manifest.models[0], manifest, build_catalog(manifest), tmp / "model", **kwargs)
    server = ModelServer(name, model_dir, log=lambda line: None)
    server.start()
    return server


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    import os

    os.environ[env.HEAVY_MAX_PAYLOAD_MB] = "1"  # the transform job's MaxPayloadInMB reaches the container so
    try:
        server = _start(heavy_manifest(), "mlp", tmp_path_factory.mktemp("mlp"))
    finally:
        del os.environ[env.HEAVY_MAX_PAYLOAD_MB]
    yield server
    server.stop()


@pytest.fixture(scope="module")
def minilm(tmp_path_factory: pytest.TempPathFactory, minilm_model: Path) -> Iterator[ModelServer]:
    server = _start(minilm_manifest("heavy"), "minilm", tmp_path_factory.mktemp("minilm"), dependencies=False)
    yield server
    server.stop()


def post(server: ModelServer, lines: list[bytes]) -> httpx.Response:
    return httpx.post(f"{server.url}/invocations", content=b"".join(line + b"\n" for line in lines),
                      headers=JSONL, timeout=120)


def answer_lines(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/jsonlines")
    assert response.content.endswith(b"\n")
    return [json.loads(line) for line in response.content.decode().split("\n")[:-1]]


def test_each_line_gets_its_own_answer_line_in_order_equal_to_direct_inference(mlp: ModelServer) -> None:
    # GIVEN 80 rows of the MLP's features, one per line, some with an id
    x = rows(80, 7)
    lines = [json.dumps({"features": r, **({"id": f"r{i}"} if i % 3 == 0 else {})}).encode()
             for i, r in enumerate(x)]
    before = httpx.get(f"{mlp.url}/stats").json()
    answers = answer_lines(post(mlp, lines))
    after = httpx.get(f"{mlp.url}/stats").json()
    # THEN one line per row, in order, each the model's outputs for its row (and its id when it had one)
    assert len(answers) == 80
    expected = direct(x)
    got = np.array([a["outputs"]["logits"] for a in answers])
    np.testing.assert_allclose(got, expected["logits"], rtol=1e-4, atol=1e-5)
    assert [a.get("id") for a in answers] == [f"r{i}" if i % 3 == 0 else None for i in range(80)]
    # AND the rows were stacked by the dynamic batcher (max batch 32), not run one by one
    assert after["inference_calls"] - before["inference_calls"] <= 80 // 32 + 3


def test_bad_lines_are_error_lines_and_never_fail_the_request_or_other_lines(mlp: ModelServer) -> None:
    good = rows(2, 1)
    lines = [json.dumps({"features": good[0]}).encode(),
             b"{not json",
             b"",
             b"[1, 2]",
             json.dumps({"id": 5, "features": [1.0, 2.0]}).encode(),  # wrong shape
             json.dumps({"features": ["a"] * 512}).encode(),  # wrong type
             json.dumps({"id": "x", "nope": good[0]}).encode(),  # wrong input name
             json.dumps({"features": good[1]}).encode() + b"\r"]  # CRLF line ending
    answers = answer_lines(post(mlp, lines))
    assert len(answers) == len(lines)
    kinds = [a["error"]["type"] if "error" in a else "ok" for a in answers]
    assert kinds == ["ok", "malformed-line", "malformed-line", "malformed-line", "invalid-input",
                     "invalid-input", "invalid-input", "ok"]
    assert answers[4]["id"] == 5 and answers[6]["id"] == "x"
    assert "features" in answers[4]["error"]["detail"]
    np.testing.assert_allclose([answers[0]["outputs"]["logits"], answers[7]["outputs"]["logits"]],
                               direct(good)["logits"], rtol=1e-4, atol=1e-5)


def test_a_body_over_max_payload_is_a_413_and_execution_parameters_name_it(mlp: ModelServer) -> None:
    params = httpx.get(f"{mlp.url}/execution-parameters").json()
    assert params == {"MaxConcurrentTransforms": 1, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 1}
    line = json.dumps({"features": rows(1, 2)[0]}).encode()
    response = post(mlp, [line] * (1024 * 1024 // len(line) + 1))
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    # the container still serves afterwards
    assert len(answer_lines(post(mlp, [line]))) == 1


def test_the_handler_model_scores_text_lines_as_its_predict_does(minilm: ModelServer) -> None:
    # GIVEN the reference texts, one handler request body per line, and bad lines between them
    texts = REFERENCE["texts"]
    lines = [json.dumps({"id": i, "text": [t]}).encode() for i, t in enumerate(texts)]
    lines.insert(3, b'{"text": "not a list"}')
    lines.insert(5, b'{"text": [1]}')
    lines.insert(7, b"\xff\xfe not utf-8")
    answers = answer_lines(post(minilm, lines))
    assert len(answers) == len(lines)
    errors = [answers.pop(i) for i in (7, 5, 3)]
    assert [e["error"]["type"] for e in errors] == ["malformed-line", "invalid-input", "invalid-input"]
    # THEN each text's embedding is the upstream reference's, with its id
    assert [a["id"] for a in answers] == list(range(len(texts)))
    got = np.array([a["outputs"]["embeddings"][0] for a in answers])
    assert np.abs(got - np.array(REFERENCE["embeddings"])).max() < TOLERANCE
    # AND equal to the container's own predict of the same texts
    single = httpx.post(f"{minilm.url}/invocations", json={"inputs": {"text": texts[:4]}}, timeout=60).json()
    np.testing.assert_allclose(got[:4], single["outputs"]["embeddings"], atol=1e-5)
