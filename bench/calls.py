"""AWS API calls per job on the happy path: submit, worker batch, webhook delivered, counted with botocore's
`before-call` event hooks against the embedded moto server (used to count calls, not to time them); and the
DynamoDB write units they cost, by DynamoDB's rules (a write: 1 unit per KB of the item, rounded up; a
transactional write: twice that), from the writes made and the size of the job items they wrote."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
JOBS = 10


def run() -> list[dict[str, Any]]:
    from inferstack.aws import AwsClients
    from inferstack.inference.session import Predictor
    from inferstack.jobs.schemas import JobRequest
    from inferstack.jobs.service import JobService
    from inferstack.jobs.settings import JobsSettings
    from inferstack.jobs.store import JobStore
    from inferstack.jobs.webhooks import WebhookHandler, WebhookSender, signing_secret
    from inferstack.jobs.worker import BatchWorker, InProcessRunner
    from inferstack.manifest import parse_manifest
    from inferstack_infra.catalog import build_catalog
    from inferstack_infra.local.aws import REGION, LocalAws
    from inferstack_infra.local.poller import sqs_record
    from inferstack_infra.local.webhook_receiver import WebhookReceiver

    manifest = parse_manifest({"name": "benchcalls", "models": [
        {"name": "iris", "path": str(ROOT / "models" / "iris.onnx"), "tier": "light"}]}, root=ROOT)
    aws = LocalAws(manifest)
    aws.start()
    receiver = None
    try:
        settings = JobsSettings(table=aws.table, bucket=aws.bucket, queues={"iris": aws.queue_urls["jobs-iris"]},
                                webhook_queue=aws.queue_urls["webhooks"], secret_id=aws.secret_id,
                                allow_loopback_webhooks=True)
        clients = AwsClients(endpoint_url=aws.endpoint, region_name=REGION, aws_access_key_id="testing",
                             aws_secret_access_key="testing")
        calls: Counter[str] = Counter()
        transactional: list[int] = []
        for client in (clients.dynamodb, clients.sqs, clients.s3, clients.secrets):
            client.meta.events.register("before-call", lambda model, **_: calls.update([model.name]))
        clients.dynamodb.meta.events.register(
            "before-parameter-build.dynamodb.TransactWriteItems",
            lambda params, **_: transactional.append(len(params.get("TransactItems", []))))
        store = JobStore(clients, table=aws.table, bucket=aws.bucket, ttl_days=7)
        sender = WebhookSender(settings, clients, store)
        receiver = WebhookReceiver(signing_secret(aws.signing_secret)).start()
        service = JobService(settings, clients)
        entry = build_catalog(manifest, bundled=False).models[0]
        worker = BatchWorker(store, sender, InProcessRunner(Predictor.load(entry, Path("/"))))
        for _ in range(JOBS):
            service.submit(JobRequest.model_validate({"model": "iris", "inputs": [[5.1, 3.5, 1.4, 0.2]],
                                                      "webhook": {"url": receiver.url}}), owner="bench")
        sqs = aws.client("sqs")

        def batch(queue: str) -> dict[str, Any]:
            got = sqs.receive_message(QueueUrl=aws.queue_urls[queue], MaxNumberOfMessages=10,
                                      AttributeNames=["All"])["Messages"]
            return {"Records": [sqs_record(m, aws.queue_arns[queue], REGION) for m in got]}

        worker.handle(batch("jobs-iris"))
        WebhookHandler(sender).handle(batch("webhooks"))
        delivered = len(receiver.verified())
        if delivered != JOBS:
            raise RuntimeError(f"{delivered} of {JOBS} webhooks delivered")
        items = aws.client("dynamodb").scan(TableName=aws.table)["Items"]
        units = max(math.ceil(_item_bytes(i) / 1024) for i in items)  # every item's largest state, rounded up
    finally:
        if receiver:
            receiver.stop()
        aws.stop()
    per_job = sum(calls.values()) / JOBS
    writes = sum(calls[op] for op in ("PutItem", "UpdateItem", "DeleteItem"))
    wcu = (writes + 2 * sum(transactional)) * units / JOBS
    # the same jobs with a batch's claims in one TransactWriteItems: 2 units a claim instead of 1
    wcu_transaction = wcu + units if not transactional else wcu
    print(f"AWS calls for {JOBS} jobs: {json.dumps(dict(sorted(calls.items())))}; items ≤ {units} KB")
    return [{"figure": f"AWS API calls per job ({JOBS} jobs, webhooks)", "value": per_job,
             "baselines": {"target": 6.0}, "targets": {"target": 1.0}, "better": "lower"},
            {"figure": "DynamoDB write units per job", "value": wcu,
             "baselines": {"transact claim": wcu_transaction}, "targets": {"transact claim": 1.0}, "better": "lower"}]


def _item_bytes(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB bills it, near enough: attribute names plus their values' encoded sizes."""
    def size(value: dict[str, Any]) -> int:
        (kind, v), = value.items()
        if kind in ("S", "N", "B"):
            return len(str(v).encode())
        if kind == "M":
            return 3 + sum(len(k.encode()) + size(x) for k, x in v.items())
        if kind == "L":
            return 3 + sum(1 + size(x) for x in v)
        return 1
    return sum(len(k.encode()) + size(v) for k, v in item.items())
