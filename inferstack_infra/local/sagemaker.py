"""The heavy tier on the local stack: the container's server as a process per heavy model (on the CPU), and a
`sagemaker-runtime` stand-in that boto3 reaches through `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`.

The router answers `POST /endpoints/{name}/invocations` as SageMaker does: the container's 2xx as is; its
other answers as `424 ModelError` carrying `OriginalStatusCode` and `OriginalMessage`; an unknown endpoint as
`400 ValidationError`; a container that cannot be reached as `503 ServiceUnavailable`; one that runs past
60 s as a `ModelError` that says it timed out.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from inferstack.catalog import Catalog
from inferstack.manifest import Manifest
from inferstack.topology import endpoint_name
from inferstack_infra.local.aws import free_port
from inferstack_infra.local.functions import prefixed
from inferstack_infra.local.http import QuietHandler
from inferstack_infra.nodelay import transport
from inferstack_infra.packaging import stage_heavy_model

ROOT = Path(__file__).resolve().parents[2]
INVOCATION_TIMEOUT_S = 60
_PATH = re.compile(r"^/endpoints/([^/]+)/invocations$")


class ModelServer:
    """One heavy model's container server, as a local process."""

    def __init__(self, name: str, model_dir: Path, log: Callable[[str], None], port: int = 0) -> None:
        self.name, self.model_dir, self.log = name, model_dir, log
        self.port = port or free_port()
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout_s: float = 120) -> None:
        environ = {**os.environ, "SM_MODEL_DIR": str(self.model_dir), "SAGEMAKER_BIND_TO_PORT": str(self.port),
                   "INFERSTACK_BIND_HOST": "127.0.0.1", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "inferstack.heavy.server", "serve"], cwd=ROOT,
                                     env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: the server drains its in-flight requests
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _error(code: str, status: int, message: str, **members: Any) -> tuple[int, dict[str, str], bytes]:
    body = {"message": message, "Message": message, **members}
    return status, {"Content-Type": "application/json", "x-amzn-ErrorType": code}, json.dumps(body).encode()


class LocalSageMaker:
    def __init__(self, manifest: Manifest, catalog: Catalog, workdir: Path, log: Callable[[str, str], None]) -> None:
        self.manifest, self.catalog, self.workdir, self.log = manifest, catalog, workdir, log
        self.servers: dict[str, ModelServer] = {}
        self.http = httpx.Client(timeout=INVOCATION_TIMEOUT_S, transport=transport())
        self._replacing: set[str] = set()
        self.router: ThreadingHTTPServer | None = None

    @property
    def endpoint_url(self) -> str:
        assert self.router is not None
        return f"http://127.0.0.1:{self.router.server_address[1]}"

    def environment(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": self.endpoint_url} if self.router else {}

    def start(self) -> None:
        if not self.manifest.heavy_models:
            return
        for model in self.manifest.heavy_models:
            # the handler's packages come from this environment, not built for the container's platform
            model_dir = stage_heavy_model(model, self.manifest, self.catalog,
                                          self.workdir / "heavy" / model.name / "model", dependencies=False)
            name = endpoint_name(self.manifest, model.name)
            self.servers[name] = ModelServer(model.name, model_dir, prefixed(self.log, f"sagemaker {model.name}"))
        threads = [threading.Thread(target=s.start) for s in self.servers.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for server in self.servers.values():
            if not (server.proc and server.proc.poll() is None):
                self.stop()
                raise RuntimeError(f"heavy model {server.name}'s server did not start (see its log)")
        self.router = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.router.serve_forever, daemon=True).start()

    def invoke(self, endpoint: str, body: bytes, content_type: str) -> tuple[int, dict[str, str], bytes]:
        server = self.servers.get(endpoint)
        if server is None:
            return _error("ValidationError", 400, f"Endpoint {endpoint} of account 123456789012 not found.")
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
            return answer.status_code, {"Content-Type": answer.headers.get("content-type", "application/json"),
                                        "x-Amzn-Invoked-Production-Variant": "AllTraffic"}, answer.content
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
        if server.proc is None or server.proc.poll() is None or server.name in self._replacing:
            return
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
                if match is None:
                    status, headers, payload = _error("UnknownOperationException", 404, f"No operation {self.path}")
                else:
                    status, headers, payload = local.invoke(match.group(1), body,
                                                            self.headers.get("Content-Type", ""))
                self.respond(status, headers, payload)


        return Handler

    def stop(self) -> None:
        if self.router:
            self.router.shutdown()
            self.router.server_close()
            self.router = None
        for server in self.servers.values():
            server.stop()
