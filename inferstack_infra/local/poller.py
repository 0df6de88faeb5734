"""Lambda's SQS event source mapping, on the local stack.

Long-polls a queue, gathers a batch (up to `batch_size` messages or `batching_window_s`), invokes the
function with an SQS event, deletes only the records that did not come back in `batchItemFailures`. A
function error (or a dead execution environment) deletes nothing: every record of the batch reappears after
the visibility timeout, and past `maxReceiveCount` the queue's redrive policy moves it to the DLQ.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from inferstack.topology import QueueSpec

#: (function key, event) -> (payload, function_error)
Invoke = Callable[[str, dict[str, Any]], tuple[Any, bool]]


def sqs_record(message: dict[str, Any], arn: str, region: str) -> dict[str, Any]:
    attrs = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            "ApproximateReceiveCount": attrs.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attrs.get("SentTimestamp", str(int(time.time() * 1000))),
            "SenderId": attrs.get("SenderId", "AIDAIENQZJOLO23YVJ4VO"),
            "ApproximateFirstReceiveTimestamp": attrs.get("ApproximateFirstReceiveTimestamp",
                                                          str(int(time.time() * 1000))),
        },
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": region,
    }


class QueuePoller:
    def __init__(self, spec: QueueSpec, *, sqs: Any, url: str, arn: str, region: str, invoke: Invoke,
                 log: Callable[[str], None], wait_s: int = 1) -> None:
        assert spec.function is not None
        self.spec, self.sqs, self.url, self.arn, self.region = spec, sqs, url, arn, region
        self.invoke, self.log, self.wait_s = invoke, log, wait_s
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"poller-{spec.key}", daemon=True)
        #: Batches handed to the function, and records deleted: the fault tests read these.
        self.batches = 0
        self.deleted = 0

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=self.wait_s + 5)

    def _receive(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.spec.batching_window_s
        wait = self.wait_s
        while len(messages) < self.spec.batch_size and not self.stopping.is_set():
            got = self.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=min(10, self.spec.batch_size - len(messages)),
                WaitTimeSeconds=wait, AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
            messages.extend(got)
            if not got and (messages or time.monotonic() >= deadline):
                break
            if time.monotonic() >= deadline and messages:
                break
            wait = 0 if messages else self.wait_s
        return messages

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                messages = self._receive()
            except Exception as exc:  # the emulator restarting, say: keep polling, as Lambda does
                self.log(f"receive failed ({type(exc).__name__}); retrying")
                time.sleep(1)
                continue
            if messages:
                try:
                    self._deliver(messages)
                except Exception as exc:  # deleting failed: the records come back, as on AWS
                    self.log(f"completing a batch failed ({type(exc).__name__}); its records will be redelivered")

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        assert self.spec.function is not None
        event = {"Records": [sqs_record(m, self.arn, self.region) for m in messages]}
        self.batches += 1
        try:
            result, failed = self.invoke(self.spec.function, event)
        except Exception as exc:
            self.log(f"invoking {self.spec.function} failed ({type(exc).__name__}: {exc}); "
                     f"{len(messages)} message(s) return after the visibility timeout")
            return
        if failed or not isinstance(result, dict):
            self.log(f"{self.spec.function} raised; {len(messages)} message(s) return after the visibility timeout")
            return
        retry = {f.get("itemIdentifier") for f in result.get("batchItemFailures") or []}
        done = [m for m in messages if m["MessageId"] not in retry]
        for start in range(0, len(done), 10):
            chunk = done[start:start + 10]
            self.sqs.delete_message_batch(QueueUrl=self.url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)])
        self.deleted += len(done)
        if retry:
            self.log(f"{len(retry)} of {len(messages)} record(s) reported failed; they will be retried")
