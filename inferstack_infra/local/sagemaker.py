"""The heavy tier on the local stack: the container's server as a process per heavy model (on the CPU), and a
`sagemaker-runtime` stand-in that boto3 reaches through `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME` (and, for
StopTransformJob of a running transform job, `AWS_ENDPOINT_URL_SAGEMAKER`).

The router answers `POST /endpoints/{name}/invocations` as SageMaker does: the container's 2xx as is; its
other answers as `424 ModelError` carrying `OriginalStatusCode` and `OriginalMessage`; an unknown endpoint as
`400 ValidationError`; a container that cannot be reached as `503 ServiceUnavailable`; one that runs past
60 s as a `ModelError` that says it timed out.

A model that scales to zero (`instances.min = 0`) is an inference component, as deployed: every call must name
it (`X-Amzn-SageMaker-Inference-Component`), its container is not started with the stack, and while none runs
a call is answered SageMaker's `ValidationError` "Inference Component has no capacity ..." and starts one (as
the `NoCapacityInvocationFailures` alarm's scale-out does). After `scale_in_after_s` without a call the
container is stopped again (AWS scales in after about 15 minutes of idle datapoints).
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import httpx

from inferstack import env
from inferstack.catalog import Catalog
from inferstack.manifest import Manifest
from inferstack.rollout import CUSTOM_ATTRIBUTES_HEADER as CUSTOM_ATTRIBUTES
from inferstack.topology import endpoint_name, inference_component_name
from inferstack_infra.local import lifeline
from inferstack_infra.local.aws import free_port
from inferstack_infra.local.functions import prefixed
from inferstack_infra.local.http import QuietHandler
from inferstack_infra.local.rollout import LocalRollout, endpoint_failed
from inferstack_infra.local.transform import TransformJobs
from inferstack_infra.nodelay import transport
from inferstack_infra.packaging import stage_heavy_model
from inferstack_infra.paths import python_path

INVOCATION_TIMEOUT_S = 60
#: The one production variant of an endpoint without A/B variants.
VARIANT = "AllTraffic"
#: AWS scales an idle inference component in after its target tracking's low alarm: 15 minutes of datapoints.
SCALE_IN_AFTER_S = 900.0
#: `Retry-After` the functions answer while a local container starts (it takes seconds, not minutes).
LOCAL_SCALE_OUT_RETRY_AFTER_S = 2
NO_CAPACITY = ("Inference Component has no capacity to process this request. ApplicationAutoScaling may be "
               "in-progress (if configured) or try to increase the capacity by invoking "
               "UpdateInferenceComponentRuntimeConfig API.")
_PATH = re.compile(r"^/endpoints/([^/]+)/invocations$")


class ModelServer:
    """One heavy model's container server, as a local process."""

    def __init__(self, name: str, model_dir: Path, log: Callable[[str], None], port: int = 0,
                 env: dict[str, str] | None = None) -> None:
        self.name, self.model_dir, self.log, self.env = name, model_dir, log, env or {}
        self.port = port or free_port()
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, ready_timeout_s: float = 120) -> None:
        environ = {**os.environ, "SM_MODEL_DIR": str(self.model_dir), "SAGEMAKER_BIND_TO_PORT": str(self.port),
                   "INFERSTACK_BIND_HOST": "127.0.0.1", **python_path(), "PYTHONUNBUFFERED": "1", **self.env}
        extra = lifeline.popen_kwargs()  # its own process group; it ends if this process dies
        self.proc = subprocess.Popen([sys.executable, "-m", "inferstack_infra.local.lifeline",
                                      "inferstack.heavy.server", "serve"], env={**environ, **extra.pop("env")},
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **extra)
        threading.Thread(target=self._pump, daemon=True).start()
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"heavy model {self.name}'s server exited during start (see its log)")
            try:
                if httpx.get(f"{self.url}/ping", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"heavy model {self.name}'s server did not answer /ping in {ready_timeout_s:.0f} s")

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log(line.rstrip("\n"))

    def stop(self, grace_s: float = 30) -> None:
        """SIGTERM: the server drains its in-flight requests, for up to `grace_s`."""
        lifeline.stop_all([self.proc], grace_s)


def _error(code: str, status: int, message: str, **members: Any) -> tuple[int, dict[str, str], bytes]:
    body = {"message": message, "Message": message, **members}
    return status, {"Content-Type": "application/json", "x-amzn-ErrorType": code}, json.dumps(body).encode()


