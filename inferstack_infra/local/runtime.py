"""A local Lambda execution environment: one process, one function, one invocation at a time.

    python -m inferstack_infra.local.runtime --handler inferstack.functions.predict.handler.handler --name predict-iris

It imports the handler module (the init phase: the model loads here, as on Lambda), then serves the Lambda
Invoke API on loopback (`POST /2015-03-31/functions/<name>/invocations`, the event as the body) and prints
`INFERSTACK_READY <port>` on stdout once it is ready. A handler that raises answers as Lambda does: status 200
with `X-Amz-Function-Error: Unhandled` and the error document.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
import uuid
from http.server import HTTPServer
from typing import Any

from inferstack.observability.tracing import TRACE_ENV, new_trace_header
from inferstack_infra.local.http import QuietHandler
from inferstack_infra.local.lifeline import watch_parent_from_env

READY = "INFERSTACK_READY"


class LocalContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    def __init__(self, name: str, memory_mb: int, timeout_s: float, request_id: str) -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}:live"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--handler", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--memory-mb", type=int, default=1024)
    parser.add_argument("--timeout-s", type=float, default=30)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    watch_parent_from_env()  # before the init phase: a stack that dies while a model loads ends this too

    module_name, attr = args.handler.rsplit(".", 1)
    handler = getattr(importlib.import_module(module_name), attr)

    class Invoke(QuietHandler):
        def do_POST(self) -> None:
            event = json.loads(self.read_body())
            request_id = self.headers.get("X-Amz-Request-Id") or str(uuid.uuid4())
            context = LocalContext(args.name, args.memory_mb, args.timeout_s, request_id)
            # Lambda names the invocation's trace in the environment: the one API Gateway started, else a new one
            headers_in = event.get("headers") if isinstance(event, dict) else None
            os.environ[TRACE_ENV] = next((v for k, v in (headers_in or {}).items() if k.lower() == "x-amzn-trace-id"),
                                         None) or new_trace_header()
            headers = {"Content-Type": "application/json"}
            try:
                result: Any = handler(event, context)
            except Exception as exc:
                traceback.print_exc()
                headers["X-Amz-Function-Error"] = "Unhandled"
                result = {"errorMessage": str(exc), "errorType": type(exc).__name__,
                          "stackTrace": traceback.format_tb(exc.__traceback__)}
            self.respond(200, headers, json.dumps(result).encode())


    server = HTTPServer(("127.0.0.1", args.port), Invoke)
    print(f"{READY} {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
