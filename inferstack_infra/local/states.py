"""Step Functions on the local stack: an interpreter of the Amazon States Language that the batch state machines
use, run on the very definition CDK synthesizes (`constructs.batches.render_definition`).

It knows what those definitions hold, and refuses any other field rather than ignore it: Task states that invoke a
Lambda function by ARN or run a SageMaker Batch Transform job (`.sync`, through `local.transform`) (Parameters with
`.$` paths, ResultSelector, ResultPath, Retry with IntervalSeconds, BackoffRate, MaxAttempts, MaxDelaySeconds and
FULL jitter, Catch), and Distributed Map states (an S3 JSON ItemReader, ItemBatcher's MaxItemsPerBatch /
MaxInputBytesPerBatch / BatchInput, MaxConcurrency, ToleratedFailurePercentage / Count, a ResultWriter to S3, an
ItemProcessor of such Task states). moto's own interpreter refuses ItemBatcher and would run Lambda tasks in Docker;
this one invokes the local function runtimes.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

#: (function name, event) -> (payload, function_error); raises when the environment died mid-call.
Invoke = Callable[[str, dict[str, Any]], tuple[Any, bool]]

TASK_FIELDS = {"Type", "Resource", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch", "Next", "End",
               "Comment"}
#: A heavy model's Batch Transform job, run to its end (`local.transform.LocalTransform`).
TRANSFORM_SYNC = "arn:aws:states:::sagemaker:createTransformJob.sync"
#: CreateTransformJob's parameters -> what DescribeTransformJob answers for the Completed job; raises
#: `local.transform.TransformJobFailed` for a Failed one.
Transform = Callable[[dict[str, Any]], dict[str, Any]]
MAP_FIELDS = {"Type", "ItemProcessor", "ItemReader", "ItemBatcher", "MaxConcurrency", "ToleratedFailurePercentage",
              "ToleratedFailureCount", "ResultWriter", "ResultPath", "Catch", "Next", "End", "Comment", "Label"}
#: The largest input a child execution takes (AWS's 256 KiB payload limit), and ItemBatcher's default cap.
MAX_BATCH_BYTES = 256 * 1024


class StatesError(Exception):
    """A state failed with an error name (`States.TaskFailed`, a function's errorType, ...) and a cause."""

    def __init__(self, error: str, cause: str) -> None:
        self.error, self.cause = error, cause
        super().__init__(f"{error}: {cause[:300]}")


class Aborted(Exception):
    """The execution was stopped (StopExecution)."""


def lambda_name(arn: str) -> str:
    """`arn:aws:lambda:<region>:<account>:function:<name>[:alias]` -> the function's name."""
    parts = arn.split(":")
    if len(parts) < 7 or parts[2] != "lambda" or parts[5] != "function":
        raise ValueError(f"the local Step Functions runs Lambda tasks by function ARN only, not {arn!r}")
    return parts[6]


def read_path(path: str, data: Any, context: dict[str, Any]) -> Any:
    """A reference path: `$`, `$.a.b`, `$$.Map.Item.Index`."""
    root, rest = (context, path[2:]) if path.startswith("$$") else (data, path[1:])
    value = root
    for part in [p for p in rest.split(".") if p]:
        if not isinstance(value, dict) or part not in value:
            raise StatesError("States.Runtime", f"the path {path!r} matches nothing in the input")
        value = value[part]
    return value


def resolve(template: Any, data: Any, context: dict[str, Any]) -> Any:
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = read_path(value, data, context)
            else:
                out[key] = resolve(value, data, context)
        return out
    if isinstance(template, list):
        return [resolve(v, data, context) for v in template]
    return template


def write_path(path: str | None, data: Any, result: Any) -> Any:
    """ResultPath: `$` replaces the input, `$.a.b` sets a field of (a copy of) it, null discards the result."""
    if path is None:
        return data
    if path == "$":
        return result
    out = json.loads(json.dumps(data)) if isinstance(data, dict) else {}
    node = out
    parts = path[2:].split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = result
    return out


def _matches(names: list[str], error: str) -> bool:
    return error in names or "States.ALL" in names


@dataclass
class Execution:
    arn: str
    name: str
    input: dict[str, Any]
    status: str = "RUNNING"
    output: Any = None
    error: str | None = None
    cause: str | None = None
    started: float = field(default_factory=time.time)
    stopped: float | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    #: What happened, for the tests and the log: ("invoke", state, attempt), ("retry", ...), ("catch", ...).
    history: list[tuple[Any, ...]] = field(default_factory=list)


class Interpreter:
    """Runs one definition. `time_scale` shortens retry waits (tests); `rand` draws the jitter."""

    def __init__(self, definition: dict[str, Any], *, invoke: Invoke, s3: Any, time_scale: float = 1.0,
                 log: Callable[[str], None] = lambda _: None, rand: Callable[[], float] = random.random,
                 transform: Transform | None = None) -> None:
        self.definition, self.invoke, self.s3, self.transform = definition, invoke, s3, transform
        self.time_scale, self.log, self.rand = time_scale, log, rand
        self._check(definition["States"], top=True)

    # -- what the twin knows -----------------------------------------------------------------------------
    def _check(self, states: dict[str, Any], top: bool) -> None:
        for name, state in states.items():
            kind = state["Type"]
            known = TASK_FIELDS if kind == "Task" else MAP_FIELDS if kind == "Map" and top else None
            if known is None:
                raise NotImplementedError(f"state {name}: the local Step Functions runs Task and (top-level) "
                                          f"Distributed Map states, not {kind}")
            unknown = set(state) - known
            if unknown:
                raise NotImplementedError(f"state {name}: fields {sorted(unknown)} are not run locally")
            if kind == "Task" and state["Resource"] == TRANSFORM_SYNC:
                if self.transform is None:
                    raise NotImplementedError(f"state {name}: no local Batch Transform to run it")
            elif kind == "Task":
                lambda_name(state["Resource"])
            else:
                config = state["ItemProcessor"].get("ProcessorConfig", {})
                if config.get("Mode") != "DISTRIBUTED" or "ItemReader" not in state:
                    raise NotImplementedError(f"state {name}: only Distributed Maps with an ItemReader run locally")
                if state["ItemReader"]["Resource"] != "arn:aws:states:::s3:getObject" or \
                        state["ItemReader"].get("ReaderConfig", {}).get("InputType") != "JSON":
                    raise NotImplementedError(f"state {name}: only a JSON array in S3 is read locally")
                self._check(state["ItemProcessor"]["States"], top=False)

    # -- running -----------------------------------------------------------------------------------------
    def run(self, execution: Execution) -> Execution:
        try:
            execution.output = self._states(self.definition, execution.input, execution, {})
            execution.status = "SUCCEEDED"
        except Aborted:
            execution.status = "ABORTED"
        except StatesError as exc:
            execution.status, execution.error, execution.cause = "FAILED", exc.error, exc.cause
        except Exception as exc:  # a bug of the twin: say so, as a failed execution
            execution.status, execution.error, execution.cause = "FAILED", "States.Runtime", repr(exc)
        execution.stopped = time.time()
        return execution

    def _states(self, machine: dict[str, Any], data: Any, execution: Execution, context: dict[str, Any]) -> Any:
        name = machine["StartAt"]
        while True:
            if execution.stop.is_set():
                raise Aborted()
            state = machine["States"][name]
            try:
                result = self._task(name, state, data, execution, context) if state["Type"] == "Task" \
                    else self._map(name, state, data, execution)
                data = write_path(state.get("ResultPath", "$"), data, result)
            except StatesError as exc:
                catcher = next((c for c in state.get("Catch", []) if _matches(c["ErrorEquals"], exc.error)), None)
                if catcher is None:
                    raise
                execution.history.append(("catch", name, exc.error))
                data = write_path(catcher.get("ResultPath", "$"), data, {"Error": exc.error, "Cause": exc.cause})
                name = catcher["Next"]
                continue
            if state.get("End"):
                return data
            name = state["Next"]

    def _task(self, name: str, state: dict[str, Any], data: Any, execution: Execution,
              context: dict[str, Any]) -> Any:
        event = resolve(state["Parameters"], data, context) if "Parameters" in state else data
        result = self._transform(name, event, execution) if state["Resource"] == TRANSFORM_SYNC \
            else self._invoke(name, state, event, execution)
        return resolve(state["ResultSelector"], result, context) if "ResultSelector" in state else result

    def _transform(self, name: str, params: dict[str, Any], execution: Execution) -> Any:
        """The job, to its end: a Failed job fails the state (States.TaskFailed, the job's description as the
        cause), and so does a Stopped one (StopTransformJob), as the .sync integration does."""
        from inferstack_infra.local.transform import TransformJobFailed, TransformJobStopped

        assert self.transform is not None
        execution.history.append(("transform", name, params["TransformJobName"]))
        try:
            return self.transform(params)
        except TransformJobFailed as exc:
            status = "Stopped" if isinstance(exc, TransformJobStopped) else "Failed"
            raise StatesError("States.TaskFailed", json.dumps({
                "TransformJobName": exc.name, "TransformJobStatus": status, "FailureReason": exc.reason})) from None

    def _invoke(self, name: str, state: dict[str, Any], event: Any, execution: Execution) -> Any:
        function = lambda_name(state["Resource"])
        attempts: dict[int, int] = {}
        while True:
            attempt = sum(attempts.values()) + 1
            execution.history.append(("invoke", name, attempt))
            try:
                payload, failed = self.invoke(function, event)
            except Exception as exc:  # the execution environment died mid-call
                payload, failed = {"errorType": "Runtime.ExitError", "errorMessage": str(exc)}, True
            if not failed:
                return payload
            error = str(payload.get("errorType") or "States.TaskFailed") if isinstance(payload, dict) \
                else "States.TaskFailed"
            cause = json.dumps(payload)
            index, retrier = next(((i, r) for i, r in enumerate(state.get("Retry", []))
                                   if _matches(r["ErrorEquals"], error)), (-1, None))
            if retrier is None or attempts.get(index, 0) >= retrier.get("MaxAttempts", 3):
                raise StatesError(error, cause)
            delay = retrier.get("IntervalSeconds", 1) * retrier.get("BackoffRate", 2.0) ** attempts.get(index, 0)
            if "MaxDelaySeconds" in retrier:
                delay = min(delay, retrier["MaxDelaySeconds"])
            if retrier.get("JitterStrategy") == "FULL":
                delay *= self.rand()
            attempts[index] = attempts.get(index, 0) + 1
            execution.history.append(("retry", name, error, round(delay, 3)))
            self.log(f"{execution.name} {name}: {error}; retry {attempts[index]} in {delay:.1f} s")
            if execution.stop.wait(delay * self.time_scale):
                raise Aborted()

    def _items(self, state: dict[str, Any], data: Any) -> list[Any]:
        params = resolve(state["ItemReader"]["Parameters"], data, {})
        try:
            body = self.s3.get_object(Bucket=params["Bucket"], Key=params["Key"])["Body"].read()
        except Exception as exc:
            raise StatesError("States.ItemReaderFailed", f"cannot read s3://{params['Bucket']}/{params['Key']}: "
                              f"{exc}") from None
        items = json.loads(body)
        if not isinstance(items, list):
            raise StatesError("States.ItemReaderFailed", "the ItemReader's JSON is not an array")
        return items

    def _batches(self, state: dict[str, Any], items: list[Any], data: Any) -> list[Any]:
        batcher = state.get("ItemBatcher")
        if batcher is None:
            return items
        most = batcher.get("MaxItemsPerBatch") or len(items) or 1
        most_bytes = min(batcher.get("MaxInputBytesPerBatch", MAX_BATCH_BYTES), MAX_BATCH_BYTES)
        extra = resolve(batcher["BatchInput"], data, {}) if "BatchInput" in batcher else None
        out: list[Any] = []
        current: list[Any] = []
        size = 0
        for item in items:
            item_bytes = len(json.dumps(item))
            if current and (len(current) >= most or size + item_bytes > most_bytes):
                out.append(current)
                current, size = [], 0
            current.append(item)
            size += item_bytes
        if current:
            out.append(current)
        return [{"Items": b, **({"BatchInput": extra} if extra is not None else {})} for b in out]

    def _map(self, name: str, state: dict[str, Any], data: Any, execution: Execution) -> Any:
        children = self._batches(state, self._items(state, data), data)
        processor = state["ItemProcessor"]
        results: list[tuple[int, Any, StatesError | None]] = []
        lock = threading.Lock()

        def child(index: int, value: Any) -> None:
            if execution.stop.is_set():
                return
            try:
                output = self._states(processor, value, execution, {"Map": {"Item": {"Index": index}}})
                error = None
            except StatesError as exc:
                output, error = None, exc
            except Aborted:
                return
            with lock:
                results.append((index, output, error))

        workers = max(1, min(state.get("MaxConcurrency") or len(children) or 1, len(children) or 1))
        with ThreadPoolExecutor(workers, thread_name_prefix=f"map-{execution.name[:8]}") as pool:
            for future in [pool.submit(child, i, c) for i, c in enumerate(children)]:
                future.result()
        if execution.stop.is_set():
            raise Aborted()
        failed = [r for r in results if r[2] is not None]
        execution.history.append(("map", name, len(children), len(failed)))
        summary = self._write_results(state, data, execution, name, sorted(results, key=lambda r: r[0]))
        tolerated_pct = state.get("ToleratedFailurePercentage", 0)
        tolerated_count = state.get("ToleratedFailureCount", 0)
        if failed and len(failed) > tolerated_count and 100 * len(failed) / len(children) > tolerated_pct:
            first = failed[0][2]
            assert first is not None
            raise StatesError("States.ExceedToleratedFailureThreshold",
                              f"{len(failed)} of {len(children)} child executions failed; the first: "
                              f"{first.error}: {first.cause}")
        return summary

    def _write_results(self, state: dict[str, Any], data: Any, execution: Execution, name: str,
                       results: list[tuple[int, Any, StatesError | None]]) -> Any:
        """The ResultWriter's files (manifest.json, SUCCEEDED_0.json, FAILED_0.json) under
        <prefix>/<map run id>/, and the small object the Map's result becomes."""
        writer = state.get("ResultWriter")
        if writer is None:
            return [output for _, output, error in results if error is None]
        params = resolve(writer["Parameters"], data, {})
        run_id = f"{execution.name}-{name}"
        base = f"{params.get('Prefix', '').rstrip('/')}/{run_id}".lstrip("/")
        files = {"SUCCEEDED_0.json": [{"Index": i, "Output": json.dumps(o), "Status": "SUCCEEDED"}
                                      for i, o, e in results if e is None],
                 "FAILED_0.json": [{"Index": i, "Error": e.error, "Cause": e.cause, "Status": "FAILED"}
                                   for i, _, e in results if e is not None]}
        for key, rows in files.items():
            self.s3.put_object(Bucket=params["Bucket"], Key=f"{base}/{key}", Body=json.dumps(rows).encode())
        manifest = {"DestinationBucket": params["Bucket"], "MapRunArn": f"{execution.arn}/{run_id}",
                    "ResultFiles": {"SUCCEEDED": [{"Key": f"{base}/SUCCEEDED_0.json"}],
                                    "FAILED": [{"Key": f"{base}/FAILED_0.json"}], "PENDING": []}}
        self.s3.put_object(Bucket=params["Bucket"], Key=f"{base}/manifest.json", Body=json.dumps(manifest).encode())
        return {"MapRunArn": manifest["MapRunArn"], "ResultWriterDetails": {"Bucket": params["Bucket"],
                                                                            "Key": f"{base}/manifest.json"}}
