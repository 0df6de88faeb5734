"""The jobs tier's AWS resources on an embedded moto server: queues with redrive, table, bucket, secret.

The server serializes its requests and its SQS costs do not grow with the queue (`local.emulator`), so that
it holds a sustained load of concurrent clients."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

import boto3

from inferstack.manifest import Manifest
from inferstack.topology import QueueSpec, queues
from inferstack_infra.local import lifeline
from inferstack_infra.local.emulator import LocalMotoServer, patch_sqs
from inferstack_infra.paths import python_path

REGION = "us-east-1"
#: Credentials for the emulator; never real ones.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
               "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class LocalAws:
    """A moto server and the resources of one manifest in it."""

    manifest: Manifest
    port: int = 0
    server: LocalMotoServer | None = None
    #: Run the emulator as a process of its own (`inferstack dev`: its requests then use another core than
    #: the gateway's), not as threads of this one (tests, benchmarks).
    separate_process: bool = False
    proc: subprocess.Popen[str] | None = None
    #: Where the emulator process's output lines go (default: this process's stdout).
    log: Callable[[str], None] | None = None
    queue_urls: dict[str, str] = field(default_factory=dict)
    queue_arns: dict[str, str] = field(default_factory=dict)
    table: str = ""
    #: The shared result cache's table (as the CDK app's `CacheTable`).
    cache_table: str = ""
    bucket: str = ""
    #: Bulk scoring's bucket: uploads, chunk plans, the Map's result files, default outputs.
    batch_bucket: str = ""
    secret_id: str = ""
    signing_secret: str = ""

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        """What a process needs for boto3 to reach this emulator (boto3 honours AWS_ENDPOINT_URL)."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION,  # type: ignore[call-overload]
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def start(self) -> None:
        self.port = self.port or free_port()
        for key, value in CREDENTIALS.items():
            os.environ.setdefault(key, value)
        if self.separate_process:
            extra = lifeline.popen_kwargs()  # its own process group; it ends if this process dies
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "inferstack_infra.local.emulator", "--port", str(self.port)],
                env={**os.environ, **python_path(), "PYTHONUNBUFFERED": "1", **extra.pop("env")},
                stdout=subprocess.PIPE if self.log else None, stderr=subprocess.STDOUT if self.log else None,
                text=True, **extra)
            if self.log and self.proc.stdout:
                threading.Thread(target=self._pump, args=(self.proc.stdout, self.log), daemon=True).start()
            self._wait_listening()
        else:
            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
            patch_sqs()
            self.server = LocalMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
            self.server.start()
        self.create()

    @staticmethod
    def _pump(out: IO[str], log: Callable[[str], None]) -> None:
        for line in out:
            log(line.rstrip("\n"))

    def _wait_listening(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError("the AWS emulator exited during start (see its log above)")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the AWS emulator did not listen on port {self.port} in {timeout_s:.0f} s")

    def create(self) -> None:
        """Create (or re-create, after a restart of the emulator) every resource."""
        name = self.manifest.name
        self.table = f"{name}-jobs"
        self.bucket = f"{name.lower()}-jobs"
        ddb = self.client("dynamodb")
        if self.table not in ddb.list_tables()["TableNames"]:
            ddb.create_table(TableName=self.table, BillingMode="PAY_PER_REQUEST",
                             AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                             KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
        self.cache_table = f"{name}-cache"
        if self.cache_table not in ddb.list_tables()["TableNames"]:
            ddb.create_table(TableName=self.cache_table, BillingMode="PAY_PER_REQUEST",
                             AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                             KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
            ddb.update_time_to_live(TableName=self.cache_table, TimeToLiveSpecification={
                "Enabled": True, "AttributeName": "expires_at"})
        self.batch_bucket = f"{name.lower()}-batches"
        for bucket in (self.bucket, self.batch_bucket, *self.manifest.batches.input_buckets,
                       *self.manifest.batches.output_buckets):
            self.client("s3").create_bucket(Bucket=bucket)
        sqs = self.client("sqs")
        specs = queues(self.manifest)
        for spec in sorted(specs, key=lambda q: q.dlq is not None):  # DLQs first
            attributes = {"VisibilityTimeout": str(spec.visibility_timeout_s)}
            if spec.dlq:
                attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": self.queue_arns[spec.dlq],
                                                          "maxReceiveCount": spec.max_receive_count})
            url = sqs.create_queue(QueueName=f"{name}-{spec.key}", Attributes=attributes)["QueueUrl"]
            self.queue_urls[spec.key] = url
            self.queue_arns[spec.key] = sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        if not self.signing_secret:
            self.signing_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        sm = self.client("secretsmanager")
        self.secret_id = f"{name}/webhook-signing"
        with contextlib.suppress(sm.exceptions.ResourceExistsException):
            sm.create_secret(Name=self.secret_id, SecretString=self.signing_secret)

    def queue(self, spec: QueueSpec) -> str:
        return self.queue_urls[spec.key]

    def restart(self, down_for_s: float = 0.0) -> None:
        """Stop the emulator's HTTP server and start a new one on the same port. Its state lives in this
        process's memory (moto's backends), so nothing is lost; meanwhile every client sees the AWS endpoint
        refuse connections, as in an outage."""
        if self.proc is not None:  # a process of its own: it pauses serving, keeping its state
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(down_for_s)
            self.proc.send_signal(signal.SIGUSR2)
            self._wait_listening()
            return
        if self.server:
            self.server.stop()
        time.sleep(down_for_s)
        self.server = LocalMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        self.create()  # a no-op for what survived

    def stop(self) -> None:
        if self.proc is not None:
            lifeline.stop_all([self.proc])
            self.proc = None
        if self.server:
            self.server.stop()
            self.server = None
