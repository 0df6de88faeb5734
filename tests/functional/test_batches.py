"""The batch function and service over a moto server, with the Step Functions event shapes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from inferstack.batches.exceptions import BatchFinishedError, BatchNotFoundError, BatchRequestError
from inferstack.batches.scorer import part_key
from inferstack.jobs.exceptions import IdempotencyConflictError
from tests.conftest import ROOT
from tests.functional.batches_world import OWNER, BatchesWorld, make_world

GOOD = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [6.3, 2.5, 5.0, 1.9]]


def jsonl_with_bad_lines() -> tuple[bytes, dict[int, str]]:
    """Ten lines, four of them bad; returns the file and, per bad line number, the error type expected."""
    lines = [
        json.dumps({"id": "a", "features": GOOD[0]}),
        json.dumps({"features": GOOD[1]}),
        "{not json",                                        # 3: malformed
        json.dumps({"id": "d", "features": [1.0, 2.0]}),     # 4: wrong shape
        json.dumps({"features": GOOD[2]}),
        "",                                                 # 6: empty
        json.dumps({"features": ["x", 1, 2, 3]}),           # 7: wrong type
        json.dumps([1, 2, 3]),                              # 8: not an object
        json.dumps({"id": 9, "features": GOOD[3]}),
        json.dumps({"features": GOOD[0]}),
    ]
    bad = {3: "malformed-line", 4: "invalid-input", 6: "malformed-line", 7: "invalid-input", 8: "malformed-line"}
    return ("\n".join(lines) + "\n").encode(), bad


@pytest.fixture(scope="module")
def world(iris_model: Path) -> Iterator[BatchesWorld]:
    w = make_world(iris_model)
    yield w
    w.aws.stop()


def read_lines(world: BatchesWorld, output: str, names: list[str]) -> list[dict[str, object]]:
    return [json.loads(line) for name in names for line in world.get(output + name).decode().splitlines()]


def test_good_and_bad_lines_are_scored_completely_with_exact_errors(world: BatchesWorld) -> None:
    # GIVEN a JSONL file of 10 lines, 5 of them bad, scored in chunks of 3 rows
    data, bad = jsonl_with_bad_lines()
    batch = world.submit(input=world.put("in/mixed.jsonl", data), rows_per_chunk=3)
    # WHEN the state machine's steps run
    result = world.run(batch)
    # THEN every good row has an output line, every bad one an error line naming its line, and the counts add up
    assert result == {"status": "succeeded", "rows": 5, "failed": 5}
    manifest = json.loads(world.get(batch.output + "_manifest.json"))
    assert manifest["rows"] == {"total": 10, "succeeded": 5, "failed": 5}
    assert manifest["chunks"] == {"total": 4, "done": 4}
    assert manifest["files"] == [f"part-0000{i}.jsonl" for i in range(4)]
    assert manifest["model"] == "iris" and manifest["version"] == world.predictor.version
    outputs = read_lines(world, batch.output, manifest["files"])
    errors = read_lines(world, batch.output, manifest["errors"])
    assert [o["line"] for o in outputs] == [1, 2, 5, 9, 10]
    assert [o.get("id") for o in outputs] == ["a", None, None, 9, None]
    assert {e["line"]: e["error"]["type"] for e in errors} == bad
    assert next(e for e in errors if e["line"] == 4)["id"] == "d"
    assert "features" in next(e for e in errors if e["line"] == 4)["error"]["detail"]
    # AND the outputs are what predict answers for the same rows
    rows = [GOOD[0], GOOD[1], GOOD[2], GOOD[3], GOOD[0]]
    direct = world.predictor.predict({"features": rows})
    for i, out in enumerate(outputs):
        assert out["outputs"] == {k: v[i] for k, v in direct.items()}
    view = world.service.view(batch.batch_id, owner=OWNER)
    assert view.status == "succeeded" and view.rows.failed == 5 and view.finished_at


def test_a_retried_chunk_replaces_its_files_and_is_counted_once(world: BatchesWorld) -> None:
    data, _ = jsonl_with_bad_lines()
    batch = world.submit(input=world.put("in/retry.jsonl", data), rows_per_chunk=4)
    state = world.state(batch)
    plan = world.function.handle({"action": "plan", "batch": state})
    events = world.chunk_events(batch, plan)
    # GIVEN chunk 0 scored, then delivered again (its first attempt crashed after writing, or a retry)
    for event in [events[0], events[0], *events[1:], events[1]]:
        world.function.handle(event)
    world.function.handle({"action": "finish", "batch": state})
    manifest = json.loads(world.get(batch.output + "_manifest.json"))
    # THEN no line is duplicated and the counts are the file's
    assert manifest["rows"] == {"total": 10, "succeeded": 5, "failed": 5}
    lines = [o["line"] for o in read_lines(world, batch.output, manifest["files"] + manifest["errors"])]
    assert sorted(lines) == list(range(1, 11))


def test_a_cancelled_batch_skips_its_remaining_chunks_and_says_how_far_it_got(world: BatchesWorld) -> None:
    data = b"".join(json.dumps({"features": GOOD[i % 4]}).encode() + b"\n" for i in range(20))
    batch = world.submit(input=world.put("in/cancel.jsonl", data), rows_per_chunk=5)
    state = world.state(batch)
    events = world.chunk_events(batch, world.function.handle({"action": "plan", "batch": state}))
    world.function.handle(events[0])
    view = world.service.cancel(batch.batch_id, owner=OWNER)
    assert view.status == "cancelled"
    skipped = [world.function.handle(e) for e in events[1:]]
    assert all(s["skipped"] == 1 and s["chunks"] == 0 for s in skipped)
    world.function.handle({"action": "finish", "batch": state})
    view = world.service.view(batch.batch_id, owner=OWNER)
    assert view.status == "cancelled" and view.rows.succeeded == 5 and view.rows.total == 20
    assert view.chunks.done == 1 and view.finished_at
    assert json.loads(world.get(batch.output + "_manifest.json"))["status"] == "cancelled"
    with pytest.raises(BatchFinishedError):
        finished = world.submit(input=world.put("in/done.jsonl", data))
        world.run(finished)
        world.service.cancel(finished.batch_id, owner=OWNER)


def test_csv_columns_map_to_the_input(world: BatchesWorld) -> None:
    csv = b"id,sl,sw,pl,pw\nr1,5.1,3.5,1.4,0.2\nr2,6.7,3.0,5.2,oops\nr3,6.3,2.5,5.0,1.9\n"
    batch = world.submit(input=world.put("in/rows.csv", csv), format="csv", rows_per_chunk=2,
                         columns={"features": ["sl", "sw", "pl", "pw"]})
    assert world.run(batch) == {"status": "succeeded", "rows": 2, "failed": 1}
    manifest = json.loads(world.get(batch.output + "_manifest.json"))
    outputs = read_lines(world, batch.output, manifest["files"])
    (error,) = read_lines(world, batch.output, manifest["errors"])
    assert [(o["line"], o["id"]) for o in outputs] == [(2, "r1"), (4, "r3")]
    assert error["line"] == 3 and error["id"] == "r2" and "'oops' is not a number" in error["error"]["detail"]


def test_submit_refuses_what_cannot_run(world: BatchesWorld) -> None:
    good = world.put("in/ok.jsonl", json.dumps({"features": GOOD[0]}).encode() + b"\n")
    cases = [
        ({"input": f"s3://{world.bucket}/in/missing.jsonl"}, "input", "does not exist"),
        ({"input": "s3://someone-elses-bucket/x.jsonl"}, "input", "may not read"),
        ({"input": world.put("in/empty.jsonl", b"")}, "input", "empty"),
        ({"input": world.put("in/csv.jsonl", b"a,b\n1,2\n")}, "format", "not JSON Lines"),
        ({"input": good, "output": "s3://not-ours/out/"}, "output", "may not write"),
        ({"input": world.put("in/c.csv", b"a,b\n1,2\n"), "format": "csv", "columns": {"features": ["a", "z"]}},
         "columns", "'z' not in the CSV header"),
    ]
    for body, field, detail in cases:
        with pytest.raises(BatchRequestError) as caught:
            world.submit(**body)
        assert caught.value.field == field and detail in caught.value.detail, (body, caught.value)


def test_idempotent_resubmit_returns_the_same_batch(world: BatchesWorld) -> None:
    uri = world.put("in/idem.jsonl", json.dumps({"features": GOOD[0]}).encode() + b"\n")
    first = world.submit("key-1", input=uri)
    again = world.submit("key-1", input=uri)
    assert again.batch_id == first.batch_id
    assert sum(s["name"] == first.batch_id for s in world.clients.executions.started) == 1
    with pytest.raises(IdempotencyConflictError):
        world.submit("key-1", input=uri, rows_per_chunk=7)
    with pytest.raises(BatchNotFoundError):
        world.service.view(first.batch_id, owner="someone-else")


def test_outputs_go_where_the_request_says(world: BatchesWorld) -> None:
    uri = world.put("in/out.jsonl", json.dumps({"features": GOOD[0]}).encode() + b"\n")
    batch = world.submit(input=uri, output="s3://allowed-out/results/run1")
    assert batch.output == "s3://allowed-out/results/run1/"
    world.run(batch)
    body = world.clients.s3.get_object(Bucket="allowed-out", Key=part_key("results/run1/", 0))["Body"].read()
    assert json.loads(body)["line"] == 1


def test_the_api_function_with_batches_imports_neither_numpy_nor_onnxruntime() -> None:
    # GIVEN the API function's batch code WHEN imported in a fresh interpreter THEN numpy and onnxruntime stay out
    # (its layer has neither)
    script = ("import sys\n"
              "import inferstack.batches.service, inferstack.api.routes.batches, inferstack.api.app\n"
              "print(sorted(m for m in ('onnxruntime', 'numpy') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]"


def test_a_batch_whose_execution_failed_before_finishing_ends_as_failed(world: BatchesWorld) -> None:
    batch = world.submit(input=world.put("in/lost.jsonl", json.dumps({"features": GOOD[0]}).encode() + b"\n"))
    assert world.service.view(batch.batch_id, owner=OWNER).status == "queued"
    assert batch.execution_arn
    world.clients.executions.described[batch.execution_arn] = {
        "status": "TIMED_OUT", "error": "States.Timeout", "cause": "the execution ran past 86400 s"}
    view = world.service.view(batch.batch_id, owner=OWNER)
    assert view.status == "failed" and view.finished_at
    assert view.error == {"type": "execution-timed_out", "detail": "the state machine's execution timed out: "
                          "States.Timeout: the execution ran past 86400 s"}


def test_chunks_finishing_together_are_each_counted_once(world: BatchesWorld) -> None:
    # GIVEN a transaction conflict on the batch's item (another chunk's transaction in flight) on the first try
    from botocore.exceptions import ClientError

    batch = world.submit(input=world.put("in/conflict.jsonl", json.dumps({"features": GOOD[0]}).encode() + b"\n"))
    real = world.clients.dynamodb.transact_write_items
    calls: list[int] = []

    def conflicted(**kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                               "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}]},
                              "TransactWriteItems")
        return real(**kwargs)

    world.clients.dynamodb.transact_write_items = conflicted  # type: ignore[method-assign]
    try:
        assert world.store.chunk_done(batch.batch_id, 0, succeeded=3, failed=1)
        assert not world.store.chunk_done(batch.batch_id, 0, succeeded=3, failed=1)  # the same chunk again
    finally:
        world.clients.dynamodb.transact_write_items = real  # type: ignore[method-assign]
    got = world.store.get(batch.batch_id)
    assert (got.rows_succeeded, got.rows_failed, got.chunks_done, len(calls)) == (3, 1, 1, 3)
