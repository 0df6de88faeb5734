"""The shared result cache: one DynamoDB table per deployment (on-demand, TTL on `expires_at`), read and written
only by the functions whose model or cascade shares its cache (GetItem and PutItem on this table, nothing else).

No point-in-time recovery: every item is a recomputable answer that expires within `ttl_s`; a lost table costs
recomputation, not data."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Acknowledgment, RemovalPolicy, Validations
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from inferstack import env
from inferstack_infra.constructs.function import InferenceFunction

TTL_ATTRIBUTE = "expires_at"


class CacheTable(Construct):
    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self.table = dynamodb.Table(
            self, "Table",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=TTL_ATTRIBUTE,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=RemovalPolicy.DESTROY,
        )
        Validations.of(self.table).acknowledge(Acknowledgment(
            id="AwsSolutions-DDB3", reason="A cache of recomputable model answers that expire within their TTL: "
            "point-in-time recovery would restore nothing worth its cost"))

    @property
    def environment(self) -> dict[str, str]:
        return {env.CACHE_TABLE: self.table.table_name}

    def connect(self, users: Sequence[InferenceFunction]) -> None:
        """Least privilege: each user may get and put items of this table, nothing more."""
        for user in users:
            self.table.grant(user.role, "dynamodb:GetItem", "dynamodb:PutItem")
