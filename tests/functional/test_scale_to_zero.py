"""A heavy model that scales to zero: the local SageMaker stand-in's inference component (started by the first
call, stopped when idle, answering as SageMaker does meanwhile), the endpoint client's 503, and jobs waiting
in their queue without using up their deliveries."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from inferstack import env
from inferstack.heavy.endpoint import EndpointPredictor, scale_out_retry_after
from inferstack.heavy.exceptions import EndpointError, NoCapacityError
from inferstack.jobs import deferral
from inferstack.jobs.schemas import JobRequest
from inferstack.jobs.worker import EndpointRunner
from inferstack.manifest import Manifest, parse_manifest
from inferstack.topology import functions, inference_component_name
from inferstack_infra.catalog import build_catalog
from inferstack_infra.local.sagemaker import LocalSageMaker
from tests.conftest import ROOT
from tests.e2e.conftest import eventually
from tests.functional.jobs_world import World

MLP = ROOT / "models" / "mlp.onnx"
ENDPOINT = "zerotest-mlp"
ROW = [[0.5] * 512]


def zero_manifest() -> Manifest:
    if not MLP.exists():
        pytest.fail("models/mlp.onnx is missing: run `make models`")
    return parse_manifest({"name": "zerotest", "models": [{
        "name": "mlp", "path": str(MLP), "tier": "heavy", "instance_type": "ml.g5.xlarge",
        "instances": {"min": 0, "max": 2}}]}, root=ROOT)


@pytest.fixture(scope="module")
def sagemaker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSageMaker]:
    manifest = zero_manifest()
    lines: list[str] = []
    sm = LocalSageMaker(manifest, build_catalog(manifest, bundled=False), tmp_path_factory.mktemp("sm0"),
                        log=lambda part, line: lines.append(f"{part} | {line}"), scale_in_after_s=3)
    sm.start()
    yield sm
    sm.stop()


def runtime(sm: LocalSageMaker) -> Any:
    return boto3.client("sagemaker-runtime", endpoint_url=sm.endpoint_url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def invoke(sm: LocalSageMaker, **target: str) -> dict[str, Any]:
    response: dict[str, Any] = runtime(sm).invoke_endpoint(
        EndpointName=ENDPOINT, Body=json.dumps({"inputs": ROW}), ContentType="application/json", **target)
    return response


def test_the_model_is_an_inference_component_named_in_every_call() -> None:
    # GIVEN instances.min = 0 THEN the model's functions name its inference component; min >= 1 names none
    manifest = zero_manifest()
    component = inference_component_name(manifest, "mlp")
    assert component == "zerotest-mlp-ic"
    specs = [f for f in functions(manifest) if f.model == "mlp" and f.kind != "batch"]
    assert {f.kind for f in specs} == {"predict", "worker"}  # (Batch Transform's batch function calls no endpoint)
    assert all(f.environment("catalog.json", manifest)[env.INFERENCE_COMPONENT] == component for f in specs)
    always_on = parse_manifest({"name": "x", "models": [{"name": "mlp", "path": str(MLP), "tier": "heavy",
                                                        "instance_type": "ml.g5.xlarge"}]}, root=ROOT)
    assert inference_component_name(always_on, "mlp") is None


def test_at_zero_a_call_is_refused_and_starts_a_copy_which_then_serves(sagemaker: LocalSageMaker) -> None:
    zero = sagemaker.components[ENDPOINT]
    assert not zero.server.running  # nothing runs before the first call
    # WHEN a call names no component THEN SageMaker's ValidationError says the header is needed
    with pytest.raises(ClientError) as info:
        invoke(sagemaker)
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert "Inference Component Name header is required" in info.value.response["Error"]["Message"]
    # WHEN the first call reaches the component at zero copies THEN it is refused with "no capacity"
    with pytest.raises(ClientError) as info:
        invoke(sagemaker, InferenceComponentName="zerotest-mlp-ic")
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert "has no capacity" in info.value.response["Error"]["Message"]
    # THEN a copy starts, and once it is up the same call is served
    body = eventually(lambda: _served(sagemaker), timeout_s=90)
    assert len(body["outputs"]["logits"]) == 1
    # AND after scale_in_after_s without a call the copy stops: the endpoint is at zero again
    eventually(lambda: zero.state == "down" and not zero.server.running, timeout_s=30)
    with pytest.raises(ClientError) as info:
        invoke(sagemaker, InferenceComponentName="zerotest-mlp-ic")
    assert "has no capacity" in info.value.response["Error"]["Message"]
    eventually(lambda: _served(sagemaker), timeout_s=90)


def _served(sm: LocalSageMaker) -> dict[str, Any] | None:
    try:
        body: dict[str, Any] = json.loads(invoke(sm, InferenceComponentName="zerotest-mlp-ic")["Body"].read())
        return body
    except ClientError as exc:
        assert "has no capacity" in exc.response["Error"]["Message"], exc.response
        return None


def test_a_wrong_component_name_is_a_validation_error(sagemaker: LocalSageMaker) -> None:
    with pytest.raises(ClientError) as info:
        invoke(sagemaker, InferenceComponentName="other-ic")
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert "does not exist" in info.value.response["Error"]["Message"]


def test_the_endpoint_client_answers_503_with_retry_after_at_zero(sagemaker: LocalSageMaker,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the component scaled in (the idle loop stops it) and the Retry-After the local stack sets
    zero = sagemaker.components[ENDPOINT]
    eventually(lambda: zero.state == "down", timeout_s=30)
    monkeypatch.setenv(env.SCALE_OUT_RETRY_AFTER_S, "2")
    entry = build_catalog(zero_manifest()).models[0]
    predictor = EndpointPredictor(entry, ENDPOINT, client=runtime(sagemaker), component="zerotest-mlp-ic")
    # WHEN predict is called at zero THEN NoCapacityError: a 503 "scaling-out" problem with Retry-After
    with pytest.raises(NoCapacityError) as info:
        predictor.predict(ROW)
    assert info.value.status == 503 and info.value.retry_after == 2
    assert info.value.problem.slug == "scaling-out" and not info.value.is_client_error
    # AND the job worker's runner turns it into a wait, not a failure
    outcome = EndpointRunner(predictor).run([ROW])[0]
    assert type(outcome).__name__ in {"Deferred", "Succeeded"}  # the copy may be up by now
    assert eventually(lambda: _predicted(predictor), timeout_s=90)


def _predicted(predictor: EndpointPredictor) -> bool:
    try:
        return len(predictor.predict(ROW)["logits"]) == 1
    except EndpointError as exc:
        assert isinstance(exc, NoCapacityError)
        return False


# -- jobs wait in their queue ------------------------------------------------------------------------------

class ScaledToZero:
    """An endpoint predictor stand-in: no capacity for the first `cold_calls` calls, then answers."""

    def __init__(self, cold_calls: int) -> None:
        self.cold_calls, self.calls = cold_calls, 0

    def predict_many(self, inputs: Sequence[Any], concurrency: int = 8) -> list[dict[str, Any] | EndpointError]:
        self.calls += 1
        if self.calls <= self.cold_calls:
            return [NoCapacityError("starting", retry_after=1) for _ in inputs]
        return [{"label": [0] * len(raw["features"])} for raw in inputs]


def submit(world: World) -> str:
    body = JobRequest.model_validate({"model": "iris", "inputs": {"features": [[5.1, 3.5, 1.4, 0.2]]}})
    job, _ = world.service.submit(body, owner="owner")
    return job.job_id


def run_worker(world: World, runner: Any, clock: Any = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    messages = world.receive("jobs-iris")
    worker = world.worker(runner)
    if clock:
        worker.deferrer.clock = clock
    response = worker.handle(world.event("jobs-iris", messages))
    world.ack("jobs-iris", messages, response)
    return messages, response


def test_a_job_waits_in_its_queue_while_the_model_starts_without_using_up_deliveries(world: World) -> None:
    # GIVEN a job, and a model at zero for its first three deliveries (max_receive_count is 2 in this world)
    job_id = submit(world)
    runner = EndpointRunner(ScaledToZero(cold_calls=3))  # type: ignore[arg-type]
    for _ in range(3):
        # WHEN the worker meets "no capacity" THEN the delivery succeeds (nothing to retry) ...
        messages, response = run_worker(world, runner)
        assert len(messages) == 1 and response["batchItemFailures"] == []
        # ... the job is back to queued, its attempt uncounted ...
        job = world.store.get(job_id)
        assert job.status == "queued" and job.attempts == 0
        # ... and a new message with a delay holds it: not visible at once, then a first delivery again
        assert world.receive("jobs-iris") == []
        handed_back = eventually(lambda: world.receive("jobs-iris"), timeout_s=10)
        assert handed_back[0]["Attributes"]["ApproximateReceiveCount"] == "1"
        assert json.loads(handed_back[0]["Body"])["waiting_since"] > 0
        world.expire_visibility("jobs-iris", handed_back)
    # WHEN the model is up THEN the job runs once and succeeds, never having reached the dead-letter queue
    run_worker(world, runner)
    job = world.store.get(job_id)
    assert job.status == "succeeded" and job.attempts == 1 and job.result == {"label": [0]}
    assert world.receive("jobs-iris-dlq") == []


def test_a_job_stops_waiting_after_max_wait_and_takes_the_failure_path(world: World) -> None:
    # GIVEN a job that has already waited longer than MAX_WAIT_S
    job_id = submit(world)
    runner = EndpointRunner(ScaledToZero(cold_calls=99))  # type: ignore[arg-type]
    run_worker(world, runner)
    handed_back = eventually(lambda: world.receive("jobs-iris"), timeout_s=10)
    world.expire_visibility("jobs-iris", handed_back)
    later = time.time() + deferral.MAX_WAIT_S + 60
    # WHEN the model is still at zero THEN the delivery fails like a transient error, with the reason noted
    messages, response = run_worker(world, runner, clock=lambda: later)
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [messages[0]["MessageId"]]
    job = world.store.get(job_id)
    assert job.status == "running" and "did not come up" in (job.last_error or "")


def test_the_local_stack_tells_functions_a_short_retry_after(sagemaker: LocalSageMaker,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the local stack: its container starts in seconds, so its functions are told to say 2 s
    assert sagemaker.environment()[env.SCALE_OUT_RETRY_AFTER_S] == "2"
    monkeypatch.setenv(env.SCALE_OUT_RETRY_AFTER_S, "2")
    assert scale_out_retry_after() == 2
    # AND deployed (nothing set), a wake takes minutes: a minute
    monkeypatch.delenv(env.SCALE_OUT_RETRY_AFTER_S)
    assert scale_out_retry_after() == 60
