"""The jobs tier's objects, built once per execution environment from the environment the CDK app (or
`inferstack dev`) sets: every jobs function's entry point starts with `JobsContext.from_env()`."""

from __future__ import annotations

from dataclasses import dataclass

from inferstack.aws import AwsClients
from inferstack.jobs.settings import JobsSettings
from inferstack.jobs.store import JobStore
from inferstack.jobs.webhooks import WebhookSender


@dataclass
class JobsContext:
    settings: JobsSettings
    aws: AwsClients
    store: JobStore

    @classmethod
    def create(cls, settings: JobsSettings, aws: AwsClients | None = None) -> JobsContext:
        aws = aws or AwsClients()
        return cls(settings, aws, JobStore(aws, table=settings.table, bucket=settings.bucket,
                                           ttl_days=settings.result_ttl_days))

    @classmethod
    def from_env(cls, aws: AwsClients | None = None) -> JobsContext:
        return cls.create(JobsSettings.from_env(), aws)

    def webhook_sender(self) -> WebhookSender:
        return WebhookSender(self.settings, self.aws, self.store)
