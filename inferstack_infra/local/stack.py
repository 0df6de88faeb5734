"""`inferstack dev`: the whole deployment of a manifest on this machine.

Parts: an embedded moto server holding the jobs tier's queues, table, bucket and signing secret; one local
Lambda runtime process per function; one poller per SQS event source; the gateway in front.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import uvicorn

from inferstack import env
from inferstack.catalog import Catalog
from inferstack.manifest import Manifest
from inferstack.topology import FunctionSpec, functions, jobs_environment, queues, routes
from inferstack_infra.catalog import build_catalog
from inferstack_infra.local.aws import REGION, LocalAws
from inferstack_infra.local.functions import LocalFunctions
from inferstack_infra.local.gateway import Gateway
from inferstack_infra.local.poller import QueuePoller
from inferstack_infra.local.sagemaker import SCALE_IN_AFTER_S, LocalSageMaker
from inferstack_infra.packaging import BUILD_DIR


class PortBusyError(RuntimeError):
    pass


def bind_port(host: str, port: int) -> socket.socket:
    """Take the gateway's port first, so that nothing started meanwhile can take it."""
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only when the listening
    # socket says TCP, and without it every keep-alive response waits ~40 ms for a delayed ACK
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise PortBusyError(f"port {port} on {host} is already in use: stop what holds it "
                            f"(`lsof -i :{port}`) or pass --port") from None
    return sock


class LogStream:
    """Every part's log lines in one stream, each prefixed with the part's name."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out, self.lock = out, threading.Lock()

    def __call__(self, part: str, line: str) -> None:
        with self.lock:
            self.out.write(f"{part:>16} | {line}\n")
            self.out.flush()

    def part(self, name: str) -> Callable[[str], None]:
        return lambda line: self(name, line)


class DevStack:
    def __init__(self, manifest: Manifest, *, api_keys: dict[str, str], host: str = "127.0.0.1", port: int = 8000,
                 log: LogStream | None = None, workdir: Path | None = None,
                 allow_loopback_webhooks: bool = False, scale_in_after_s: float = SCALE_IN_AFTER_S) -> None:
        unknown = sorted(set(api_keys.values()) - {p.name for p in manifest.api.plans})
        if unknown:
            raise ValueError(f"API keys bound to unknown usage plan(s) {', '.join(unknown)}")
        self.manifest, self.api_keys, self.host, self.port = manifest, api_keys, host, port
        self.allow_loopback_webhooks = allow_loopback_webhooks
        self.scale_in_after_s = scale_in_after_s
        self.log = log or LogStream()
        self.workdir = workdir or BUILD_DIR / "dev"
        self.aws = LocalAws(manifest)
        self.sagemaker: LocalSageMaker | None = None
        self.catalog: Catalog | None = None
        self.functions: LocalFunctions | None = None
        self.pollers: list[QueuePoller] = []
        self.server: uvicorn.Server | None = None
        self.sock: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _environment(self, catalog_path: Path) -> Callable[[FunctionSpec], dict[str, str]]:
        jobs_env = jobs_environment(
            self.manifest, table=self.aws.table, bucket=self.aws.bucket,
            queue_urls={q.model: self.aws.queue_urls[q.key] for q in queues(self.manifest) if q.model},
            webhook_queue=self.aws.queue_urls["webhooks"], secret_id=self.aws.secret_id)
        if self.allow_loopback_webhooks:
            jobs_env[env.ALLOW_LOOPBACK_WEBHOOKS] = "1"

        def environment(spec: FunctionSpec) -> dict[str, str]:
            out = spec.environment(str(catalog_path), self.manifest)
            if spec.jobs:
                out.update(jobs_env)
                out.update(self.aws.environment())
            if spec.endpoint and self.sagemaker:
                out.update(self.aws.environment())
                out.update(self.sagemaker.environment())
            return out

        return environment

    def start(self) -> Gateway:
        self.sock = bind_port(self.host, self.port)
        self.workdir.mkdir(parents=True, exist_ok=True)
        catalog_path = self.workdir / "catalog.json"
        catalog = self.catalog = build_catalog(self.manifest, bundled=False)
        catalog.dump(catalog_path)
        self.aws.start()
        self.log("aws", f"moto server at {self.aws.endpoint}: table {self.aws.table}, bucket {self.aws.bucket}, "
                        f"{len(self.aws.queue_urls)} queues")
        self.sagemaker = LocalSageMaker(self.manifest, catalog, self.workdir, self.log,
                                        scale_in_after_s=self.scale_in_after_s)
        self.sagemaker.start()
        for line in self.sagemaker.describe():
            self.log("sagemaker", line)
        self.functions = LocalFunctions(functions(self.manifest), self._environment(catalog_path), self.log)
        self.functions.start()
        sqs = self.aws.client("sqs")
        for spec in queues(self.manifest):
            if spec.function:
                poller = QueuePoller(spec, sqs=sqs, url=self.aws.queue_urls[spec.key],
                                     arn=self.aws.queue_arns[spec.key], region=REGION,
                                     invoke=self._invoke, log=self.log.part(f"esm {spec.key}"))
                poller.start()
                self.pollers.append(poller)
        return Gateway(self.manifest, routes(self.manifest), self.functions, self.api_keys,
                       log=self.log.part("gateway"))

    def _invoke(self, function: str, event: dict[str, Any]) -> tuple[Any, bool]:
        assert self.functions is not None
        return self.functions.invoke_sync(function, event)

    def restart_aws(self, down_for_s: float = 3.0) -> None:
        self.log("aws", f"restarting the emulator's server (down for {down_for_s:g} s)")
        self.aws.restart(down_for_s)
        self.log("aws", "back")

    def serve(self, on_ready: Callable[[], None] = lambda: None) -> None:
        """Start everything, serve until interrupted (Ctrl-C or SIGTERM), then stop every part. SIGUSR1
        restarts the AWS emulator's server (a fault drill: see tests/e2e/test_faults.py)."""
        signal.signal(signal.SIGUSR1, lambda *_: threading.Thread(target=self.restart_aws, daemon=True).start())
        try:
            gateway = self.start()
            config = uvicorn.Config(gateway, host=self.host, port=self.port, log_level="warning", lifespan="off")
            self.server = uvicorn.Server(config)
            on_ready()
            self.server.run(sockets=[self.sock] if self.sock else None)
        finally:
            self.stop()

    def stop(self) -> None:
        for poller in self.pollers:
            poller.stopping.set()
        for poller in self.pollers:
            poller.stop()
        self.pollers = []
        if self.functions:
            self.functions.stop()
            self.functions = None
        if self.sagemaker:
            self.sagemaker.stop()
            self.sagemaker = None
        self.aws.stop()
        if self.sock:
            self.sock.close()
            self.sock = None
