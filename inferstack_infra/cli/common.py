"""What every command shares: the manifest, the API client (and where a local stack is found), output."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from inferstack.manifest import Manifest, ManifestError, load_manifest
from inferstack_infra.client import DEFAULT_API_KEY, DEFAULT_URL, ApiClient, fail

__all__ = ["DEFAULT_API_KEY", "DEFAULT_URL", "DevState", "add_remote", "client", "fail", "manifest", "print_json"]
#: Where `inferstack dev` leaves its URL and first API key while it runs, relative to the manifest's directory;
#: client commands run in that directory find the stack there without --url.
STATE_FILE = Path(".inferstack") / "dev.json"


def manifest(path: str) -> Manifest:
    try:
        return load_manifest(path)
    except ManifestError as exc:
        fail(str(exc), 2)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


class DevState:
    """The running `inferstack dev`'s address, written on start and removed on stop."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / STATE_FILE

    def write(self, url: str, api_key: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"url": url, "api_key": api_key, "pid": os.getpid()}) + "\n")

    def clear(self) -> None:
        try:
            if json.loads(self.path.read_text()).get("pid") == os.getpid():
                self.path.unlink()
        except (OSError, ValueError):
            pass

    def read(self) -> dict[str, Any] | None:
        """The state of a stack that is still running (its process alive), or None."""
        try:
            state: dict[str, Any] = json.loads(self.path.read_text())
            os.kill(int(state["pid"]), 0)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return state


def client(args: argparse.Namespace) -> ApiClient:
    """--url/--api-key, else $INFERSTACK_URL/$INFERSTACK_API_KEY, else a running `inferstack dev` started in
    this directory, else the dev defaults."""
    local = DevState(Path.cwd()).read() or {}
    url = args.url or os.environ.get("INFERSTACK_URL") or local.get("url") or DEFAULT_URL
    key = args.api_key or os.environ.get("INFERSTACK_API_KEY") or \
        (local.get("api_key") if url == local.get("url") else None) or DEFAULT_API_KEY
    return ApiClient(url, key)


def add_remote(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="the API's base URL (default $INFERSTACK_URL, else the `inferstack dev` running "
                   f"in this directory, else {DEFAULT_URL}); for a deployed stack the stage URL, e.g. "
                   "https://abc123.execute-api.eu-west-1.amazonaws.com/prod")
    p.add_argument("--api-key", help="the x-api-key (default $INFERSTACK_API_KEY, else the local stack's)")
