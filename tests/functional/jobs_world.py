"""A jobs tier wired to a moto server in this process: the real run-time objects, driven step by step."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferstack.aws import AwsClients
from inferstack.inference.session import Predictor
from inferstack.jobs.service import JobService
from inferstack.jobs.settings import JobsSettings
from inferstack.jobs.ssrf import Resolver, system_resolver
from inferstack.jobs.store import JobStore
from inferstack.jobs.webhooks import WebhookSender
from inferstack.jobs.worker import BatchWorker, InProcessRunner, Runner
from inferstack.manifest import Manifest, parse_manifest
from inferstack_infra.catalog import build_catalog
from inferstack_infra.local.aws import REGION, LocalAws
from inferstack_infra.local.poller import sqs_record
from tests.conftest import ROOT

_names = itertools.count()


def test_manifest(iris: Path, **jobs: Any) -> Manifest:
    raw = {"name": f"t{next(_names)}", "jobs": {"max_receive_count": 2, **jobs},
           "models": [{"name": "iris", "path": str(iris), "tier": "light"}]}
    return parse_manifest(raw, root=ROOT)


@dataclass
class World:
    aws: LocalAws
    settings: JobsSettings
    clients: AwsClients
    service: JobService
    store: JobStore
    sender: WebhookSender
    predictor: Predictor
    calls: list[str] = field(default_factory=list)

    def worker(self, runner: Runner | None = None) -> BatchWorker:
        return BatchWorker(self.store, self.sender, runner or InProcessRunner(self.predictor))

    def receive(self, queue: str, n: int = 10) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = self.aws.client("sqs").receive_message(
            QueueUrl=self.aws.queue_urls[queue], MaxNumberOfMessages=n, WaitTimeSeconds=0,
            AttributeNames=["All"]).get("Messages", [])
        return got

    def event(self, queue: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {"Records": [sqs_record(m, self.aws.queue_arns[queue], REGION) for m in messages]}

    def ack(self, queue: str, messages: list[dict[str, Any]], response: dict[str, Any]) -> None:
        """What the event source mapping does with a response: delete all but the reported failures."""
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        for m in messages:
            if m["MessageId"] not in failed:
                self.aws.client("sqs").delete_message(QueueUrl=self.aws.queue_urls[queue],
                                                      ReceiptHandle=m["ReceiptHandle"])

    def expire_visibility(self, queue: str, messages: list[dict[str, Any]]) -> None:
        """Stand-in for waiting out the visibility timeout (the e2e tests wait for real)."""
        for m in messages:
            self.aws.client("sqs").change_message_visibility(QueueUrl=self.aws.queue_urls[queue],
                                                             ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)

    def deliver_webhooks(self) -> list[str]:
        """Run the webhook function over what the webhook queue holds now."""
        from inferstack.jobs.webhooks import WebhookHandler

        messages = self.receive("webhooks")
        if not messages:
            return []
        response = WebhookHandler(self.sender).handle(self.event("webhooks", messages))
        self.ack("webhooks", messages, response)
        return [json.loads(m["Body"])["job_id"] for m in messages]


def make_world(iris: Path, *, resolve: Resolver = system_resolver, allow_loopback: bool = True,
               settings_overrides: dict[str, Any] | None = None, **jobs: Any) -> World:
    manifest = test_manifest(iris, **jobs)
    aws = LocalAws(manifest)
    aws.start()
    settings = JobsSettings(
        table=aws.table, bucket=aws.bucket, queues={"iris": aws.queue_urls["jobs-iris"]},
        webhook_queue=aws.queue_urls["webhooks"], secret_id=aws.secret_id, allow_loopback_webhooks=allow_loopback,
        **{"webhook_backoff_s": 0, "webhook_max_attempts": 4, "webhook_timeout_s": 5, **(settings_overrides or {})})
    clients = AwsClients(endpoint_url=aws.endpoint, region_name=REGION, aws_access_key_id="testing",
                         aws_secret_access_key="testing")
    store = JobStore(clients, table=settings.table, bucket=settings.bucket, ttl_days=7)
    catalog = build_catalog(manifest, bundled=False)
    entry = catalog.models[0]
    predictor = Predictor.load(entry, Path("/"))
    world = World(aws, settings, clients, JobService(settings, clients, resolve=resolve), store,
                  WebhookSender(settings, clients, store, resolve=resolve), predictor)
    for client in (clients.dynamodb, clients.sqs, clients.s3, clients.secrets):
        client.meta.events.register("before-call", _counter(world.calls))
    return world


def _counter(calls: list[str]) -> Callable[..., None]:
    def count(model: Any, **_: Any) -> None:
        calls.append(f"{model.service_model.service_name}.{model.name}")
    return count
