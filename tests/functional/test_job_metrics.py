"""The jobs tier's metrics: what the worker and the webhook function print as EMF after each batch."""

from __future__ import annotations

import pytest

from inferstack.jobs.schemas import JobRequest
from inferstack.observability import emf, registry
from inferstack_infra.local.webhook_receiver import WebhookReceiver
from tests.emf import check_emf, emf_documents, metric_values
from tests.functional.jobs_world import World


def test_jobs_and_webhook_attempts_are_counted_per_model(world: World, receiver: WebhookReceiver,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a good job whose receiver fails once, and a job with bad input
    receiver.script = [500, 200]
    for rows, url in (([[5.1, 3.5, 1.4, 0.2]], receiver.url), ([[1.0, 2.0]], None)):
        body = JobRequest.model_validate({"model": "iris", "inputs": {"features": rows},
                                          **({"webhook": {"url": url}} if url else {})})
        world.service.submit(body, owner="key-owner")
    registry.flush()  # (what earlier tests in this process left unflushed, e.g. another model's, goes out first)
    capsys.readouterr()
    # WHEN the worker runs them (one batch) and the webhook function delivers, then retries
    messages = world.receive("jobs-iris")
    assert len(messages) == 2
    world.ack("jobs-iris", messages, world.worker().handle(world.event("jobs-iris", messages)))
    world.deliver_webhooks()
    world.deliver_webhooks()
    # THEN valid EMF documents say, for iris: one job succeeded, one failed, their wait and the batch's run time
    docs = emf_documents(capsys.readouterr().out)
    for doc in docs:
        check_emf(doc)
        assert doc["model"] == "iris"
    assert metric_values(docs, emf.JOBS_SUCCEEDED) == [1.0] and metric_values(docs, emf.JOBS_FAILED) == [1.0]
    assert metric_values(docs, emf.JOB_BATCH_SIZE) == [2.0]
    waits, runs = metric_values(docs, emf.JOB_QUEUE_WAIT), metric_values(docs, emf.JOB_RUN_TIME)
    assert len(waits) == 2 and all(0 <= w < 60_000 for w in waits) and len(runs) == 2 and runs[0] > 0
    # AND the webhook's two attempts by outcome: retried once, then delivered
    assert sum(metric_values(docs, emf.WEBHOOK_ATTEMPTS)) == 2
    assert sum(metric_values(docs, emf.WEBHOOK_RETRIED)) == 1 and sum(metric_values(docs, emf.WEBHOOK_DELIVERED)) == 1
    assert metric_values(docs, emf.WEBHOOK_GAVE_UP) == []


def test_the_trace_goes_with_the_job_through_its_queue(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a submission inside a traced invocation (Lambda's variable; Lineage is not part of a trace header)
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;"
                                           "Sampled=1;Lineage=a87bd80c:0")
    world.service.submit(JobRequest.model_validate({"model": "iris", "inputs": [[5.1, 3.5, 1.4, 0.2]]}),
                         owner="key-owner")
    # THEN its message carries the trace for the worker's invocation (SQS's AWSTraceHeader, which Lambda follows)
    (message,) = world.receive("jobs-iris")
    assert message["Attributes"]["AWSTraceHeader"] == (
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
    # AND without a trace (outside Lambda) nothing is added
    monkeypatch.delenv("_X_AMZN_TRACE_ID")
    world.service.submit(JobRequest.model_validate({"model": "iris", "inputs": [[5.1, 3.5, 1.4, 0.2]]}),
                         owner="key-owner")
    (untraced,) = world.receive("jobs-iris")
    assert "AWSTraceHeader" not in untraced.get("Attributes", {})
