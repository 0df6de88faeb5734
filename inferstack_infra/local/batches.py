"""Bulk scoring on the local stack: the Step Functions API for the batch state machines.

The API function starts batches through boto3's `stepfunctions` client, pointed here by
`AWS_ENDPOINT_URL_SFN` (StartExecution, DescribeExecution, StopExecution; the JSON 1.0 protocol). Each execution
runs in a thread on `states.Interpreter`, over the ASL that CDK synthesizes for the deployed stack
(`render_definition`, rendered once per model on the first batch), invoking the local function runtimes
and reading and writing the local S3.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Any

from inferstack.manifest import Manifest
from inferstack.topology import batch_function_key, batch_models, transform_models
from inferstack_infra.local.http import QuietHandler
from inferstack_infra.local.states import Execution, Interpreter, Invoke, Transform

ACCOUNT = "000000000000"
REGION = "us-east-1"


def state_machine_arn(manifest: Manifest, model: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{manifest.name}-batch-{model}"


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


class ApiError(Exception):
    def __init__(self, kind: str, message: str, status: int = 400) -> None:
        self.kind, self.message, self.status = kind, message, status
        super().__init__(message)


class LocalStepFunctions:
    def __init__(self, manifest: Manifest, *, invoke: Invoke, s3: Any, bucket: str,
                 log: Callable[[str], None] = lambda _: None, time_scale: float = 1.0,
                 transform: Transform | None = None) -> None:
        self.manifest, self.s3, self.bucket, self.transform = manifest, s3, bucket, transform
        self._invoke = invoke
        #: One local runtime process per function serves one invocation (one connection) at a time.
        self._function_locks: dict[str, threading.Lock] = {}
        self.log, self.time_scale = log, time_scale
        self.machines = {state_machine_arn(manifest, m): m for m in batch_models(manifest)}
        #: heavy models' machines: their Batch Transform jobs run on `transform` (the local SageMaker)
        self.transform_machines = {state_machine_arn(manifest, m): m for m in transform_models(manifest)} \
            if transform else {}
        self.machines.update(self.transform_machines)
        self.definitions: dict[str, dict[str, Any]] = {}
        self.rendered = threading.Event()
        self.render_error: BaseException | None = None
        self.executions: dict[str, Execution] = {}
        self.lock = threading.Lock()
        self._render_lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def invoke(self, function: str, event: dict[str, Any]) -> tuple[Any, bool]:
        with self.lock:
            lock = self._function_locks.setdefault(function, threading.Lock())
        with lock:
            return self._invoke(function, event)

    # -- definitions ----------------------------------------------------------------------------------------
    def render(self) -> None:
        """The ASL of every batch state machine, as CDK synthesizes it (jsii: a few seconds, once)."""
        os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
        os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20,22,24")
        try:
            from inferstack_infra.constructs.batches import render_definition
            from inferstack_infra.constructs.transform import render_transform_definition

            for arn, model in self.machines.items():
                fn = function_arn(batch_function_key(model))
                self.definitions[arn] = render_transform_definition(self.manifest, model, function_arn=fn) \
                    if arn in self.transform_machines else \
                    render_definition(self.manifest, model, function_arn=fn, bucket=self.bucket)
        except BaseException as exc:
            self.render_error = exc
            raise
        finally:
            self.rendered.set()

    def definition(self, arn: str) -> dict[str, Any]:
        """Rendered on the first batch (a stack that scores none never starts jsii)."""
        with self._render_lock:
            if not self.rendered.is_set():
                try:
                    self.render()
                except BaseException as exc:
                    raise ApiError("ServiceUnavailable", f"the state machines could not be rendered: {exc}",
                                   500) from exc
        if self.render_error:
            raise ApiError("ServiceUnavailable", f"the state machines could not be rendered: {self.render_error}", 500)
        return self.definitions[arn]

    # -- the API ---------------------------------------------------------------------------------------------
    def start_execution(self, body: dict[str, Any]) -> dict[str, Any]:
        arn = body.get("stateMachineArn", "")
        if arn not in self.machines:
            raise ApiError("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{arn}'")
        name = body.get("name") or uuid.uuid4().hex
        data = json.loads(body.get("input") or "{}")
        execution_arn = arn.replace(":stateMachine:", ":execution:") + f":{name}"
        with self.lock:
            existing = self.executions.get(execution_arn)
            if existing is not None:
                if existing.input == data and existing.status == "RUNNING":
                    return {"executionArn": execution_arn, "startDate": existing.started}
                raise ApiError("ExecutionAlreadyExists", f"Execution Already Exists: '{execution_arn}'")
            execution = self.executions[execution_arn] = Execution(execution_arn, name, data)

        def run() -> None:  # the definition is rendered here, not in the API's call (it answers at once)
            try:
                interpreter = Interpreter(self.definition(arn), invoke=self.invoke, s3=self.s3,
                                          time_scale=self.time_scale, log=self.log, transform=self.transform)
            except Exception as exc:
                execution.status, execution.error, execution.cause = "FAILED", "States.Runtime", str(exc)
                self.log(f"execution {name}: cannot run: {exc}")
                return
            interpreter.run(execution)
            self.log(f"execution {name}: {execution.status}"
                     + (f" ({execution.error}: {str(execution.cause)[:200]})" if execution.error else ""))

        threading.Thread(target=run, name=f"sfn-{name[:8]}", daemon=True).start()
        return {"executionArn": execution_arn, "startDate": execution.started}

    def describe_execution(self, body: dict[str, Any]) -> dict[str, Any]:
        execution = self.executions.get(body.get("executionArn", ""))
        if execution is None:
            raise ApiError("ExecutionDoesNotExist", f"Execution Does Not Exist: '{body.get('executionArn')}'")
        out: dict[str, Any] = {"executionArn": execution.arn, "name": execution.name, "status": execution.status,
                               "startDate": execution.started, "input": json.dumps(execution.input),
                               "stateMachineArn": execution.arn.rsplit(":", 1)[0].replace(":execution:",
                                                                                          ":stateMachine:")}
        if execution.stopped:
            out["stopDate"] = execution.stopped
        if execution.status == "SUCCEEDED":
            out["output"] = json.dumps(execution.output)
        if execution.error:
            out["error"], out["cause"] = execution.error, execution.cause
        return out

    def stop_execution(self, body: dict[str, Any]) -> dict[str, Any]:
        execution = self.executions.get(body.get("executionArn", ""))
        if execution is None:
            raise ApiError("ExecutionDoesNotExist", f"Execution Does Not Exist: '{body.get('executionArn')}'")
        execution.stop.set()
        return {"stopDate": time.time()}

    # -- the HTTP server --------------------------------------------------------------------------------------
    def start(self) -> None:
        actions = {"StartExecution": self.start_execution, "DescribeExecution": self.describe_execution,
                   "StopExecution": self.stop_execution}

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                target = self.headers.get("X-Amz-Target", "")
                action = actions.get(target.removeprefix("AWSStepFunctions."))
                headers = {"Content-Type": "application/x-amz-json-1.0"}
                try:
                    if action is None:
                        raise ApiError("UnknownOperationException", f"{target} is not served locally")
                    result = action(json.loads(self.read_body() or b"{}"))
                    self.respond(200, headers, json.dumps(result).encode())
                except ApiError as exc:
                    self.respond(exc.status, headers, json.dumps({"__type": exc.kind, "message": exc.message}).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="sfn-api", daemon=True).start()

    @property
    def endpoint(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def environment(self) -> dict[str, str]:
        """What points a function's boto3 `stepfunctions` client here."""
        return {"AWS_ENDPOINT_URL_SFN": self.endpoint}

    def stop(self) -> None:
        for execution in self.executions.values():
            execution.stop.set()
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
