"""Bulk scoring wired to a moto server in this process: the real service, store and batch function, driven
step by step as the state machine would (plan, one event per chunk in the ItemBatcher's shape, finish)."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferstack.aws import AwsClients
from inferstack.batches.rows import ChunkRows
from inferstack.batches.schemas import BatchRequest
from inferstack.batches.scorer import BatchFunction
from inferstack.batches.service import BatchService
from inferstack.batches.settings import BatchSettings
from inferstack.batches.store import Batch, BatchStore
from inferstack.inference.session import Predictor
from inferstack.jobs.worker import InProcessRunner
from inferstack.manifest import parse_manifest
from inferstack_infra.catalog import build_catalog
from inferstack_infra.local.aws import REGION, LocalAws
from tests.conftest import ROOT, load_event

_names = itertools.count()
OWNER = "key-a"


@dataclass
class StartedExecutions:
    """Stands in for Step Functions' StartExecution: records what the service started."""

    started: list[dict[str, Any]] = field(default_factory=list)
    #: executionArn -> what DescribeExecution answers (default: RUNNING)
    described: dict[str, dict[str, Any]] = field(default_factory=dict)

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        return self.described.get(executionArn, {"status": "RUNNING"})

    def start_execution(self, **kwargs: Any) -> dict[str, Any]:
        if any(s["name"] == kwargs["name"] for s in self.started):
            raise RuntimeError("ExecutionAlreadyExists")
        self.started.append(kwargs)
        return {"executionArn": f"{kwargs['stateMachineArn']}:{kwargs['name']}", "startDate": "now"}


class Clients(AwsClients):
    def __init__(self, executions: StartedExecutions, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.executions = executions

    @property
    def stepfunctions(self) -> Any:
        return self.executions


@dataclass
class BatchesWorld:
    aws: LocalAws
    clients: Clients
    settings: BatchSettings
    store: BatchStore
    service: BatchService
    function: BatchFunction
    predictor: Predictor

    @property
    def bucket(self) -> str:
        return self.aws.batch_bucket

    def put(self, key: str, data: bytes) -> str:
        self.clients.s3.put_object(Bucket=self.bucket, Key=key, Body=data)
        return f"s3://{self.bucket}/{key}"

    def get(self, uri_or_key: str) -> bytes:
        key = uri_or_key.removeprefix(f"s3://{self.bucket}/")
        return self.clients.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def submit(self, key: str | None = None, **body: Any) -> Batch:
        request = BatchRequest.model_validate({"model": "iris", **body})
        batch, _ = self.service.submit(request, owner=OWNER, version=self.predictor.version, idempotency_key=key)
        return batch

    def state(self, batch: Batch) -> dict[str, Any]:
        """The execution's input, as the service started it."""
        (started,) = [s for s in self.clients.executions.started if s["name"] == batch.batch_id]
        state: dict[str, Any] = json.loads(started["input"])
        return state

    def chunk_events(self, batch: Batch, plan: dict[str, Any], per_event: int = 1) -> list[dict[str, Any]]:
        """What the Distributed Map hands the function: the plan's items (read back from S3, as its ItemReader
        does), `per_event` at a time (its ItemBatcher), with its BatchInput: the shape of tests/events."""
        items = json.loads(self.clients.s3.get_object(Bucket=plan["bucket"], Key=plan["key"])["Body"].read())
        template = load_event("stepFunctionsItemBatcherEvent.json")
        assert all(set(i) == set(template["Items"][0]) for i in items)
        return [{"BatchInput": template["BatchInput"], "Items": items[i:i + per_event]}
                for i in range(0, len(items), per_event)]

    def run(self, batch: Batch) -> dict[str, Any]:
        """Plan, score every chunk, finish: the state machine's happy path."""
        state = self.state(batch)
        plan = self.function.handle({"action": "plan", "batch": state})
        for event in self.chunk_events(batch, plan):
            self.function.handle(event)
        return self.function.handle({"action": "finish", "batch": state})


def make_world(iris: Path, **batches: Any) -> BatchesWorld:
    manifest = parse_manifest({"name": f"b{next(_names)}", "batches": {"output_buckets": ["allowed-out"], **batches},
                               "models": [{"name": "iris", "path": str(iris), "tier": "light"}]}, root=ROOT)
    aws = LocalAws(manifest)
    aws.start()
    executions = StartedExecutions()
    clients = Clients(executions, endpoint_url=aws.endpoint, region_name=REGION, aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    settings = BatchSettings(bucket=aws.batch_bucket, state_machines={"iris": "arn:aws:states:us-east-1:1:sm:iris"},
                             output_buckets=("allowed-out",), rows_per_chunk=manifest.batches.rows_per_chunk)
    store = BatchStore(clients, table=aws.table, ttl_days=7)
    entry = build_catalog(manifest, bundled=False).models[0]
    predictor = Predictor.load(entry, Path("/"))
    function = BatchFunction(settings, clients, store, InProcessRunner(predictor),
                             rows=ChunkRows(predictor.inputs, handler=False), handler=False, model="iris",
                             version=entry.version, webhook_queue=aws.queue_urls["webhooks"])
    return BatchesWorld(aws, clients, settings, store, BatchService(settings, clients, store), function, predictor)
