"""The embedded AWS emulator under concurrency, and the SQS semantics it keeps (`inferstack_infra.local.emulator`).

What SQS does is what these tests assert, on the patched emulator: visibility, ChangeMessageVisibility, delays,
long polling, redrive to the dead-letter queue, the approximate counts."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from inferstack_infra.local.aws import free_port
from inferstack_infra.local.emulator import LocalMotoServer, patch_sqs


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    patch_sqs()
    server = LocalMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def client(endpoint: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",  # type: ignore[call-overload]
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def queue_with_dlq(sqs: Any, name: str, max_receive_count: int = 2, visibility: int = 30) -> tuple[str, str]:
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName=name, Attributes={
        "VisibilityTimeout": str(visibility),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": max_receive_count})})["QueueUrl"]
    return url, dlq


def counts(sqs: Any, url: str) -> dict[str, int]:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed"])["Attributes"]
    return {k.removeprefix("ApproximateNumberOfMessages") or "visible": int(v) for k, v in attrs.items()}


def test_concurrent_writers_and_transactions_never_race(endpoint: str) -> None:
    # GIVEN a table of 300 items and 16 clients at once, half inserting, half running 10-item transactions
    # (unserialized, moto's TransactWriteItems deep-copies the table while the inserts change it: 500s with
    # "dictionary changed size during iteration")
    ddb = client(endpoint, "dynamodb")
    ddb.create_table(TableName="race", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    for i in range(300):
        ddb.put_item(TableName="race", Item={"pk": {"S": f"base-{i}"}, "n": {"N": "0"}})

    def work(n: int) -> None:
        mine = client(endpoint, "dynamodb")
        for i in range(20):
            if n % 2:
                mine.transact_write_items(TransactItems=[
                    {"Update": {"TableName": "race", "Key": {"pk": {"S": f"base-{(n * 20 + i + j) % 300}"}},
                                "UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}}
                    for j in range(10)])
            else:
                mine.put_item(TableName="race", Item={"pk": {"S": f"new-{n}-{i}"}, "n": {"N": "0"}},
                              ConditionExpression="attribute_not_exists(pk)")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(work, range(16)))  # THEN no call raised
    items = ddb.scan(TableName="race")["Items"]
    # and nothing was lost: every insert is there, every transaction added its 10
    assert len(items) == 300 + 8 * 20 and sum(int(i["n"]["N"]) for i in items) == 8 * 20 * 10


def test_visibility_change_delay_and_counts(endpoint: str) -> None:
    sqs = client(endpoint, "sqs")
    url, _ = queue_with_dlq(sqs, "vis", max_receive_count=5)
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(3)])
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    assert counts(sqs, url) == {"visible": 3, "NotVisible": 0, "Delayed": 1}
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    assert sorted(m["Body"] for m in got) == ["m0", "m1", "m2"]  # the delayed one is not delivered
    assert counts(sqs, url) == {"visible": 0, "NotVisible": 3, "Delayed": 1}
    assert sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []) == []
    # WHEN one message's visibility is set to 0 and another's to 1 s
    sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
        {"Id": "a", "ReceiptHandle": got[0]["ReceiptHandle"], "VisibilityTimeout": 0},
        {"Id": "b", "ReceiptHandle": got[1]["ReceiptHandle"], "VisibilityTimeout": 1}])
    # THEN the first is back at once, the second a second later (a long poll waits for it), the third not
    (again,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    assert again["MessageId"] == got[0]["MessageId"] and again["Attributes"]["ApproximateReceiveCount"] == "2"
    later = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=5)["Messages"]
    assert [m["MessageId"] for m in later] == [got[1]["MessageId"]]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"])
    assert counts(sqs, url) == {"visible": 0, "NotVisible": 2, "Delayed": 1}


def test_redrive_to_the_dead_letter_queue_after_max_receive_count(endpoint: str) -> None:
    sqs = client(endpoint, "sqs")
    url, dlq = queue_with_dlq(sqs, "redrive", max_receive_count=2)
    sqs.send_message(QueueUrl=url, MessageBody="poison")
    for _ in range(2):
        (m,) = sqs.receive_message(QueueUrl=url)["Messages"]
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []
    (dead,) = sqs.receive_message(QueueUrl=dlq)["Messages"]
    assert dead["Body"] == "poison"


def test_a_long_poll_does_not_hold_up_other_calls_and_ends_when_a_message_arrives(endpoint: str) -> None:
    sqs = client(endpoint, "sqs")
    url, _ = queue_with_dlq(sqs, "longpoll")
    got: list[Any] = []
    began = time.monotonic()
    poller = threading.Thread(target=lambda: got.extend(
        client(endpoint, "sqs").receive_message(QueueUrl=url, WaitTimeSeconds=20).get("Messages", [])))
    poller.start()
    time.sleep(0.5)
    # WHEN other calls are made while the long poll waits: they are answered (the poll gave up the lock)
    client(endpoint, "dynamodb").list_tables()
    sqs.send_message(QueueUrl=url, MessageBody="wake")
    poller.join(20)
    # THEN the poll returned the message, well before its 20 s
    assert [m["Body"] for m in got] == ["wake"] and time.monotonic() - began < 15


def test_a_deep_queue_still_delivers_in_order_and_counts(endpoint: str) -> None:
    sqs = client(endpoint, "sqs")
    url, _ = queue_with_dlq(sqs, "deep")
    for start in range(0, 500, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": str(start + i)}
                                                      for i in range(10)])
    assert counts(sqs, url)["visible"] == 500
    seen: list[int] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        seen += [int(m["Body"]) for m in batch]
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                        for i, m in enumerate(batch)])
    assert seen == list(range(500)) and counts(sqs, url) == {"visible": 0, "NotVisible": 0, "Delayed": 0}
