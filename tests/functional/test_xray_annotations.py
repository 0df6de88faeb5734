"""X-Ray annotations on Lambda (in memory, `tests.xray`): the light predict function, the API function's job
submission, the worker (a subsegment per job) and the webhook function carry model, version and job ID."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from inferstack.api.app import create_app
from inferstack.api.lambda_adapter import lambda_handler
from inferstack.rollout import MODEL_VERSION_HEADER
from inferstack_infra.catalog import build_catalog
from inferstack_infra.local.runtime import LocalContext
from tests.conftest import EVENTS
from tests.functional import jobs_world
from tests.functional.conftest import Handler
from tests.functional.jobs_world import World
from tests.xray import MemoryEmitter, xray_on

__all__ = ["xray_on"]


def _event(name: str, **changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    event.update(changes)
    return event


def test_the_light_predict_path_annotates_model_and_the_version_that_answered(
        predict_handler: Handler, xray_on: MemoryEmitter) -> None:
    # WHEN the lean predict path answers twice (one good request, one bad)
    good = predict_handler(_event("apiGatewayProxyEvent_predict.json"))
    bad = predict_handler(_event("apiGatewayProxyEvent_predict.json", body='{"inputs": {"features": "x"}}'))
    assert good["statusCode"] == 200 and bad["statusCode"] == 422
    # THEN each invocation sent one "## predict" subsegment annotated with the model and the answering version
    subs = xray_on.subsegments("## predict")
    assert [s["annotations"] for s in subs] == [
        {"model": "iris", "version": good["headers"][MODEL_VERSION_HEADER]},
        {"model": "iris", "version": bad["headers"][MODEL_VERSION_HEADER]}]
    assert all(s["trace_id"] == "1-5759e988-bd862e3fe1be46a994272793" for s in subs)


def test_a_job_is_found_by_its_id_from_submission_to_webhook(
        world: World, iris_model: Path, xray_on: MemoryEmitter) -> None:
    # GIVEN the API function's app (through the Lambda adapter) with the jobs tier
    catalog = build_catalog(jobs_world.test_manifest(iris_model), bundled=False)
    app = lambda_handler(create_app(catalog, jobs=world.service))
    url = "http://127.0.0.1:9/hook"  # nothing listens: the delivery fails and is retried
    body = json.dumps({"model": "iris", "inputs": {"features": [[5.1, 3.5, 1.4, 0.2]]}, "webhook": {"url": url}})
    # WHEN a job is submitted, run by the worker, and its webhook attempted
    answer = app(_event("apiGatewayProxyEvent_predict.json", path="/v1/jobs", resource="/v1/jobs", body=body),
                 LocalContext("api", 1024, 10, "req-1"))
    assert answer["statusCode"] == 202, answer["body"]
    job_id = json.loads(answer["body"])["job_id"]
    messages = world.receive("jobs-iris")
    world.ack("jobs-iris", messages, world.worker().handle(world.event("jobs-iris", messages)))
    world.deliver_webhooks()
    # THEN the API function's subsegment has the model and the job ID (set in the route's threadpool thread)
    (api,) = xray_on.subsegments("## handler")
    assert api["annotations"] == {"model": "iris", "job_id": job_id}
    # AND the worker's per-job subsegment the version that ran it, and the webhook's the same three
    version = world.store.get(job_id).model_version
    assert version
    (job,) = xray_on.subsegments("## job")
    assert job["annotations"] == {"model": "iris", "version": version, "job_id": job_id}
    (hook,) = xray_on.subsegments("## webhook")
    assert hook["annotations"] == {"model": "iris", "version": version, "job_id": job_id}
