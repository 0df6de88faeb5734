"""The Lambda entry points called with real API Gateway REST proxy events (tests/events/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from tests.conftest import ROOT, load_event
from tests.functional.conftest import Handler


def body_of(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def predict_event(body: Any, *, raw: str | None = None) -> dict[str, Any]:
    event = load_event("apiGatewayProxyEvent_predict.json")
    event["body"] = raw if raw is not None else json.dumps(body)
    return event


def test_health(api_handler: Handler) -> None:
    response = api_handler(load_event("apiGatewayProxyEvent_health.json"))
    assert response["statusCode"] == 200
    assert body_of(response) == {"status": "ok"}


def test_models_lists_signatures_from_the_onnx_graph(api_handler: Handler) -> None:
    response = api_handler(load_event("apiGatewayProxyEvent_models.json"))
    assert response["statusCode"] == 200
    models = {m["name"]: m for m in body_of(response)["models"]}
    assert set(models) == {"iris", "minilm"}
    iris = models["iris"]
    assert iris["name"] == "iris" and iris["tier"] == "light" and len(iris["version"]) == 12
    assert iris["inputs"] == [{"name": "features", "dtype": "float32", "shape": ["N", 4]}]
    assert iris["outputs"] == [{"name": "label", "dtype": "int64", "shape": ["N"]},
                               {"name": "probabilities", "dtype": "float32", "shape": ["N", 3]}]


def test_one_model(api_handler: Handler) -> None:
    response = api_handler(load_event("apiGatewayProxyEvent_model.json"))
    assert response["statusCode"] == 200 and body_of(response)["name"] == "iris"


def test_unknown_model_is_a_404_problem(api_handler: Handler) -> None:
    response = api_handler(load_event("apiGatewayProxyEvent_unknownModelPredict.json"))
    assert response["statusCode"] == 404
    assert response["headers"]["content-type"] == "application/problem+json"
    assert response["isBase64Encoded"] is False
    problem = body_of(response)
    assert problem["type"] == "urn:inferstack:problem:model-not-found" and problem["status"] == 404


def test_an_answered_4xx_is_not_logged_as_a_failure(api_handler: Handler, caplog: Any) -> None:
    """A client's mistake is answered by its handler, not re-raised: Mangum logged "An error occurred running
    the application" with a traceback for every 404 when the handler sat in Starlette's outermost middleware."""
    caplog.set_level("DEBUG")
    response = api_handler(load_event("apiGatewayProxyEvent_unknownModelPredict.json"))
    assert response["statusCode"] == 404
    assert not [r for r in caplog.records if r.exc_info or "error occurred" in r.getMessage()]


def test_predict_returns_one_row_per_input_row_matching_onnxruntime(predict_handler: Handler,
                                                                     iris_model: Path) -> None:
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
    response = predict_handler(predict_event({"inputs": {"features": rows}}))
    assert response["statusCode"] == 200
    body = body_of(response)
    assert body["model"] == "iris" and len(body["version"]) == 12
    assert response["headers"]["x-model-version"] == body["version"]  # who answered, in a header too
    label, proba = ort.InferenceSession(str(iris_model)).run(None, {"features": np.array(rows, np.float32)})
    assert body["outputs"]["label"] == label.tolist() == [0, 2, 1]
    np.testing.assert_allclose(body["outputs"]["probabilities"], proba, rtol=1e-6)


def test_predict_accepts_the_bare_array(predict_handler: Handler) -> None:
    response = predict_handler(predict_event({"inputs": [[5.1, 3.5, 1.4, 0.2]]}))
    assert response["statusCode"] == 200 and body_of(response)["outputs"]["label"] == [0]


def test_malformed_json_is_400(predict_handler: Handler) -> None:
    response = predict_handler(predict_event(None, raw='{"inputs": [[1, 2'))
    assert response["statusCode"] == 400
    assert body_of(response)["type"] == "urn:inferstack:problem:malformed-json"


def test_wrong_shape_is_422_naming_the_input(predict_handler: Handler) -> None:
    response = predict_handler(predict_event({"inputs": {"features": [[1, 2, 3]]}}))
    assert response["statusCode"] == 422
    problem = body_of(response)
    assert problem["errors"] == [{"input": "inputs.features", "expected": "[N, 4]", "given": "[1, 3]",
                                  "detail": "dimension 1 must be 4, got 3 (expected shape [N, 4], given [1, 3])"}]


def test_missing_inputs_field_is_422(predict_handler: Handler) -> None:
    response = predict_handler(predict_event({"input": [[1, 2, 3, 4]]}))
    assert response["statusCode"] == 422
    assert "inputs" in body_of(response)["detail"]


def test_body_over_the_limit_is_413(predict_handler: Handler) -> None:
    rows = [[5.1, 3.5, 1.4, 0.2]] * 4000  # ~90 KB, over the 64 KiB set for this test
    response = predict_handler(predict_event({"inputs": rows}))
    assert response["statusCode"] == 413
    assert body_of(response)["type"] == "urn:inferstack:problem:payload-too-large"


def test_base64_body_is_decoded(predict_handler: Handler) -> None:
    import base64

    event = predict_event(None, raw=base64.b64encode(b'{"inputs": [[5.1, 3.5, 1.4, 0.2]]}').decode())
    event["isBase64Encoded"] = True
    assert predict_handler(event)["statusCode"] == 200


def test_openapi_document_describes_the_contract(api_handler: Handler) -> None:
    event = load_event("apiGatewayProxyEvent_health.json")
    event.update(path="/v1/openapi.json", resource="/v1/openapi.json")
    doc = body_of(api_handler(event))
    assert set(doc["paths"]) >= {"/v1/health", "/v1/models", "/v1/models/{name}", "/v1/models/{name}/predict"}
    predict = doc["paths"]["/v1/models/{name}/predict"]["post"]
    assert "422" in predict["responses"] and "requestBody" in predict


def test_api_function_does_not_import_onnxruntime(catalog_file: Path) -> None:
    # GIVEN the API function's entry point WHEN imported in a fresh interpreter THEN neither onnxruntime nor
    # numpy is loaded (it must stay small and start fast)
    script = (
        "import sys\n"
        "import inferstack.functions.api.handler\n"
        "print(sorted(m for m in ('onnxruntime', 'numpy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"INFERSTACK_CATALOG": str(catalog_file), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]"


def test_predict_function_serves_other_routes_through_the_full_app(predict_handler: Handler) -> None:
    # GIVEN the predict function's lean path handles POST predict only WHEN another request reaches it
    event = load_event("apiGatewayProxyEvent_model.json")
    response = predict_handler(event)
    # THEN the FastAPI app answers it, with the same contract (the model is known, so: its info)
    assert response["statusCode"] == 200 and body_of(response)["name"] == "iris"


def test_predict_cold_path_imports_neither_fastapi_nor_pydantic(catalog_file: Path) -> None:
    script = ("import sys\nimport inferstack.functions.predict.handler\n"
              "print(sorted(m for m in ('fastapi', 'pydantic', 'mangum', 'starlette') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"INFERSTACK_CATALOG": str(catalog_file), "INFERSTACK_MODEL": "iris",
                              "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]"


def test_a_refused_predict_names_the_version_too(predict_handler: Handler) -> None:
    # GIVEN a body of the wrong shape WHEN predict answers 422 THEN the answer still names the version
    response = predict_handler(predict_event({"inputs": {"features": [[1.0, 2.0]]}}))
    assert response["statusCode"] == 422 and len(response["headers"]["x-model-version"]) == 12
