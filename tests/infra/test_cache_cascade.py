"""The cascade example's template: the shared cache table (TTL, on-demand, least privilege), the cascade's
function, its route and its grant on the heavy stage's endpoint, the heavy model's fallback bundled in."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from aws_cdk.assertions import Match

from tests.infra.conftest import Synthesized


def of_type(s: Synthesized, kind: str) -> dict[str, Any]:
    found: dict[str, Any] = s.template.find_resources(kind)
    return found


def function(s: Synthesized, handler: str) -> dict[str, Any]:
    (found,) = [f for f in of_type(s, "AWS::Lambda::Function").values() if f["Properties"]["Handler"] == handler]
    return found


def cache_table_id(s: Synthesized) -> str:
    (table_id,) = [k for k in of_type(s, "AWS::DynamoDB::Table") if k.startswith("CacheTable")]
    return table_id


def test_the_cache_table_expires_items_and_bills_on_demand(digits: Synthesized) -> None:
    table = of_type(digits, "AWS::DynamoDB::Table")[cache_table_id(digits)]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert "PointInTimeRecoverySpecification" not in table  # recomputable answers: nothing to restore


def test_only_the_functions_that_share_a_cache_may_read_and_write_it_and_nothing_more(digits: Synthesized) -> None:
    table_id = cache_table_id(digits)
    grants: dict[str, set[str]] = {}
    for policy_id, policy in of_type(digits, "AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if table_id in json.dumps(statement["Resource"]):
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                grants.setdefault(policy_id.split("Role")[0], set()).update(actions)
    # the heavy model's proxy and worker and the cascade share their caches; the light model's stays in memory
    both = {"dynamodb:GetItem", "dynamodb:PutItem"}
    assert grants == {"PredictDigitsHeavy": both, "WorkerDigitsHeavy": both, "CascadeDigits": both}


def test_a_deployment_without_shared_caches_has_no_cache_table(example: Synthesized) -> None:
    assert not [k for k in of_type(example, "AWS::DynamoDB::Table") if k.startswith("CacheTable")]


def test_the_cascade_function_runs_its_light_stage_and_may_invoke_its_heavy_stage(digits: Synthesized) -> None:
    cascade = function(digits, "inferstack.functions.cascade.handler.handler")["Properties"]
    variables = cascade["Environment"]["Variables"]
    config = json.loads(variables["INFERSTACK_CASCADE"])
    assert [s["model"] for s in config["stages"]] == ["digits-light", "digits-heavy"]
    assert config["stages"][1]["endpoint"] == "digits-digits-heavy" and config["accept"]["min_confidence"] == 0.8
    assert variables["INFERSTACK_MODEL"] == "digits-light" and "INFERSTACK_CACHE_TABLE" in variables
    assert len(cascade["Layers"]) == 2  # base + inference (onnxruntime for the light stage)
    invokers = {k.split("Role")[0] for k, p in of_type(digits, "AWS::IAM::Policy").items()
                for st in p["Properties"]["PolicyDocument"]["Statement"] if st["Action"] == "sagemaker:InvokeEndpoint"}
    assert invokers == {"PredictDigitsHeavy", "WorkerDigitsHeavy", "CascadeDigits", "WorkerCascadeDigits"}


def test_a_cascades_jobs_have_their_queue_and_worker(digits: Synthesized) -> None:
    worker = [f["Properties"] for f in of_type(digits, "AWS::Lambda::Function").values()
              if f["Properties"]["Handler"] == "inferstack.functions.worker.handler.handler"
              and "INFERSTACK_CASCADE" in f["Properties"]["Environment"]["Variables"]]
    assert len(worker) == 1
    queues = json.dumps(worker[0]["Environment"]["Variables"]["INFERSTACK_JOB_QUEUES"])  # a Fn::Join of queue URLs
    assert all(f'\\"{target}\\":' in queues for target in ("digits-light", "digits-heavy", "cascade/digits"))
    mappings = [m for m in of_type(digits, "AWS::Lambda::EventSourceMapping").values()
                if "WorkerCascadeDigits" in json.dumps(m["Properties"]["FunctionName"])]
    assert len(mappings) == 1 and "JobsCascadeDigitsQueue" in json.dumps(mappings[0]["Properties"]["EventSourceArn"])


def test_the_heavy_proxy_carries_its_guard_and_its_fallback(digits: Synthesized) -> None:
    proxy = function(digits, "inferstack.functions.heavy.handler.handler")["Properties"]
    guard = json.loads(proxy["Environment"]["Variables"]["INFERSTACK_GUARD"])
    assert guard["fallback"] == "digits-light" and guard["budget_ms"] == 2000 and guard["circuit"]["failures"] == 5
    assert len(proxy["Layers"]) == 2  # the fallback runs in the proxy's own process


def test_the_cascade_route_reaches_the_cascade_function(digits: Synthesized) -> None:
    paths = {rid: r["Properties"]["PathPart"] for rid, r in of_type(digits, "AWS::ApiGateway::Resource").items()}
    (method,) = [m for m in of_type(digits, "AWS::ApiGateway::Method").values()
                 if m["Properties"]["HttpMethod"] == "POST" and paths[m["Properties"]["ResourceId"]["Ref"]] == "predict"
                 and "CascadeDigits" in json.dumps(m["Properties"]["Integration"])]
    assert method["Properties"]["ApiKeyRequired"] is True and "RequestValidatorId" in method["Properties"]
    digits.template.has_resource_properties("AWS::ApiGateway::Resource", {"PathPart": "cascades"})
    digits.template.has_resource_properties("AWS::Lambda::Function", {
        "Handler": "inferstack.functions.cascade.handler.handler", "Timeout": Match.any_value()})


def test_cfn_lint_is_clean(digits: Synthesized) -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    out = subprocess.run([str(cfn_lint), str(digits.template_file)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
