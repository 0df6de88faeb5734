"""The EMF lines the functions print, from real API Gateway events (tests/events/), and the trace ID in their
problem answers."""

from __future__ import annotations

import json

import pytest

from inferstack.observability import emf
from tests.conftest import load_event
from tests.emf import check_emf, emf_documents, metric_values
from tests.functional.conftest import Handler

TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def predict_event(body: object) -> dict[str, object]:
    event = load_event("apiGatewayProxyEvent_predict.json")
    event["body"] = json.dumps(body)
    return event


def test_a_prediction_prints_one_valid_emf_document_for_its_model_and_version(
        predict_handler: Handler, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    # WHEN the light function answers a prediction of 2 rows
    response = predict_handler(predict_event({"inputs": {"features": [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]]}}))
    assert response["statusCode"] == 200
    # THEN it printed, before returning, one EMF document with the model's metrics and dimensions
    docs = emf_documents(capsys.readouterr().out)
    assert len(docs) == 1
    doc = docs[0]
    check_emf(doc)
    assert doc["model"] == "iris" and len(doc["version"]) == 12 and doc["service"] == "inferstack"
    dimensions = doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    assert ["service", "model"] in dimensions and any("version" in d for d in dimensions)
    assert doc[emf.REQUESTS] == [1.0] and doc[emf.STATUS_2XX] == [1.0] and doc[emf.ROWS] == [2.0]
    for name in (emf.LATENCY, emf.INFERENCE_LATENCY, emf.PREPROCESS_LATENCY, emf.POSTPROCESS_LATENCY):
        assert len(doc[name]) == 1 and doc[name][0] >= 0, name
    assert doc[emf.LATENCY][0] >= doc[emf.INFERENCE_LATENCY][0]


def test_a_bad_request_counts_a_4xx_and_a_validation_failure_of_its_kind(
        predict_handler: Handler, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    capsys.readouterr()
    # GIVEN a traced invocation (Lambda sets the variable per invocation)
    monkeypatch.setenv("_X_AMZN_TRACE_ID", TRACE)
    # WHEN a request with the wrong shape, then one with malformed JSON, arrive
    wrong = predict_handler(predict_event({"inputs": {"features": [[1.0, 2.0]]}}))
    event = load_event("apiGatewayProxyEvent_predict.json")
    event["body"] = "{not json"
    malformed = predict_handler(event)
    # THEN each is a 4xx whose problem names the trace as its instance
    assert wrong["statusCode"] == 422 and malformed["statusCode"] == 400
    for response in (wrong, malformed):
        assert json.loads(response["body"])["instance"] == "urn:x-amzn-trace-id:1-5759e988-bd862e3fe1be46a994272793"
    # AND the metrics count them by status class and by kind, with the trace ID beside them
    docs = emf_documents(capsys.readouterr().out)
    for doc in docs:
        check_emf(doc)
        assert doc["traceId"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert sum(metric_values(docs, emf.STATUS_4XX, model="iris")) == 2
    assert metric_values(docs, emf.VALIDATION_FAILURES, kind="invalid-input") == [1.0]
    assert metric_values(docs, emf.VALIDATION_FAILURES, kind="malformed-json") == [1.0]


def test_the_full_app_counts_the_model_routes_it_answers_with_the_status_the_client_got(
        api_handler: Handler, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    # WHEN the API function (the FastAPI app, which serves no model itself) gets a prediction for iris
    response = api_handler(predict_event({"inputs": [[5.1, 3.5, 1.4, 0.2]]}))
    problem = json.loads(response["body"])
    assert response["statusCode"] == 500 and problem["type"].endswith(":misrouted")
    # THEN its metrics count iris's request as the 5xx the client got (answered by the outermost error handler)
    docs = emf_documents(capsys.readouterr().out)
    for doc in docs:
        check_emf(doc)
    assert metric_values(docs, emf.STATUS_5XX, model="iris") == [1.0]
    assert metric_values(docs, emf.STATUS_2XX, model="iris") == []
    # AND an unknown model's name makes no metrics of its own
    api_handler(load_event("apiGatewayProxyEvent_unknownModelPredict.json"))
    assert [d["model"] for d in emf_documents(capsys.readouterr().out)] == []
