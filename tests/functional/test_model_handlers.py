"""The model handler contract, on the iris model with small handlers written for each test: who is at fault
decides the status, the schemas reach the catalog, and the same handler serves the predict function, the job
worker and the heavy container."""

from __future__ import annotations

import json
import logging
import textwrap
from pathlib import Path
from typing import Any

import pytest

from inferstack import env
from inferstack.catalog import CatalogEntry
from inferstack.inference.exceptions import HandlerError, HandlerLoadError, InputValidationError
from inferstack.inference.handlers import load_handler
from inferstack.inference.session import Predictor
from inferstack.jobs.worker import Errored, InProcessRunner, Invalid, Succeeded
from inferstack.manifest import Manifest, ManifestError, parse_manifest
from inferstack_infra.catalog import build_catalog
from inferstack_infra.local.sagemaker import ModelServer
from inferstack_infra.packaging import stage_heavy_model
from tests.conftest import ROOT, load_event
from tests.functional.conftest import _import_fresh, _invoke

#: A handler that takes named measurements and answers species names: the pattern of a real handler.
SPECIES = '''
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from inferstack.inference.handlers import InvalidInput

NAMES = ["setosa", "versicolor", "virginica"]


class Flower(BaseModel):
    sepal_length: float = Field(gt=0)
    sepal_width: float = Field(gt=0)
    petal_length: float = Field(gt=0)
    petal_width: float = Field(gt=0)


class Request(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"flowers": [
        {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]}]})
    flowers: list[Flower] = Field(min_length=1, max_length=100)


class Response(BaseModel):
    species: list[str]
    confidence: list[float]


def preprocess(body):
    for i, f in enumerate(body.flowers):
        if f.petal_length > 3 * f.sepal_length:
            raise InvalidInput("petal longer than three sepals: not an iris", field=f"flowers[{i}].petal_length")
    rows = [[f.sepal_length, f.sepal_width, f.petal_length, f.petal_width] for f in body.flowers]
    return {"features": np.array(rows, dtype=np.float64)}  # float64: cast to the model's float32


def postprocess(outputs, body):
    return Response(species=[NAMES[i] for i in outputs["label"]],
                    confidence=outputs["probabilities"].max(axis=1).tolist())
'''

SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
VIRGINICA = {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}
VERSICOLOR = {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 4.2, "petal_width": 1.5}
#: The same handler with a bug that one input triggers (the handler's fault, not the input's).
POISONED = SPECIES.replace("    for i, f in enumerate(body.flowers):",
                           "    if body.flowers[0].sepal_length == 6.66:\n        raise RuntimeError('poisoned')\n"
                           "    for i, f in enumerate(body.flowers):")


