"""SageMaker Batch Transform on the local stack: a `CreateTransformJob` run against the local model container
(`local.sagemaker.ModelServer`), as the Step Functions `.sync` integration sees it.

It does what the job does with the parameters the batch state machines use: the S3 manifest file's objects
(`S3DataType: ManifestFile`), each split into lines (`SplitType: Line`), the lines packed into requests of at
most `MaxPayloadInMB` (`BatchStrategy: MultiRecord`; a single record over the limit fails the job, as on
SageMaker), POSTed to `/invocations` with the input's `ContentType` and `Accept`, and the answers of an object
joined into `<name>.out` under `S3OutputPath` (`AssembleWith: Line`: a newline after each answer that lacks
one). A non-2xx answer fails the job, its message naming the object and the status (SageMaker's
`ClientError`). Anything else in the parameters is refused rather than ignored.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from inferstack.batches.schemas import parse_s3_uri
from inferstack.batches.transform import lines_of

KNOWN = {"TransformJobName", "ModelName", "TransformInput", "TransformOutput", "TransformResources",
         "BatchStrategy", "MaxPayloadInMB", "MaxConcurrentTransforms", "Environment"}
BLOCK_BYTES = 8 << 20


class TransformJobFailed(Exception):
    """The job ended Failed: `reason` is its FailureReason."""

    def __init__(self, name: str, reason: str) -> None:
        self.name, self.reason = name, reason
        super().__init__(f"{name}: {reason}")


class TransformJobStopped(TransformJobFailed):
    """The job ended Stopped (StopTransformJob while it ran)."""

    def __init__(self, name: str) -> None:
        super().__init__(name, "stopped by StopTransformJob")


class LocalTransform:
    """Runs transform jobs. `server_url(model_name)` is the local container serving that SageMaker model."""

    def __init__(self, s3: Any, server_url: Callable[[str], str], *, log: Callable[[str], None] = lambda _: None,
                 timeout_s: float = 600, stop: threading.Event | None = None) -> None:
        self.s3, self.server_url, self.log, self.timeout_s = s3, server_url, log, timeout_s
        #: Set by StopTransformJob: the job sends no more requests and ends Stopped.
        self.stop = stop or threading.Event()

    def run(self, params: dict[str, Any]) -> dict[str, Any]:
        """Create and run the job to its end; returns what DescribeTransformJob answers for a Completed job,
        raises `TransformJobFailed` for a Failed one, `TransformJobStopped` for a stopped one (checked before each
        request, and at the end: a stopped job writes no more answers)."""
        unknown = set(params) - KNOWN
        if unknown:
            raise NotImplementedError(f"CreateTransformJob: {sorted(unknown)} are not run locally")
        name = params["TransformJobName"]
        if self.stop.is_set():
            raise TransformJobStopped(name)
        source = params["TransformInput"]["DataSource"]["S3DataSource"]
        if source.get("S3DataType") != "ManifestFile" or params["TransformInput"].get("SplitType") != "Line" \
                or params.get("BatchStrategy") != "MultiRecord" or \
                params["TransformOutput"].get("AssembleWith") != "Line":
            raise NotImplementedError("CreateTransformJob: locally only a ManifestFile, SplitType Line, "
                                      "BatchStrategy MultiRecord and AssembleWith Line")
        limit = int(params.get("MaxPayloadInMB", 6)) * 1024 * 1024
        headers = {"Content-Type": params["TransformInput"].get("ContentType", "application/octet-stream"),
                   "Accept": params["TransformOutput"].get("Accept", "application/octet-stream")}
        url = f"{self.server_url(params['ModelName'])}/invocations"
        out_bucket, out_prefix = parse_s3_uri(params["TransformOutput"]["S3OutputPath"])
        if out_prefix and not out_prefix.endswith("/"):
            out_prefix += "/"
        for bucket, key in self._objects(source["S3Uri"]):
            answers = bytearray()
            with httpx.Client(timeout=self.timeout_s) as client:
                for request in self._requests(bucket, key, limit, name):
                    if self.stop.is_set():
                        raise TransformJobStopped(name)
                    try:
                        response = client.post(url, content=request, headers=headers)
                    except httpx.HTTPError:
                        if self.stop.is_set():  # its container went away with the job
                            raise TransformJobStopped(name) from None
                        raise
                    if response.status_code >= 300:
                        raise TransformJobFailed(name, f"ClientError: {key}: the container answered "
                                                 f"{response.status_code}: {response.text[:500]}")
                    answers += response.content
                    if response.content and not response.content.endswith(b"\n"):
                        answers += b"\n"
            if self.stop.is_set():
                raise TransformJobStopped(name)
            self.s3.put_object(Bucket=out_bucket, Key=f"{out_prefix}{key.rpartition('/')[2]}.out",
                               Body=bytes(answers))
            self.log(f"{name}: {key} scored")
        return {"TransformJobName": name, "TransformJobStatus": "Completed", "ModelName": params["ModelName"]}

    def _objects(self, manifest_uri: str) -> Iterator[tuple[str, str]]:
        bucket, key = parse_s3_uri(manifest_uri)
        document = json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        prefix = document[0]["prefix"]
        for name in document[1:]:
            yield parse_s3_uri(prefix + name)

    def _requests(self, bucket: str, key: str, limit: int, name: str) -> Iterator[bytes]:
        """The object's lines, packed into bodies of at most `limit` bytes, each line ending in a newline."""
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
        pending = bytearray()
        for line in lines_of(body.iter_chunks(BLOCK_BYTES)):
            record = line + b"\n"
            if len(record) > limit:
                raise TransformJobFailed(name, f"ClientError: {key}: a record of {len(record)} bytes is over "
                                         f"MaxPayloadInMB ({limit // (1024 * 1024)} MB)")
            if len(pending) + len(record) > limit:
                yield bytes(pending)
                pending.clear()
            pending += record
        if pending:
            yield bytes(pending)


class TransformJobs:
    """The running jobs, each on a container of its own (`ModelServer`), by name: `stop` is StopTransformJob."""

    def __init__(self) -> None:
        self.running: dict[str, tuple[threading.Event, Any]] = {}

    def run(self, params: dict[str, Any], s3: Any, server: Any, *, log: Callable[[str], None]) -> dict[str, Any]:
        """Start the job's container, run the job, stop the container. Stopped (even while its container
        starts): `TransformJobStopped`."""
        name, stop = params["TransformJobName"], threading.Event()
        self.running[name] = (stop, server)
        try:
            server.start()
            return LocalTransform(s3, lambda _: server.url, log=log, stop=stop).run(params)
        except Exception as exc:
            if stop.is_set() and not isinstance(exc, TransformJobFailed):  # its container went away mid-start
                raise TransformJobStopped(name) from None
            raise
        finally:
            self.running.pop(name, None)
            server.stop()

    def stop(self, params: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        """StopTransformJob (SageMaker's JSON 1.1 protocol): the job sends no more requests and its container
        goes away with its in-flight requests; an unknown or ended job is a ValidationException, as on AWS."""
        job = self.running.get(str(params.get("TransformJobName")))
        if job is None:
            message = f"Could not find job to update with name {params.get('TransformJobName')}"
            return 400, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": "ValidationException"}, \
                json.dumps({"__type": "ValidationException", "message": message}).encode()
        job[0].set()
        threading.Thread(target=job[1].stop, args=(0,), daemon=True).start()
        return 200, {"Content-Type": "application/x-amz-json-1.1"}, b"{}"
