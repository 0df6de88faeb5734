"""Where client commands find the stack: flags, then the environment, then a running `inferstack dev`."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from inferstack_infra.cli.common import DEFAULT_API_KEY, DEFAULT_URL, DevState, client


def args(**kw: str | None) -> argparse.Namespace:
    return argparse.Namespace(url=kw.get("url"), api_key=kw.get("api_key"))


def test_a_running_dev_stack_is_found_without_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN `inferstack dev` on port 9000 wrote its state in this directory (its process is alive: this one)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INFERSTACK_URL", raising=False)
    monkeypatch.delenv("INFERSTACK_API_KEY", raising=False)
    DevState(tmp_path).write("http://127.0.0.1:9000", "my-secret-key")
    # WHEN a client command runs without --url THEN it talks to that stack with its key
    api = client(args())
    assert api.base == "http://127.0.0.1:9000" and api.http.headers["x-api-key"] == "my-secret-key"
    # AND flags and the environment still win, and the local key is not sent to another URL
    assert client(args(url="https://x.example/prod")).http.headers["x-api-key"] == DEFAULT_API_KEY
    monkeypatch.setenv("INFERSTACK_URL", "https://y.example/prod")
    assert client(args()).base == "https://y.example/prod"


def test_a_stale_state_file_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a state file left by a process that no longer exists
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INFERSTACK_URL", raising=False)
    state = DevState(tmp_path)
    state.path.parent.mkdir(parents=True)
    state.path.write_text(json.dumps({"url": "http://127.0.0.1:9000", "api_key": "k" * 8, "pid": 2**22 + 7}))
    # THEN the default URL is used
    assert client(args()).base == DEFAULT_URL


def test_clear_removes_only_its_own_state(tmp_path: Path) -> None:
    state = DevState(tmp_path)
    state.write("http://127.0.0.1:9000", "key-0001")
    state.clear()
    assert not state.path.exists()
    state.path.write_text(json.dumps({"url": "u", "api_key": "k", "pid": os.getpid() + 1}))
    state.clear()
    assert state.path.exists()
