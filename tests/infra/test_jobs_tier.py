"""The jobs tier in the synthesized template."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match

from tests.infra.conftest import Synthesized


def by_type(s: Synthesized, kind: str) -> dict[str, Any]:
    found: dict[str, Any] = s.template.find_resources(kind)
    return found


def test_jobs_table_on_demand_with_pitr_and_ttl(example: Synthesized) -> None:
    example.template.has_resource("AWS::DynamoDB::Table", {
        "Properties": Match.object_like({
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
            "SSESpecification": {"SSEEnabled": True}}),
        "DeletionPolicy": "Retain"})


def test_payload_bucket_private_encrypted_tls_only_with_expiry(example: Synthesized) -> None:
    (bucket,) = [b for k, b in by_type(example, "AWS::S3::Bucket").items() if k.startswith("JobsPayloads")]
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                                       "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == \
        {"SSEAlgorithm": "AES256"}
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-results"]["ExpirationInDays"] == 8  # result_ttl_days + 1
    assert rules["expire-inputs"]["Prefix"] == "inputs/"
    (policy,) = [p for k, p in by_type(example, "AWS::S3::BucketPolicy").items() if k.startswith("JobsPayloads")]
    deny = policy["Properties"]["PolicyDocument"]["Statement"][0]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_queue_per_model_with_dlq_sse_and_visibility_six_times_the_worker_timeout(example: Synthesized) -> None:
    queues = by_type(example, "AWS::SQS::Queue")
    assert len(queues) == 6  # per model (iris, minilm) a queue + DLQ; webhooks + its DLQ
    for q in queues.values():
        assert q["Properties"]["SqsManagedSseEnabled"] is True
    (jobs_queue,) = [q for k, q in queues.items() if k.startswith("JobsJobsIrisQueue")]
    assert jobs_queue["Properties"]["VisibilityTimeout"] == 6 * 60
    assert jobs_queue["Properties"]["RedrivePolicy"]["maxReceiveCount"] == 3
    for policy in by_type(example, "AWS::SQS::QueuePolicy").values():
        (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
        assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_event_sources_report_batch_item_failures(example: Synthesized) -> None:
    mappings = list(by_type(example, "AWS::Lambda::EventSourceMapping").values())
    assert len(mappings) == 6  # two workers, webhooks, deadletter on each model's DLQ and on the webhooks DLQ
    for m in mappings:
        assert m["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    workers = [m for m in mappings if "ScalingConfig" in m["Properties"]]
    assert len(workers) == 2
    for worker in workers:
        assert worker["Properties"]["BatchSize"] == 10
        assert worker["Properties"]["ScalingConfig"] == {"MaximumConcurrency": 20}


def test_the_webhooks_dlq_is_consumed_by_the_dead_letter_function(example: Synthesized) -> None:
    (dlq_id,) = [k for k in by_type(example, "AWS::SQS::Queue") if k.startswith("JobsWebhooksDlq")]
    (mapping,) = [m for m in by_type(example, "AWS::Lambda::EventSourceMapping").values()
                  if m["Properties"]["EventSourceArn"] == {"Fn::GetAtt": [dlq_id, "Arn"]}]
    alias_id = str(mapping["Properties"]["FunctionName"]).split("'Ref': '")[1].split("'")[0]
    function = by_type(example, "AWS::Lambda::Alias")[alias_id]["Properties"]["FunctionName"]["Ref"]
    handler = by_type(example, "AWS::Lambda::Function")[function]["Properties"]["Handler"]
    assert handler == "inferstack.functions.deadletter.handler.handler"


def test_worker_function_timeout_and_environment(example: Synthesized) -> None:
    (worker,) = [f for f in by_type(example, "AWS::Lambda::Function").values()
                 if f["Properties"]["Handler"] == "inferstack.functions.worker.handler.handler"
                 and f["Properties"]["Environment"]["Variables"]["INFERSTACK_MODEL"] == "iris"]
    props = worker["Properties"]
    assert props["Timeout"] == 60 and "ReservedConcurrentExecutions" not in props
    variables = props["Environment"]["Variables"]
    assert {"INFERSTACK_JOBS_TABLE", "INFERSTACK_JOBS_BUCKET", "INFERSTACK_JOB_QUEUES", "INFERSTACK_WEBHOOK_QUEUE",
            "INFERSTACK_WEBHOOK_SECRET_ID"} <= set(variables)


def test_signing_secret_is_generated(example: Synthesized) -> None:
    (secret,) = by_type(example, "AWS::SecretsManager::Secret").values()
    generator = secret["Properties"]["GenerateSecretString"]
    assert generator["GenerateStringKey"] == "key" and generator["PasswordLength"] == 32


def _statements(s: Synthesized, role_prefix: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for key, policy in by_type(s, "AWS::IAM::Policy").items():
        if key.startswith(role_prefix):
            out.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return out


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    return {a for st in statements for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])}


def test_least_privilege_per_function(example: Synthesized) -> None:
    api = _actions(_statements(example, "ApiRole"))
    assert {"sqs:SendMessage", "sqs:GetQueueAttributes", "s3:PutObject", "s3:GetObject",
            "dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem"} <= api
    assert "secretsmanager:GetSecretValue" not in api and "sqs:ReceiveMessage" not in api
    webhooks = _actions(_statements(example, "WebhooksRole"))
    assert "secretsmanager:GetSecretValue" in webhooks and "s3:GetObject" not in webhooks
    worker = _statements(example, "WorkerIrisRole")
    s3_resources = json.dumps([st["Resource"] for st in worker if str(st["Action"]).startswith("s3:")])
    assert "/inputs/*" in s3_resources and "/results/*" in s3_resources
    assert "secretsmanager:GetSecretValue" not in _actions(worker)
    assert "dynamodb:DeleteItem" not in webhooks | _actions(worker)  # only the API releases idempotency keys


def test_alarms_on_dlq_depth_and_oldest_message(example: Synthesized) -> None:
    alarms = list(by_type(example, "AWS::CloudWatch::Alarm").values())
    names = [a["Properties"].get("MetricName") for a in alarms]
    assert names.count("ApproximateNumberOfMessagesVisible") == 3  # each DLQ
    assert names.count("ApproximateAgeOfOldestMessage") == 3  # the job queues and the webhook queue


def test_job_routes(example: Synthesized) -> None:
    paths = {k: r["Properties"]["PathPart"] for k, r in by_type(example, "AWS::ApiGateway::Resource").items()}
    methods = {(paths[m["Properties"]["ResourceId"]["Ref"]], m["Properties"]["HttpMethod"]): m["Properties"]
               for m in by_type(example, "AWS::ApiGateway::Method").values()}
    assert methods[("jobs", "POST")]["ApiKeyRequired"] is True
    assert methods[("{job_id}", "GET")]["ApiKeyRequired"] is True
    assert "RequestValidatorId" in methods[("jobs", "POST")]


def test_the_worker_may_shorten_a_failed_jobs_retry_on_its_own_queue_only(example: Synthesized) -> None:
    # a transiently failed job's message gets a short visibility (inferstack.jobs.backoff) before the worker
    # reports it: ChangeMessageVisibility on the worker's own job queue, and on no other queue
    worker = _statements(example, "WorkerIrisRole")
    changes = [json.dumps(st["Resource"]) for st in worker if "sqs:ChangeMessageVisibility" in st["Action"]]
    assert changes and all("JobsJobsIris" in c and "Dlq" not in c for c in changes), changes
    assert "sqs:ChangeMessageVisibility" not in _actions(_statements(example, "ApiRole"))


def test_only_the_api_function_may_put_items_in_the_jobs_table(example: Synthesized) -> None:
    (table_id,) = [k for k in by_type(example, "AWS::DynamoDB::Table") if k.startswith("JobsTable")]
    writers: set[str] = set()
    for policy in by_type(example, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if {"dynamodb:PutItem", "dynamodb:DeleteItem"} & set(actions) and table_id in json.dumps(
                    statement["Resource"]):
                writers |= {r["Ref"] for r in policy["Properties"]["Roles"]}
    roles = by_type(example, "AWS::IAM::Role")
    functions = {f["Properties"]["Role"]["Fn::GetAtt"][0]: f["Properties"]["Handler"]
                 for f in by_type(example, "AWS::Lambda::Function").values()}
    assert writers and all(w in roles for w in writers)
    assert {functions[w] for w in writers} == {"inferstack.functions.api.handler.handler"}
