"""`inferstack dev`: the whole deployment of a manifest on this machine.

Parts: an embedded moto server holding the jobs tier's queues, table, bucket and signing secret; one local
Lambda runtime process per function; one poller per SQS event source; the gateway in front.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import uvicorn

from inferstack import env
from inferstack.catalog import Catalog
from inferstack.manifest import Manifest
from inferstack.topology import (
    FunctionSpec,
    batch_models,
    batches_environment,
    endpoint_name,
    functions,
    jobs_environment,
    queues,
    routes,
    transform_models,
)
from inferstack_infra.catalog import build_catalog
from inferstack_infra.local import lifeline, slowloris
from inferstack_infra.local.aws import REGION, LocalAws
from inferstack_infra.local.batches import LocalStepFunctions, state_machine_arn
from inferstack_infra.local.functions import LocalFunctions
from inferstack_infra.local.gateway import Gateway
from inferstack_infra.local.monitoring import DASHBOARD_PATH, DashboardApp, MetricsStore, QueueSampler
from inferstack_infra.local.paths import printable
from inferstack_infra.local.poller import QueuePoller
from inferstack_infra.local.rollout import (
    Candidate,
    CandidateError,
    LocalRollout,
    RolloutInvoker,
    candidate_manifest,
    candidate_spec,
    with_status_route,
)
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
    """Every part's log lines in one stream, each prefixed with the part's name. A line a `tap` takes (the
    metric documents, which go to the local dashboard as CloudWatch Logs turns them into metrics) is left out."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out, self.lock = out, threading.Lock()
        self.taps: list[Callable[[str], bool]] = []

    def __call__(self, part: str, line: str) -> None:
        if any(tap(line) for tap in self.taps):
            return
        with self.lock:
            self.out.write(f"{part:>16} | {printable(line)}\n")
            self.out.flush()

    def part(self, name: str) -> Callable[[str], None]:
        return lambda line: self(name, line)


