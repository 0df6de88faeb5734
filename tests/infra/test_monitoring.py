"""The dashboard, the alarms' notifications and the tracing, on the synthesized templates."""

from __future__ import annotations

import json
from typing import Any

from inferstack_infra.constructs.dashboard import PERCENTILES
from tests.infra.conftest import Synthesized


def resources(s: Synthesized, kind: str) -> dict[str, Any]:
    return {k: v for k, v in s.template.to_json()["Resources"].items() if v["Type"] == kind}


def flatten(value: Any) -> str:
    """A Fn::Join'ed string with its tokens as `<Ref X>` / `<GetAtt X>`."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return sep.join(flatten(p) for p in parts)
    if isinstance(value, dict) and "Ref" in value:
        return f"<Ref {value['Ref']}>"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return f"<GetAtt {'.'.join(value['Fn::GetAtt'])}>"
    return json.dumps(value)


def dashboard(s: Synthesized) -> dict[str, Any]:
    (board,) = resources(s, "AWS::CloudWatch::Dashboard").values()
    body = flatten(board["Properties"]["DashboardBody"])
    # tokens stand inside JSON strings: a placeholder without quotes keeps the document parseable
    return dict(json.loads(body.replace('"<', '"').replace('>"', '"')), name=board["Properties"]["DashboardName"])


def titles(board: dict[str, Any]) -> list[str]:
    return [w["properties"].get("title") or w["properties"].get("markdown", "") for w in board["widgets"]]


def test_one_dashboard_with_the_panels_of_every_model(example: Synthesized) -> None:
    board = dashboard(example)
    assert board["name"] == "inferstack-example"
    names = titles(board)
    # GIVEN the example's light iris and heavy minilm THEN each has its tier's panels, its jobs' and webhooks'
    for expected in ("iris: latency at API Gateway (ms)", "iris: function duration and model time (ms)",
                     "iris: requests, 4xx, 5xx", "iris: throttles, concurrency, provisioned utilisation",
                     "iris: cold starts and validation failures by kind", "iris jobs: queue depth and dead letters",
                     "iris jobs: age of the oldest message (s)", "iris jobs: queue wait and run time (ms)",
                     "iris webhooks: success rate and outcomes",
                     "minilm: model latency (µs)", "minilm: instances and GPU utilisation",
                     "minilm: batch sizes and queue depth (container)", "minilm jobs: queue depth and dead letters",
                     "API requests and errors", "API latency (ms)", "Alarms (composites)"):
        assert expected in names, expected
    assert any(n.startswith("## iris (light") for n in names) and any(n.startswith("## minilm (heavy") for n in names)


def test_latency_panels_show_p50_p95_p99_and_read_the_functions_metrics(example: Synthesized) -> None:
    widgets = {w["properties"].get("title"): w["properties"] for w in dashboard(example)["widgets"]}
    gateway = widgets["iris: latency at API Gateway (ms)"]["metrics"]
    assert [m[-1]["stat"] for m in gateway] == list(PERCENTILES)
    assert all("/v1/models/iris/predict" in m for m in gateway)
    model_time = widgets["iris: function duration and model time (ms)"]["metrics"]
    emf_lines = [m for m in model_time if m[0] == "inferstack"]
    assert emf_lines and all(m[1] == "InferenceLatency" and "model" in m and "iris" in m and
                             "inferstack-example" in m for m in emf_lines)  # service = the deployment
    heavy = widgets["minilm: model latency (µs)"]["metrics"]
    assert [m[-1]["stat"] for m in heavy][:3] == list(PERCENTILES) and heavy[0][:2] == ["AWS/SageMaker", "ModelLatency"]
    rate = widgets["iris webhooks: success rate and outcomes"]["metrics"][0][0]
    assert rate["expression"] == "100 * delivered / attempts"


def test_the_dashboard_url_is_a_stack_output(example: Synthesized) -> None:
    outputs = example.template.to_json()["Outputs"]
    (url,) = [flatten(o["Value"]) for k, o in outputs.items() if k.startswith("MonitoringDashboardUrl")]
    assert url == ("https://<Ref AWS::Region>.console.aws.amazon.com/cloudwatch/home?region=<Ref AWS::Region>"
                   "#dashboards/dashboard/inferstack-example")


def topic_ref(s: Synthesized) -> dict[str, str]:
    (topic,) = resources(s, "AWS::SNS::Topic")
    return {"Ref": topic}


def test_every_alarm_notifies_the_topic_when_it_goes_off_and_when_it_clears(example: Synthesized,
                                                                            snapstart: Synthesized) -> None:
    for s in (example, snapstart):
        alarms = {**resources(s, "AWS::CloudWatch::Alarm"), **resources(s, "AWS::CloudWatch::CompositeAlarm")}
        assert len(alarms) > 20
        for name, alarm in alarms.items():
            assert topic_ref(s) in alarm["Properties"].get("AlarmActions", []), name
            assert topic_ref(s) in alarm["Properties"].get("OKActions", []), name


def test_the_topic_is_encrypted_with_a_rotated_key_cloudwatch_may_use(example: Synthesized) -> None:
    (topic,) = resources(example, "AWS::SNS::Topic").values()
    key_id = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = resources(example, "AWS::KMS::Key")[key_id]
    assert key["Properties"]["EnableKeyRotation"] is True
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch = [st for st in statements if st["Principal"].get("Service") == "cloudwatch.amazonaws.com"]
    assert cloudwatch and set(cloudwatch[0]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    (policy,) = resources(example, "AWS::SNS::TopicPolicy").values()
    assert any(st["Effect"] == "Deny" and st["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
               for st in policy["Properties"]["PolicyDocument"]["Statement"])


def test_one_composite_alarm_per_model_over_its_alarms(example: Synthesized) -> None:
    composites = {c["Properties"]["AlarmName"]: c for c in resources(example, "AWS::CloudWatch::CompositeAlarm")
                  .values()}
    assert set(composites) == {"inferstack-example-page-iris", "inferstack-example-page-minilm",
                               "inferstack-example-page-platform"}
    rule = flatten(composites["inferstack-example-page-iris"]["Properties"]["AlarmRule"])
    alarms = resources(example, "AWS::CloudWatch::Alarm")
    iris = [k for k in alarms if k.startswith(("PredictIris", "WorkerIris", "JobsJobsIris"))]
    assert len(iris) >= 8
    assert all(f"<GetAtt {k}.Arn>" in rule for k in iris)
    assert not any(f"<GetAtt {k}.Arn>" in rule for k in alarms if "Minilm" in k)
    minilm = flatten(composites["inferstack-example-page-minilm"]["Properties"]["AlarmRule"])
    assert any(f"<GetAtt {k}.Arn>" in minilm for k in alarms if k.startswith("HeavyMinilm"))
    # every alarm pages through exactly one composite
    rules = [flatten(c["Properties"]["AlarmRule"]) for c in composites.values()]
    for k in alarms:
        assert sum(f"<GetAtt {k}.Arn>" in r for r in rules) == 1, k


def test_subscriptions_from_the_manifest_hear_only_the_composites(snapstart: Synthesized,
                                                                 example: Synthesized) -> None:
    assert resources(example, "AWS::SNS::Subscription") == {}
    subs = list(resources(snapstart, "AWS::SNS::Subscription").values())
    assert sorted((s["Properties"]["Protocol"], s["Properties"]["Endpoint"]) for s in subs) == [
        ("email", "ml-team@example.com"), ("email", "oncall@example.com"),
        ("https", "https://events.example.com/alarms")]
    for s in subs:
        assert s["Properties"]["FilterPolicyScope"] == "MessageBody"
        assert s["Properties"]["FilterPolicy"] == {"AlarmName": [{"prefix": "snap-page-"}]}


def test_tracing_is_on_for_the_stage_and_every_function(example: Synthesized) -> None:
    (stage,) = resources(example, "AWS::ApiGateway::Stage").values()
    assert stage["Properties"]["TracingEnabled"] is True
    for fn in resources(example, "AWS::Lambda::Function").values():
        assert fn["Properties"]["TracingConfig"] == {"Mode": "Active"}
        assert fn["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == "inferstack-example"


def test_the_heavy_containers_batches_come_from_metric_filters_on_its_log(example: Synthesized) -> None:
    filters = {f["Properties"]["MetricTransformations"][0]["MetricName"]: (k, f)
               for k, f in resources(example, "AWS::Logs::MetricFilter").items()}
    assert set(filters) == {"ContainerBatchRows", "ContainerBatches", "ContainerBatchSizeMax", "ContainerQueueDepthMax"}
    (endpoint,) = resources(example, "AWS::SageMaker::Endpoint")
    for name, member in (("ContainerBatchRows", "$.BatchSizeSum"), ("ContainerQueueDepthMax", "$.QueueDepthMax")):
        _, f = filters[name]
        props = f["Properties"]
        assert props["LogGroupName"] == "/aws/sagemaker/Endpoints/inferstack-example-minilm"
        transform = props["MetricTransformations"][0]
        assert transform["MetricNamespace"] == "inferstack" and transform["MetricValue"] == member
        assert {d["Key"]: d["Value"] for d in transform["Dimensions"]} == {"service": "$.service", "model": "$.model"}
        assert member in props["FilterPattern"]
        assert endpoint in f["DependsOn"]  # SageMaker makes the log group when the container starts
    widgets = {w["properties"].get("title"): w["properties"] for w in dashboard(example)["widgets"]}
    batches = json.dumps(widgets["minilm: batch sizes and queue depth (container)"]["metrics"])
    assert "ContainerBatchRows" in batches and "ContainerBatchSizeMax" in batches


def test_cache_escalations_and_degraded_answers_have_their_panels(example: Synthesized, digits: Synthesized) -> None:
    names = titles(dashboard(example))
    assert "iris: cache, escalations, degraded" in names and "minilm: cache, escalations, degraded" in names
    board = dashboard(digits)
    widgets = {w["properties"].get("title"): w["properties"] for w in board["widgets"]}
    (cascade,) = [t for t in widgets if t and t.startswith("cascade ") and t.endswith("cache, escalations, degraded")]
    name = cascade.split()[1].rstrip(":")
    lines = widgets[cascade]["metrics"]
    assert {m[1] for m in lines} == {"CacheHits", "CacheMisses", "EscalatedRows", "Degraded", "CircuitOpen"}
    assert all(name in m for m in lines)  # the cascade's own metrics (its name is their `model` dimension)
    latency = widgets[f"cascade {name}: latency at API Gateway (ms)"]["metrics"]
    assert all(f"/v1/cascades/{name}/predict" in m for m in latency)


def test_the_gateways_own_problems_name_the_trace(example: Synthesized) -> None:
    for response in resources(example, "AWS::ApiGateway::GatewayResponse").values():
        body = json.loads(response["Properties"]["ResponseTemplates"]["application/json"])
        assert body["instance"] == "urn:x-amzn-trace-id:$context.xrayTraceId"