def write_handler(directory: Path, source: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "handler.py"
    path.write_text(textwrap.dedent(source))
    return path


def manifest_with(handler: Path, iris: Path, tier: str = "light") -> Manifest:
    model: dict[str, Any] = {"name": "species", "path": str(iris), "tier": tier, "handler": str(handler)}
    if tier == "heavy":
        model["instance_type"] = "ml.g5.xlarge"
    return parse_manifest({"name": "handlers", "models": [model]}, root=ROOT)


def predictor_for(tmp: Path, iris: Path, source: str) -> Predictor:
    manifest = manifest_with(write_handler(tmp / "species", source), iris)
    return Predictor.load(build_catalog(manifest, bundled=False).models[0], Path("/"))


@pytest.fixture(scope="module")
def species(tmp_path_factory: pytest.TempPathFactory, iris_model: Path) -> Predictor:
    return predictor_for(tmp_path_factory.mktemp("species"), iris_model, SPECIES)


def test_a_handler_turns_the_body_into_tensors_and_the_outputs_into_the_response(species: Predictor) -> None:
    out = species.predict({"flowers": [SETOSA, VIRGINICA, VERSICOLOR]})
    assert out["species"] == ["setosa", "virginica", "versicolor"]
    assert all(0.3 < c <= 1 for c in out["confidence"])


def test_request_schema_failures_are_422s_naming_each_field(species: Predictor) -> None:
    with pytest.raises(InputValidationError) as caught:
        species.predict({"flowers": [SETOSA, {**VIRGINICA, "petal_width": -1}, {"sepal_length": 5}]})
    paths = [p.input for p in caught.value.problems]
    assert "inputs.flowers[1].petal_width" in paths
    assert "inputs.flowers[2].sepal_width" in paths and "inputs.flowers[2].petal_length" in paths


def test_invalid_input_raised_by_the_handler_is_a_422_naming_its_field(species: Predictor) -> None:
    with pytest.raises(InputValidationError) as caught:
        species.predict({"flowers": [SETOSA, {**SETOSA, "petal_length": 40}]})
    assert [p.as_dict() for p in caught.value.problems] == [{
        "input": "inputs.flowers[1].petal_length", "detail": "petal longer than three sepals: not an iris"}]


@pytest.mark.parametrize(("change", "message"), [
    ('return {"features": np.zeros((1, 4), np.float32), "extra": np.zeros(1)}', "extra: the model has no such input"),
    ('return {"features": np.zeros((1, 5), np.float32)}', "dimension 1 must be 4"),
    ('return {"features": np.array([["a", "b", "c", "d"]])}', "cannot be cast to the model's float32"),
    ('return [1, 2]', "preprocess must return a dict"),
    ('raise KeyError("vocabulary")', "preprocess failed: KeyError: 'vocabulary'"),
])
def test_a_handler_bug_in_preprocess_is_a_handler_error(tmp_path: Path, iris_model: Path, change: str,
                                                        message: str) -> None:
    source = SPECIES.replace('    return {"features": np.array(rows, dtype=np.float64)}  # float64: cast to the '
                             "model's float32", f"    {change}")
    predictor = predictor_for(tmp_path, iris_model, source)
    with pytest.raises(HandlerError, match=message.replace("(", r"\(").replace("[", r"\[")):
        predictor.predict({"flowers": [SETOSA]})


def test_a_response_that_breaks_the_response_schema_is_a_handler_error(tmp_path: Path, iris_model: Path) -> None:
    source = SPECIES.replace("return Response(species=[NAMES[i] for i in outputs[\"label\"]],",
                             "return dict(species=[None for i in outputs[\"label\"]],")
    predictor = predictor_for(tmp_path, iris_model, source)
    with pytest.raises(HandlerError, match="not a valid Response"):
        predictor.predict({"flowers": [SETOSA]})


def test_a_postprocess_may_take_the_tensors_and_defaults_to_nested_lists(tmp_path: Path, iris_model: Path) -> None:
    with_inputs = SPECIES.replace("def postprocess(outputs, body):", "def postprocess(outputs, body, inputs):\n"
                                  "    assert inputs['features'].dtype == np.float32  # the cast tensors")
    assert predictor_for(tmp_path / "a", iris_model, with_inputs).predict({"flowers": [SETOSA]})["species"] == [
        "setosa"]
    without = SPECIES[:SPECIES.index("def postprocess")]
    assert predictor_for(tmp_path / "b", iris_model, without).predict({"flowers": [SETOSA]})["label"] == [0]


@pytest.mark.parametrize(("source", "message"), [
    ("x = 1\n", "must define preprocess"),
    ("import not_a_module\ndef preprocess(body): pass\n", "importing handler .* failed: ModuleNotFoundError"),
    ("Request = dict\ndef preprocess(body): pass\n", "Request must be a pydantic BaseModel"),
    ("def preprocess(body): pass\ndef postprocess(outputs): pass\n", "postprocess must take"),
])
def test_a_broken_handler_module_fails_to_load_with_the_reason(tmp_path: Path, source: str, message: str) -> None:
    with pytest.raises(HandlerLoadError, match=message):
        load_handler(write_handler(tmp_path, source))


def test_lib_beside_the_handler_is_importable(tmp_path: Path) -> None:
    # GIVEN a package installed in lib/ beside the handler, as in the heavy tier's model archive
    (tmp_path / "lib" / "vendored_thing").mkdir(parents=True)
    (tmp_path / "lib" / "vendored_thing" / "__init__.py").write_text("ANSWER = 42\n")
    handler = load_handler(write_handler(tmp_path, "import vendored_thing\ndef preprocess(body):\n"
                                         "    return {'x': [vendored_thing.ANSWER]}\n"))
    assert handler.preprocess({})["x"].tolist() == [42]


def test_the_catalog_carries_the_schemas_and_a_handler_change_is_a_new_version(tmp_path: Path,
                                                                               iris_model: Path) -> None:
    handler = write_handler(tmp_path / "species", SPECIES)
    entry = build_catalog(manifest_with(handler, iris_model)).models[0]
    assert entry.handler == "handlers/species/handler.py"
    assert entry.request_schema is not None and entry.response_schema is not None
    assert entry.request_schema["properties"]["flowers"]["maxItems"] == 100
    assert set(entry.response_schema["properties"]) == {"species", "confidence"}
    plain = parse_manifest({"models": [{"name": "species", "path": str(iris_model), "tier": "light"}]}, root=ROOT)
    assert build_catalog(plain).models[0].version != entry.version
    handler.write_text(SPECIES + "\n# changed\n")
    assert build_catalog(manifest_with(handler, iris_model)).models[0].version != entry.version


@pytest.mark.parametrize(("where", "message"), [
    ("handler.py", "needs a directory of its own"),
    ("species/handler.txt", "is not a Python file"),
    ("species/missing.py", "does not exist"),
])
def test_the_manifest_checks_the_handler(tmp_path: Path, iris_model: Path, where: str, message: str) -> None:
    if where.endswith("handler.py"):
        write_handler(tmp_path, SPECIES)
    raw = {"models": [{"name": "species", "path": str(iris_model), "tier": "light", "handler": where}]}
    with pytest.raises(ManifestError, match=message) as caught:
        parse_manifest(raw, root=tmp_path)
    assert caught.value.problems[0][0] == "models[0] (species).handler"


def test_a_handler_directory_may_not_hold_another_model(tmp_path: Path, iris_model: Path) -> None:
    handler = write_handler(tmp_path / "shared", SPECIES)
    (tmp_path / "shared" / "other.onnx").write_bytes(iris_model.read_bytes())
    raw = {"models": [{"name": "species", "path": str(iris_model), "tier": "light", "handler": str(handler)},
                      {"name": "other", "path": "shared/other.onnx", "tier": "light"}]}
    with pytest.raises(ManifestError, match="also holds the model file of other"):
        parse_manifest(raw, root=tmp_path)


# --- the same handler in each place that runs models -----------------------------------------------------


def test_predict_function_answers_through_the_handler_and_attributes_faults(
        tmp_path: Path, iris_model: Path, caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN the light predict function serving a model whose handler breaks on a poisoned flower
    manifest = manifest_with(write_handler(tmp_path / "species", POISONED), iris_model)
    catalog = tmp_path / "catalog.json"
    build_catalog(manifest, bundled=False).dump(catalog)
    module = _import_fresh("inferstack.functions.predict.handler",
                           {env.CATALOG_PATH: str(catalog), env.MODEL_NAME: "species"})
    predict = _invoke(module, "predict-species")
    event = load_event("apiGatewayProxyEvent_predict.json")
    event["path"] = "/v1/models/species/predict"

    def call(inputs: Any) -> tuple[int, dict[str, Any]]:
        response = predict({**event, "body": json.dumps({"inputs": inputs})})
        return response["statusCode"], json.loads(response["body"])

    # WHEN good, bad and poisoned requests arrive THEN 200 / 422 naming the field / 500 with the trace logged
    status, body = call({"flowers": [VIRGINICA]})
    assert status == 200 and body["outputs"]["species"] == ["virginica"] and body["model"] == "species"
    status, body = call({"flowers": [{**SETOSA, "sepal_width": "wide"}]})
    assert status == 422 and body["errors"][0]["input"] == "inputs.flowers[0].sepal_width"
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        status, body = call({"flowers": [{**SETOSA, "sepal_length": 6.66}]})
    assert status == 500 and "poisoned" not in body["detail"]  # the client learns nothing internal
    assert "RuntimeError: poisoned" in caplog.text and "Traceback" in caplog.text


def test_the_job_worker_runs_the_handler_per_job_and_stacks_the_tensors(species: Predictor) -> None:
    runner = InProcessRunner(species)
    outcomes = runner.run([{"flowers": [SETOSA]}, {"flowers": [VIRGINICA, VERSICOLOR]}, {"flowers": "none"},
                           {"flowers": [{**SETOSA, "petal_length": 99}]}])
    assert isinstance(outcomes[0], Succeeded) and outcomes[0].outputs["species"] == ["setosa"]
    assert isinstance(outcomes[1], Succeeded) and outcomes[1].outputs["species"] == ["virginica", "versicolor"]
    assert isinstance(outcomes[2], Invalid) and isinstance(outcomes[3], Invalid)
    assert runner.calls == 1  # the two good jobs' tensors ran as one batch


def test_the_job_worker_retries_a_handler_bug(tmp_path: Path, iris_model: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    broken = predictor_for(tmp_path, iris_model, SPECIES.replace("NAMES = [", "NAMES = ['only one']\nUNUSED = ["))
    with caplog.at_level(logging.ERROR):
        outcomes = InProcessRunner(broken).run([{"flowers": [VIRGINICA]}])
    assert isinstance(outcomes[0], Errored) and "IndexError" in outcomes[0].message


def test_the_heavy_container_serves_the_handler_from_its_model_archive(tmp_path: Path, iris_model: Path) -> None:
    import httpx

    # GIVEN the SageMaker model directory of a heavy model with a handler
    manifest = manifest_with(write_handler(tmp_path / "species", POISONED), iris_model, tier="heavy")
    model_dir = stage_heavy_model(manifest.models[0], manifest, build_catalog(manifest), tmp_path / "model")
    config = json.loads((model_dir / "inferstack.json").read_text())
    assert config["handler"] == "code/handler.py" and (model_dir / "code" / "handler.py").is_file()
    CatalogEntry.model_validate({**config, "artifact": "model.onnx", "inputs": [], "outputs": []})
    logged: list[str] = []
    server = ModelServer("species", model_dir, log=logged.append)
    server.start()
    try:
        # WHEN it is invoked THEN the handler shapes the answer and faults are attributed as everywhere
        ok = httpx.post(f"{server.url}/invocations", json={"inputs": {"flowers": [SETOSA, VIRGINICA]}})
        assert ok.status_code == 200 and ok.json()["outputs"]["species"] == ["setosa", "virginica"]
        bad = httpx.post(f"{server.url}/invocations", json={"inputs": {"flowers": [{"petal": 1}]}})
        assert bad.status_code == 422 and bad.json()["errors"][0]["input"].startswith("inputs.flowers[0].")
        broken = httpx.post(f"{server.url}/invocations",
                            json={"inputs": {"flowers": [{**SETOSA, "sepal_length": 6.66}]}})
        assert broken.status_code == 500 and "poisoned" not in broken.text
    finally:
        server.stop()
    assert any("RuntimeError: poisoned" in line and "Traceback" in line for line in logged)
