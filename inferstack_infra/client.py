"""The command-line client: `inferstack invoke` and `inferstack jobs submit|get|wait`, against a running
stack (local by default, or a deployed API Gateway URL such as https://abc.execute-api.../prod)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import httpx

from inferstack_infra.nodelay import transport

DEFAULT_URL = "http://127.0.0.1:8000"
#: The API key `inferstack dev` accepts unless told others.
DEFAULT_API_KEY = "local-dev-key"


class ClientError(Exception):
    """A request that got no usable answer; the message says what to do."""


def read_input(source: str) -> Any:
    """JSON from a file or `-` (standard input): a predict body `{"inputs": ...}` or just the inputs."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as exc:
        raise ClientError(f"cannot read --input {source}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ClientError(f"--input {source} is not JSON: {exc}") from None
    return data["inputs"] if isinstance(data, dict) and set(data) == {"inputs"} else data


class ApiClient:
    def __init__(self, url: str, api_key: str, timeout_s: float = 30) -> None:
        self.base = url.rstrip("/")
        self.http = httpx.Client(headers={"x-api-key": api_key}, timeout=timeout_s, transport=transport())

    def call(self, method: str, path: str, **kwargs: Any) -> tuple[httpx.Response, Any]:
        try:
            response = self.http.request(method, f"{self.base}{path}", **kwargs)
        except httpx.ConnectError:
            raise ClientError(f"cannot reach {self.base}: is `inferstack dev` running, or is --url right?") from None
        except httpx.TimeoutException:
            raise ClientError(f"{self.base} did not answer in time") from None
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if response.status_code >= 400:
            if isinstance(body, dict) and "title" in body:
                detail = f"{response.status_code} {body['title']}: {body.get('detail', '')}"
                if response.headers.get("retry-after"):
                    detail += f" (retry after {response.headers['retry-after']} s)"
            else:
                detail = f"{response.status_code}: {str(body)[:500]}"
            raise ClientError(detail)
        return response, body

    def predict(self, model: str, inputs: Any) -> Any:
        return self.call("POST", f"/v1/models/{model}/predict", json={"inputs": inputs})[1]

    def submit(self, model: str, inputs: Any, *, webhook: str | None = None, metadata: Any = None,
               idempotency_key: str | None = None) -> Any:
        body: dict[str, Any] = {"model": model, "inputs": inputs}
        if webhook:
            body["webhook"] = {"url": webhook}
        if metadata is not None:
            body["metadata"] = metadata
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.call("POST", "/v1/jobs", json=body, headers=headers)[1]

    def job(self, job_id: str) -> Any:
        return self.call("GET", f"/v1/jobs/{job_id}")[1]

    def wait(self, job_id: str, timeout_s: float, interval_s: float = 0.5) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.job(job_id)
            if job["status"] in ("succeeded", "failed"):
                return job
            if time.monotonic() > deadline:
                raise ClientError(f"job {job_id} is still {job['status']} after {timeout_s:.0f} s")
            time.sleep(interval_s)


def fail(message: str, code: int = 1) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)
