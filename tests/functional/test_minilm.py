"""The sentence-embedding example (all-MiniLM-L6-v2 with its handler) against its upstream implementation's
embeddings, committed in models/reference/minilm.json (sentence-transformers on PyTorch, from the same
checkpoint; no PyTorch here); and served by each tier's run time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from inferstack import env
from inferstack.inference.exceptions import InputValidationError
from inferstack.inference.session import Predictor
from inferstack.jobs.worker import InProcessRunner, Invalid, Succeeded
from inferstack.manifest import Manifest, ManifestError, parse_manifest
from inferstack_infra.catalog import build_catalog
from inferstack_infra.local.sagemaker import ModelServer
from inferstack_infra.packaging import stage_heavy_model
from models.build_minilm import MODEL_SHA256, load_reference, sha256
from tests.conftest import ROOT, load_event
from tests.functional.conftest import _import_fresh, _invoke
from tests.together import post_together

#: The committed reference: texts (accents, CJK, emoji, empty, whitespace, past 256 tokens ...), the upstream
#: tokenizer's token counts and sentence-transformers' unit embeddings.
REFERENCE = load_reference()
TEXTS: list[str] = REFERENCE["texts"]
SENTENCES = TEXTS[:8]  # short English sentences
TOLERANCE = 1e-4


def minilm_manifest(tier: str) -> Manifest:
    model: dict[str, Any] = {"name": "minilm", "path": "models/minilm/model.onnx", "tier": tier,
                             "handler": "models/minilm/handler.py"}
    if tier == "heavy":
        model.update(instance_type="ml.g5.xlarge", batching={"max_batch_size": 64, "max_delay_ms": 20})
    model["pad"] = {"input_ids": 0, "attention_mask": 0, "token_type_ids": 0}
    return parse_manifest({"name": "minilm", "models": [model]}, root=ROOT)


@pytest.fixture(scope="module")
def predictor(minilm_model: Path) -> Predictor:
    return Predictor.load(build_catalog(minilm_manifest("light"), bundled=False).models[0], Path("/"))


def embed(predictor: Predictor, texts: list[str]) -> np.ndarray:
    return np.array(predictor.predict({"text": texts})["embeddings"])


def test_the_model_is_the_pinned_build(minilm_model: Path) -> None:
    # models/build_minilm.py writes the graph from the checkpoint's tensors, the same bytes every time
    assert sha256(minilm_model) == MODEL_SHA256


def test_served_embeddings_match_the_upstream_reference_within_1e_4(predictor: Predictor) -> None:
    # GIVEN sentence-transformers' own encode of the reference texts (PyTorch, the same weights), committed
    want = REFERENCE["embeddings"]
    # WHEN the ONNX model embeds the same texts through its handler, as one batch and one by one
    out = predictor.predict({"text": TEXTS})
    batched = np.array(out["embeddings"])
    alone = np.concatenate([embed(predictor, [t]) for t in TEXTS])
    # THEN every component agrees within 1e-4, and the handler's tokenizer counts the upstream's tokens
    assert batched.shape == want.shape
    assert np.abs(batched - want).max() < TOLERANCE
    assert np.abs(alone - want).max() < TOLERANCE
    assert out["tokens"] == REFERENCE["tokens"]


def test_each_text_gets_a_384_dimensional_unit_vector(predictor: Predictor) -> None:
    out = predictor.predict({"text": TEXTS})
    vectors = np.array(out["embeddings"])
    assert vectors.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert out["tokens"][TEXTS.index("ok")] == 3 and out["tokens"][-1] == 256  # [CLS] ok [SEP]; truncated


@pytest.mark.parametrize(("text", "paraphrase", "unrelated"), [
    ("A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse."),
    ("The cat sat on the mat.", "A cat was sitting on a rug.", "Interest rates rose again this quarter."),
    ("How do I reset my password?", "I forgot my password, how can I change it?", "What is the capital of France?"),
])
def test_a_paraphrase_is_closer_than_an_unrelated_sentence(predictor: Predictor, text: str, paraphrase: str,
                                                           unrelated: str) -> None:
    a, b, c = embed(predictor, [text, paraphrase, unrelated])
    assert a @ b > a @ c + 0.2, (a @ b, a @ c)


@pytest.mark.parametrize(("inputs", "field"), [
    ({"text": "not a list"}, "inputs.text"),
    ({"text": []}, "inputs.text"),
    ({"text": ["ok", 3]}, "inputs.text[1]"),
    ({"text": ["x" * 20_001]}, "inputs.text[0]"),
    ({"text": ["ok"] * 129}, "inputs.text"),
    ({"texts": ["ok"]}, "inputs.texts"),
    ([[1, 2, 3]], "inputs"),
])
def test_bad_requests_are_422s_naming_the_field(predictor: Predictor, inputs: Any, field: str) -> None:
    with pytest.raises(InputValidationError) as caught:
        predictor.predict(inputs)
    assert field in [p.input for p in caught.value.problems]


def test_the_predict_function_serves_it_on_the_light_tier(tmp_path: Path, minilm_model: Path) -> None:
    catalog = tmp_path / "catalog.json"
    build_catalog(minilm_manifest("light"), bundled=False).dump(catalog)
    module = _import_fresh("inferstack.functions.predict.handler",
                           {env.CATALOG_PATH: str(catalog), env.MODEL_NAME: "minilm"})
    event = load_event("apiGatewayProxyEvent_predict.json")
    event.update(path="/v1/models/minilm/predict", body=json.dumps({"inputs": {"text": SENTENCES[:3]}}))
    response = _invoke(module, "predict-minilm")(event)
    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert body["model"] == "minilm" and len(body["outputs"]["embeddings"]) == 3


def test_the_job_worker_stacks_jobs_of_similar_length(predictor: Predictor) -> None:
    # GIVEN jobs of one to three texts of different lengths, and a bad one
    jobs: list[Any] = [{"text": SENTENCES[i:i + 1 + i % 3]} for i in range(5)] + [{"text": [None]}]
    runner = InProcessRunner(predictor)
    outcomes = runner.run(jobs)
    # THEN each good job gets its own embeddings, the bad one fails alone, and the runs are shared
    for job, outcome in zip(jobs[:-1], outcomes[:-1], strict=True):
        assert isinstance(outcome, Succeeded)
        np.testing.assert_allclose(outcome.outputs["embeddings"], embed(predictor, job["text"]), atol=1e-5)
    assert isinstance(outcomes[-1], Invalid)
    # (the manifest's `pad`: texts of every length are padded to the longest and run as one call)
    assert runner.calls == 1


@pytest.fixture(scope="module")
def heavy(tmp_path_factory: pytest.TempPathFactory, minilm_model: Path) -> Iterator[ModelServer]:
    manifest = minilm_manifest("heavy")
    model_dir = stage_heavy_model(manifest.models[0], manifest, build_catalog(manifest),
                                  tmp_path_factory.mktemp("minilm") / "model", dependencies=False)
    server = ModelServer("minilm", model_dir, log=lambda line: None)
    server.start()
    yield server
    server.stop()


def test_the_heavy_container_batches_concurrent_requests(heavy: ModelServer, predictor: Predictor) -> None:
    # GIVEN 48 concurrent requests of one or two short texts
    requests = [[f"Sentence number {i} is about {topic}." for topic in ("cats", "the weather")[:1 + i % 2]]
                for i in range(48)]
    before = httpx.get(f"{heavy.url}/stats").json()
    answers = post_together(heavy, [{"inputs": {"text": t}} for t in requests])
    after = httpx.get(f"{heavy.url}/stats").json()
    # THEN the dynamic batcher ran them in far fewer inference calls, and each got its own embeddings
    assert after["requests"] - before["requests"] == 48
    assert after["inference_calls"] - before["inference_calls"] <= 24
    for texts, answer in zip(requests, answers, strict=True):
        assert answer.status_code == 200, answer.text
        np.testing.assert_allclose(answer.json()["outputs"]["embeddings"], embed(predictor, texts), atol=1e-5)


def test_the_heavy_container_batches_texts_of_different_lengths(heavy: ModelServer, predictor: Predictor) -> None:
    # GIVEN 40 concurrent requests of one text each, 2 to 40 words long (5 to 43 tokens: no two alike apart)
    requests = [[" ".join(["word"] * (2 + i % 39)) + f" number {i}."] for i in range(40)]
    before = httpx.get(f"{heavy.url}/stats").json()
    answers = post_together(heavy, [{"inputs": {"text": t}} for t in requests])
    after = httpx.get(f"{heavy.url}/stats").json()
    # THEN they ran padded together, in calls of like lengths (how many: what a call costs on this machine), with
    # little padding: all of them padded to the longest would be 2x the real tokens
    assert after["inference_calls"] - before["inference_calls"] <= 20
    padded, real = (after[k] - before[k] for k in ("padded_elements", "real_elements"))
    assert real <= padded < 1.5 * real
    # AND each got the embedding of its text run alone, at its own length
    for texts, answer in zip(requests, answers, strict=True):
        assert answer.status_code == 200, answer.text
        np.testing.assert_allclose(answer.json()["outputs"]["embeddings"], embed(predictor, texts), atol=1e-5)


def test_the_heavy_container_runs_an_instance_per_core_or_two_on_a_cpu(heavy: ModelServer) -> None:
    from inferstack.heavy.instances import plan
    from inferstack.inference.session import available_vcpus

    stats = httpx.get(f"{heavy.url}/stats").json()
    assert stats["instances"] == plan("auto", cuda=False, vcpus=available_vcpus())[0]
    # and what it loaded is out of the garbage collector's sight (a full collection scans only requests' objects)
    assert stats["gc_frozen_objects"] > 10_000


def test_the_heavy_container_serves_the_reference_embeddings(heavy: ModelServer) -> None:
    answer = httpx.post(f"{heavy.url}/invocations", json={"inputs": {"text": TEXTS}}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert np.abs(np.array(answer.json()["outputs"]["embeddings"]) - REFERENCE["embeddings"]).max() < TOLERANCE


def test_the_heavy_container_answers_bad_requests_with_422(heavy: ModelServer) -> None:
    response = httpx.post(f"{heavy.url}/invocations", json={"inputs": {"text": [1]}})
    assert response.status_code == 422
    assert response.json()["errors"][0]["input"] == "inputs.text[0]"



@pytest.mark.parametrize(("pad", "field"), [({"input_ids": 0, "tokens": 0}, "models[0] (minilm).pad.tokens")])
def test_a_pad_naming_no_input_is_refused_at_build_naming_the_field(minilm_model: Path, pad: dict[str, int],
                                                                    field: str) -> None:
    manifest = minilm_manifest("light")
    manifest.models[0] = manifest.models[0].model_copy(update={"pad": pad})
    with pytest.raises(ManifestError) as caught:
        build_catalog(manifest, bundled=False)
    assert [where for where, _ in caught.value.problems] == [field]
    assert "no input 'tokens'" in str(caught.value)


def test_the_heavy_container_reads_the_pad_from_its_model_directory(tmp_path: Path, minilm_model: Path) -> None:
    manifest = minilm_manifest("heavy")
    model_dir = stage_heavy_model(manifest.models[0], manifest, build_catalog(manifest), tmp_path / "model",
                                  dependencies=False)
    assert json.loads((model_dir / "inferstack.json").read_text())["pad"] == {
        "input_ids": 0, "attention_mask": 0, "token_type_ids": 0}