class DevStack:
    def __init__(self, manifest: Manifest, *, api_keys: dict[str, str], host: str = "127.0.0.1", port: int = 8000,
                 log: LogStream | None = None, workdir: Path | None = None,
                 allow_loopback_webhooks: bool = False, scale_in_after_s: float = SCALE_IN_AFTER_S,
                 candidates: list[Candidate] | None = None, time_scale: float = 1.0) -> None:
        unknown = sorted(set(api_keys.values()) - {p.name for p in manifest.api.plans})
        if unknown:
            raise ValueError(f"API keys bound to unknown usage plan(s) {', '.join(unknown)}")
        self.manifest, self.api_keys, self.host, self.port = manifest, api_keys, host, port
        self.allow_loopback_webhooks = allow_loopback_webhooks
        self.scale_in_after_s = scale_in_after_s
        self.log = log or LogStream()
        #: Staged files (catalog, heavy model dirs, the stack's ports) of this stack alone: by default a folder per
        #: port, so two stacks of one project (or two test files' stacks at once) never overwrite each other's
        #: catalog; removed when the stack stops.
        self.own_workdir = workdir is None
        self.workdir = workdir or BUILD_DIR / "dev" / str(port)
        self.aws = LocalAws(manifest, separate_process=True, log=self.log.part("aws"))
        self.sagemaker: LocalSageMaker | None = None
        self.states: LocalStepFunctions | None = None
        self.catalog: Catalog | None = None
        self.functions: LocalFunctions | None = None
        self.pollers: list[QueuePoller] = []
        self.server: uvicorn.Server | None = None
        self.sock: socket.socket | None = None
        #: `--candidate`s: each model's rollout from its current version to the candidate.
        self.candidates, self.time_scale = candidates or [], time_scale
        self.rollouts: dict[str, LocalRollout] = {}
        self.invoker: RolloutInvoker | None = None
        self.metrics = MetricsStore([*((m.name, m.tier) for m in manifest.models),
                                     *((c.name, "cascade") for c in manifest.cascades)])
        self.log.taps.append(self.metrics.ingest_line)
        self.sampler: QueueSampler | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def dashboard_url(self) -> str:
        return self.url + DASHBOARD_PATH

    def _environment(self, catalog_path: Path) -> Callable[[FunctionSpec], dict[str, str]]:
        jobs_env = jobs_environment(
            self.manifest, table=self.aws.table, bucket=self.aws.bucket,
            queue_urls={q.model: self.aws.queue_urls[q.key] for q in queues(self.manifest) if q.model},
            webhook_queue=self.aws.queue_urls["webhooks"], secret_id=self.aws.secret_id)
        if self.allow_loopback_webhooks:
            jobs_env[env.ALLOW_LOOPBACK_WEBHOOKS] = "1"
            jobs_env[env.STACK_PORTS_FILE] = str(self.ports_file)
        batch_env = batches_environment(self.manifest, bucket=self.aws.batch_bucket, state_machines={
            m: state_machine_arn(self.manifest, m) for m in [*batch_models(self.manifest),
                                                             *transform_models(self.manifest)]})

        def environment(spec: FunctionSpec) -> dict[str, str]:
            out = spec.environment(str(catalog_path), self.manifest)
            if spec.jobs:
                out.update(jobs_env)
                out.update(self.aws.environment())
            if spec.kind in ("api", "batch"):
                out.update(batch_env)
            if spec.kind == "api" and self.states:
                out.update(self.states.environment())
                if self.sagemaker:  # DELETE /v1/batches/{id} stops a heavy batch's transform job
                    out.update(self.sagemaker.environment())
            if (spec.endpoint or spec.invokes) and self.sagemaker:
                out.update(self.aws.environment())
                out.update(self.sagemaker.environment())
            if spec.shared_cache:
                out.update(self.aws.environment())
                out[env.CACHE_TABLE] = self.aws.cache_table
            return out

        return environment

    def _transform(self, params: dict[str, Any], s3: Any) -> dict[str, Any]:
        if self.sagemaker is None:
            raise RuntimeError("the local SageMaker is not running")
        return self.sagemaker.transform(params, s3)

    def start(self) -> Gateway:
        self.sock = bind_port(self.host, self.port)
        if self.own_workdir and self.port == 0:
            self.workdir = BUILD_DIR / "dev" / str(self.sock.getsockname()[1])
        self.workdir.mkdir(parents=True, exist_ok=True)
        catalog_path = self.workdir / "catalog.json"
        catalog = self.catalog = build_catalog(self.manifest, bundled=False)
        catalog.dump(catalog_path)
        self.aws.start()
        self.log("aws", f"moto server at {self.aws.endpoint}: table {self.aws.table}, bucket {self.aws.bucket}, "
                        f"{len(self.aws.queue_urls)} queues")
        s3 = self.aws.client("s3")
        self.states = LocalStepFunctions(self.manifest, invoke=self._invoke, s3=s3, bucket=self.aws.batch_bucket,
                                         log=self.log.part("stepfunctions"),
                                         transform=lambda params: self._transform(params, s3))
        self.states.start()
        candidate_catalog = self._candidate_catalog(catalog) if self.candidates else None
        rolling = {c.model for c in self.candidates}
        self.sagemaker = LocalSageMaker(self.manifest, catalog, self.workdir, self.log,
                                        scale_in_after_s=self.scale_in_after_s, candidate=None if candidate_catalog is
                                        None else (candidate_manifest(self.manifest, self.candidates),
                                                   candidate_catalog, rolling))
        self.sagemaker.start()
        for line in self.sagemaker.describe():
            self.log("sagemaker", line)
        specs, environment = functions(self.manifest), self._environment(catalog_path)
        if candidate_catalog is not None:
            light = {m.name for m in self.manifest.light_models} & rolling  # a heavy one shifts on its endpoint
            specs += [candidate_spec(s) for s in specs if s.model in light and s.kind in ("predict", "worker")]
            current_env, candidate_env = environment, self._environment(self.workdir / "catalog-candidate.json")
            environment = lambda s: candidate_env(s) if ":" in s.key else current_env(s)  # noqa: E731
        self.functions = LocalFunctions(specs, environment, self.log)
        self.functions.start()
        self.write_ports()  # before any poller or request can carry a webhook
        self.functions.on_restart = self.write_ports
        if candidate_catalog is not None:
            for c in self.candidates:
                current, new = catalog.get(c.model), candidate_catalog.get(c.model)
                assert current is not None and new is not None
                self.rollouts[c.model] = LocalRollout(self.manifest.model(c.model), current=current.version,
                                                      candidate=new.version, time_scale=self.time_scale,
                                                      log=self.log.part("rollout"))
                if self.manifest.model(c.model).tier == "heavy":
                    self.sagemaker.rollouts[endpoint_name(self.manifest, c.model)] = self.rollouts[c.model]
            self.invoker = RolloutInvoker(self.functions, self.rollouts, routed=light)
        sqs = self.aws.client("sqs")
        for spec in queues(self.manifest):
            if spec.function:
                poller = QueuePoller(spec, sqs=sqs, url=self.aws.queue_urls[spec.key],
                                     arn=self.aws.queue_arns[spec.key], region=REGION,
                                     invoke=self._invoke, log=self.log.part(f"esm {spec.key}"))
                poller.start()
                self.pollers.append(poller)
        self.sampler = QueueSampler(self.metrics, sqs, self.aws.queue_urls)
        self.sampler.start()
        return Gateway(self.manifest, routes(self.manifest), self.invoker or self.functions, self.api_keys,
                       log=self.log.part("gateway"), observe=self.metrics.request,
                       local=DashboardApp(self.metrics, self.manifest.name))

    @property
    def ports_file(self) -> Path:
        return self.workdir / "stack-ports.json"

    def own_ports(self) -> set[int]:
        """Every loopback port the stack listens on: the gateway, the AWS emulator, Step Functions, the SageMaker
        stand-in and its model servers, each function's runtime."""
        urls = [*self.aws.environment().values()]
        if self.states:
            urls += self.states.environment().values()
        if self.sagemaker:
            urls += [*self.sagemaker.environment().values(), *(s.url for s in self.sagemaker.servers.values())]
        if self.functions:
            urls += [p.url for p in self.functions.procs.values()]
        ports = {int(m) for u in urls for m in re.findall(r"^https?://[^/:]+:(\d+)", str(u))}
        return ports | {self.port}

    def write_ports(self) -> None:
        """The file the jobs functions read under --allow-loopback-webhooks: loopback webhooks to any of these
        ports are refused (a webhook to the emulator's reset URL would wipe every local resource)."""
        self.ports_file.write_text(json.dumps(sorted(self.own_ports())))

    def _candidate_catalog(self, catalog: Catalog) -> Catalog:
        """The catalog of the deployment with every candidate in place (its own versions and signatures)."""
        candidate = build_catalog(candidate_manifest(self.manifest, self.candidates), bundled=False)
        for c in self.candidates:
            current, new = catalog.get(c.model), candidate.get(c.model)
            assert current is not None and new is not None
            if new.version == current.version:
                raise CandidateError(f"--candidate {c.model}: {c.path} is the current version ({new.version}); "
                                     "a rollout needs another model file or handler")
            if new.inputs != current.inputs or new.request_schema != current.request_schema:
                raise CandidateError(f"--candidate {c.model}: its inputs differ from the current version's, so the "
                                     "callers' requests would break; keep the inputs or deploy it as a new model")
        candidate.dump(self.workdir / "catalog-candidate.json")
        return candidate

    def _invoke(self, function: str, event: dict[str, Any]) -> tuple[Any, bool]:
        invoker = self.invoker or self.functions
        assert invoker is not None
        return invoker.invoke_sync(function, event)

    def app(self, gateway: Gateway) -> Any:
        """What uvicorn serves: the gateway, and the rollouts' status where there are any."""
        return with_status_route(gateway, self.invoker.status if self.invoker else list)

    def restart_aws(self, down_for_s: float = 3.0) -> None:
        self.log("aws", f"restarting the emulator's server (down for {down_for_s:g} s)")
        self.aws.restart(down_for_s)
        self.log("aws", "back")

    def serve(self, on_ready: Callable[[], None] = lambda: None) -> None:
        """Start everything, serve until interrupted (Ctrl-C or SIGTERM), then stop every part. SIGUSR1
        restarts the AWS emulator's server (a fault drill: see tests/e2e/test_faults.py)."""
        signal.signal(signal.SIGUSR1, lambda *_: threading.Thread(target=self.restart_aws, daemon=True).start())
        # SIGTERM (CI runners, systemd, container runtimes) and SIGHUP (the terminal closed) stop the stack as
        # Ctrl-C does. While uvicorn serves, it takes these signals itself, shuts down, then raises each again
        # under the handlers found before it: these.
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _interrupt)
        try:
            gateway = self.start()
            # in-flight requests get a second to finish: the functions they wait for are stopped next
            config = uvicorn.Config(self.app(gateway), host=self.host, port=self.port, log_level="warning",
                                    lifespan="off", timeout_graceful_shutdown=1, http=slowloris.protocol())
            self.server = uvicorn.Server(config)
            on_ready()
            self.server.run(sockets=[self.sock] if self.sock else None)
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop every part within a few seconds, busy or not: pollers told to stop, every child process
        stopped at once (SIGTERM, a short grace, SIGKILL: `local.lifeline`), then the emulator. Another
        Ctrl-C meanwhile does not cut this short."""
        with _interrupts_deferred():
            if self.sampler:
                self.sampler.stopping.set()
            for poller in self.pollers:
                poller.stopping.set()
            procs: list[subprocess.Popen[Any] | None] = []
            if self.functions:
                self.functions.stopping.set()  # environments killed now are not replaced
                procs += [p.proc for p in self.functions.procs.values()]
            if self.sagemaker:
                self.sagemaker._stopping.set()
                procs += [s.proc for s in self.sagemaker.servers.values()]
            lifeline.stop_all(procs)
            for poller in self.pollers:
                poller.stop()
            self.pollers = []
            if self.functions:
                self.functions.stop()
                self.functions = None
            if self.states:
                self.states.stop()
                self.states = None
            if self.sagemaker:
                self.sagemaker.stop()
                self.sagemaker = None
            if self.sampler:
                self.sampler.stop()
                self.sampler = None
            self.aws.stop()
            if self.sock:
                self.sock.close()
                self.sock = None
            if self.own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP ignored meanwhile (in the main thread; elsewhere signals cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = {sig: signal.signal(sig, signal.SIG_IGN) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
