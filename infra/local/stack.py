"""`inferstack dev`: the whole deployment of a manifest on this machine."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import uvicorn

from inferstack.manifest import Manifest
from inferstack.topology import FunctionSpec, functions, routes
from infra.catalog import build_catalog
from infra.local.functions import LocalFunctions
from infra.local.gateway import Gateway
from infra.packaging import BUILD_DIR

DEFAULT_API_KEY = "local-dev-key"


class PortBusyError(RuntimeError):
    pass


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            raise PortBusyError(f"port {port} on {host} is already in use: stop what holds it "
                                "(`lsof -i :{port}`) or pass --port") from None


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
                 log: LogStream | None = None, workdir: Path | None = None) -> None:
        if manifest.heavy_models:
            names = ", ".join(m.name for m in manifest.heavy_models)
            raise NotImplementedError(f"heavy-tier models ({names}) cannot run locally yet: the heavy tier is not "
                                      "built; set tier = 'light' or remove them")
        unknown = sorted({p for p in api_keys.values()} - {p.name for p in manifest.api.plans})
        if unknown:
            raise ValueError(f"--api-key binds to unknown usage plan(s) {', '.join(unknown)}; the manifest's plans "
                             f"are {', '.join(p.name for p in manifest.api.plans)}")
        self.manifest, self.api_keys, self.host, self.port = manifest, api_keys, host, port
        self.log = log or LogStream()
        self.workdir = workdir or BUILD_DIR / "dev"
        self.functions: LocalFunctions | None = None
        self.server: uvicorn.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Gateway:
        check_port_free(self.host, self.port)
        self.workdir.mkdir(parents=True, exist_ok=True)
        catalog_path = self.workdir / "catalog.json"
        build_catalog(self.manifest, bundled=False).dump(catalog_path)

        def environment(spec: FunctionSpec) -> dict[str, str]:
            return spec.environment(str(catalog_path), self.manifest)

        self.functions = LocalFunctions(functions(self.manifest), environment, self.log)
        self.functions.start()
        return Gateway(self.manifest, routes(self.manifest), self.functions, self.api_keys,
                       log=self.log.part("gateway"))

    def serve(self, on_ready: Callable[[], None] = lambda: None) -> None:
        """Start everything, serve until interrupted (Ctrl-C or SIGTERM), then stop every part."""
        gateway = self.start()
        try:
            config = uvicorn.Config(gateway, host=self.host, port=self.port, log_level="warning", lifespan="off")
            self.server = uvicorn.Server(config)
            on_ready()
            self.server.run()
        finally:
            self.stop()

    def stop(self) -> None:
        if self.functions:
            self.functions.stop()
            self.functions = None