class ScaleToZero:
    """An inference component's copies on the local endpoint: 0 or 1 container, by demand. `state` moves
    down -> starting -> up -> stopping -> down; `lock` guards it, `in_flight` and `last_call`."""

    def __init__(self, server: ModelServer, component: str) -> None:
        self.server, self.component = server, component
        self.lock = threading.Lock()
        self.state: Literal["down", "starting", "up", "stopping"] = "down"
        self.in_flight = 0
        self.last_call = time.monotonic()
        #: A call came while the container was stopping: start it again once stopped.
        self.wanted = False


class LocalSageMaker:
    def __init__(self, manifest: Manifest, catalog: Catalog, workdir: Path, log: Callable[[str, str], None], *,
                 scale_in_after_s: float = SCALE_IN_AFTER_S,
                 candidate: tuple[Manifest, Catalog, set[str]] | None = None) -> None:
        """`candidate`: the deployment with the candidates in place and the models they replace; each such
        heavy model gets the candidate's container beside its own (the green fleet of a blue/green rollout)."""
        self.manifest, self.catalog, self.workdir, self.log = manifest, catalog, workdir, log
        self.candidate = candidate
        #: The candidates' containers and the rollouts that split the calls, by endpoint.
        self.green: dict[str, ModelServer] = {}
        #: An A/B model's production variants: (weight, variant name, container) each, by endpoint.
        self.variants: dict[str, list[tuple[int, str, ModelServer]]] = {}
        self.rollouts: dict[str, LocalRollout] = {}
        self.scale_in_after_s = scale_in_after_s
        self.servers: dict[str, ModelServer] = {}
        #: Endpoints whose model scales to zero, by endpoint name.
        self.components: dict[str, ScaleToZero] = {}
        self.http = httpx.Client(timeout=INVOCATION_TIMEOUT_S, transport=transport())
        self._replacing: set[str] = set()
        self.router: ThreadingHTTPServer | None = None
        self._stopping = threading.Event()
        #: Running transform jobs (StopTransformJob stops them).
        self.jobs = TransformJobs()

    @property
    def endpoint_url(self) -> str:
        assert self.router is not None
        return f"http://127.0.0.1:{self.router.server_address[1]}"

    def environment(self) -> dict[str, str]:
        if not self.router:
            return {}
        return {"AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": self.endpoint_url,
                "AWS_ENDPOINT_URL_SAGEMAKER": self.endpoint_url,
                env.SCALE_OUT_RETRY_AFTER_S: str(LOCAL_SCALE_OUT_RETRY_AFTER_S)}

    def describe(self) -> list[str]:
        """One line per endpoint, for the stack's log."""
        return [f"endpoint {name}: model {server.name} " + (
            f"scaled to zero (inference component {self.components[name].component}); its container starts on "
            f"the first call and stops after {self.scale_in_after_s:g} s without one"
            if name in self.components else f"serving at {server.url}") for name, server in self.servers.items()]

    def transform(self, params: dict[str, Any], s3: Any) -> dict[str, Any]:
        """A Batch Transform job (`local.transform`) of a heavy model (its `ModelName` here: the model's name) on
        an instance of its own: a container of the endpoint's model directory started for the job, with the
        job's `Environment`, stopped when it ends. Real-time traffic keeps its endpoint's container."""
        model = params["ModelName"]
        endpoint = self.servers.get(endpoint_name(self.manifest, model))
        if endpoint is None:
            raise ValueError(f"no heavy model {model!r} on the local stack")
        server = ModelServer(f"{model}:transform", endpoint.model_dir, prefixed(self.log, f"sagemaker {model}:job"),
                             env=dict(params.get("Environment") or {}))
        return self.jobs.run(params, s3, server, log=prefixed(self.log, "transform"))

    def start(self) -> None:
        if not self.manifest.heavy_models:
            return
        for model in self.manifest.heavy_models:
            name = endpoint_name(self.manifest, model.name)
            if model.variants:  # A/B: one container per production variant, the calls split by weight
                self.variants[name] = [(v.weight, v.name, ModelServer(
                    f"{model.name}:{v.name}", stage_heavy_model(model, self.manifest, self.catalog, self.workdir /
                                                                "heavy" / model.name / v.name, dependencies=False,
                                                                variant=v.name),
                    prefixed(self.log, f"sagemaker {model.name}:{v.name}"))) for v in model.variants]
                self.servers[name] = self.variants[name][0][2]
                continue
            # the handler's packages come from this environment, not built for the container's platform
            model_dir = stage_heavy_model(model, self.manifest, self.catalog,
                                          self.workdir / "heavy" / model.name / "model", dependencies=False)
            self.servers[name] = ModelServer(model.name, model_dir, prefixed(self.log, f"sagemaker {model.name}"))
            component = inference_component_name(self.manifest, model.name)
            if component:
                self.components[name] = ScaleToZero(self.servers[name], component)
        if self.candidate is not None:
            manifest, catalog, rolling = self.candidate
            for model in manifest.heavy_models:
                if model.name in rolling:
                    model_dir = stage_heavy_model(model, manifest, catalog, self.workdir / "heavy" / model.name /
                                                  "candidate", dependencies=False)
                    self.green[endpoint_name(manifest, model.name)] = ModelServer(
                        f"{model.name}:candidate", model_dir, prefixed(self.log, f"sagemaker {model.name}:candidate"))
        always_on = [s for name, s in self.servers.items() if name not in self.components and name not in self.variants]
        always_on += [*self.green.values(), *(server for arms in self.variants.values() for _, _, server in arms)]
        threads = [threading.Thread(target=s.start) for s in always_on]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for server in always_on:
            if not server.running:
                self.stop()
                raise RuntimeError(f"heavy model {server.name}'s server did not start (see its log)")
        self.router = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.router.serve_forever, daemon=True).start()
        if self.components:
            threading.Thread(target=self._scale_in_loop, name="sagemaker-scale-in", daemon=True).start()

    def _scale_out(self, zero: ScaleToZero) -> None:
        """Start the component's container (one copy), in the background."""
        try:
            zero.server.start()
            self.log(f"sagemaker {zero.server.name}", f"scaled out from zero: {zero.component} is serving")
        except RuntimeError as exc:
            self.log(f"sagemaker {zero.server.name}", f"scale-out failed: {exc}")
        if self._stopping.is_set():  # the stack stopped while the container started
            zero.server.stop()
        with zero.lock:
            zero.state = "up" if zero.server.running else "down"
            zero.last_call = time.monotonic()

    def _scale_in_loop(self) -> None:
        """Stop a component's container once it has gone `scale_in_after_s` without a call."""
        while not self._stopping.wait(min(1.0, self.scale_in_after_s / 4)):
            for zero in self.components.values():
                with zero.lock:
                    idle = time.monotonic() - zero.last_call
                    if zero.state != "up" or zero.in_flight or idle < self.scale_in_after_s:
                        continue
                    zero.state, zero.wanted = "stopping", False
                self.log(f"sagemaker {zero.server.name}", f"no call for {idle:.0f} s: scaling {zero.component} in "
                         "to zero")
                zero.server.stop()
                with zero.lock:
                    zero.state = "starting" if zero.wanted else "down"
                if zero.wanted:
                    threading.Thread(target=self._scale_out, args=(zero,), daemon=True).start()

    def _admit(self, endpoint: str, component: str) -> tuple[int, dict[str, str], bytes] | None:
        """SageMaker's checks on the inference component a call names; for a scaled-to-zero one, its capacity
        (a call at zero starts the scale-out). None: the call may proceed (counted in flight)."""
        zero = self.components.get(endpoint)
        if zero is None:
            if component:
                return _error("ValidationError", 400, f"Inference Component {component} does not exist on endpoint "
                              f"{endpoint}.")
            return None
        if not component:
            return _error("ValidationError", 400, "Inference Component Name header is required for endpoints to "
                          "which you plan to deploy inference components. Please include Inference Component Name "
                          "header or consider using SageMaker models.")
        if component != zero.component:
            return _error("ValidationError", 400, f"Inference Component {component} does not exist on endpoint "
                          f"{endpoint}.")
        with zero.lock:
            zero.last_call = time.monotonic()
            if zero.state == "up":
                zero.in_flight += 1
                return None
            if zero.state == "down":
                zero.state = "starting"
                self.log(f"sagemaker {zero.server.name}", f"called at zero copies: scaling {zero.component} out")
                threading.Thread(target=self._scale_out, args=(zero,), daemon=True).start()
            elif zero.state == "stopping":
                zero.wanted = True
        return _error("ValidationError", 400, NO_CAPACITY)

    def _done(self, endpoint: str) -> None:
        zero = self.components.get(endpoint)
        if zero is not None:
            with zero.lock:
                zero.in_flight -= 1
                zero.last_call = time.monotonic()

    def invoke(self, endpoint: str, body: bytes, content_type: str,
               component: str = "") -> tuple[int, dict[str, str], bytes]:
        server = self.servers.get(endpoint)
        if server is None:
            return _error("ValidationError", 400, f"Endpoint {endpoint} of account 123456789012 not found.")
        refused = self._admit(endpoint, component)
        if refused is not None:
            return refused
        rollout, green = self.rollouts.get(endpoint), self.green.get(endpoint)
        role: Literal["current", "candidate"] = rollout.choose() if rollout and green else "current"
        variant = VARIANT
        if endpoint in self.variants:  # SageMaker splits an endpoint's calls by its variants' weights
            arms = self.variants[endpoint]
            _, variant, server = random.choices(arms, weights=[w for w, _, _ in arms])[0]
        started = time.perf_counter()
        try:
            answer = self._forward(endpoint, green if green and role == "candidate" else server, body, content_type,
                                   variant)
        finally:
            self._done(endpoint)
        if rollout is not None:
            rollout.record(role, latency_ms=(time.perf_counter() - started) * 1000,
                           error=endpoint_failed(answer[0], answer[2]))
        return answer

    def _forward(self, endpoint: str, server: ModelServer, body: bytes, content_type: str,
                 variant: str = VARIANT) -> tuple[int, dict[str, str], bytes]:
        try:
            answer = self.http.post(f"{server.url}/invocations", content=body,
                                    headers={"Content-Type": content_type or "application/json"})
        except httpx.TimeoutException:
            return _error("ModelError", 424, "Your invocation timed out while waiting for a response from container "
                          "primary.", OriginalStatusCode=0, ErrorCode="MODEL_TIMEOUT")
        except httpx.HTTPError:
            self._replace_if_dead(server)
            return _error("ServiceUnavailable", 503, f"Endpoint {endpoint} is not reachable; retry.")
        if 200 <= answer.status_code < 300:
            headers = {"Content-Type": answer.headers.get("content-type", "application/json"),
                       "x-Amzn-Invoked-Production-Variant": variant}
            if CUSTOM_ATTRIBUTES in answer.headers:  # the one container header SageMaker passes back
                headers[CUSTOM_ATTRIBUTES] = answer.headers[CUSTOM_ATTRIBUTES]
            return answer.status_code, headers, answer.content
        kind = "client" if answer.status_code < 500 else "server"
        text = answer.text
        return _error("ModelError", 424,
                      f'Received {kind} error ({answer.status_code}) from primary with message "{text}".',
                      OriginalStatusCode=answer.status_code, OriginalMessage=text,
                      LogStreamArn=f"arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/{endpoint}",
                      ErrorCode=f"{kind.upper()}_ERROR_FROM_MODEL")

    def _replace_if_dead(self, server: ModelServer) -> None:
        """SageMaker replaces an instance whose container died; so does the local endpoint, in the
        background, while callers get 503 (retryable) meanwhile."""
        if server.proc is None or server.proc.poll() is None or server.name in self._replacing \
                or self._stopping.is_set():  # the stack stopping killed it
            return
        zero = next((z for z in self.components.values() if z.server is server), None)
        if zero is not None and zero.state != "up":
            return  # being started or scaled in: nothing to replace
        self._replacing.add(server.name)

        def replace() -> None:
            try:
                self.log(f"sagemaker {server.name}", "the container exited; starting a new one")
                server.start()
            except RuntimeError as exc:
                self.log(f"sagemaker {server.name}", f"restart failed: {exc}")
            finally:
                self._replacing.discard(server.name)

        threading.Thread(target=replace, daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        local = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.read_body()
                match = _PATH.match(self.path.split("?", 1)[0])
                if self.headers.get("X-Amz-Target") == "SageMaker.StopTransformJob":  # the control plane's one call
                    status, headers, payload = local.jobs.stop(json.loads(body or b"{}"))
                elif match is None:
                    status, headers, payload = _error("UnknownOperationException", 404, f"No operation {self.path}")
                else:
                    status, headers, payload = local.invoke(
                        match.group(1), body, self.headers.get("Content-Type", ""),
                        self.headers.get("X-Amzn-SageMaker-Inference-Component", ""))
                self.respond(status, headers, payload)


        return Handler

    def stop(self) -> None:
        self._stopping.set()
        if self.router:
            self.router.shutdown()
            self.router.server_close()
            self.router = None
        # the stack stops: a short grace
        lifeline.stop_all(server.proc for server in [*self.servers.values(), *self.green.values(),
                                                     *(s for arms in self.variants.values() for _, _, s in arms)])
