"""The cache of the model or cascade a function serves, built from its environment (`$INFERSTACK_CACHE`,
`$INFERSTACK_CACHE_TABLE`) once per execution environment."""

from __future__ import annotations

import os

from inferstack import env
from inferstack.cache.settings import settings_from_env
from inferstack.cache.store import DynamoStore, ResultCache


def cache_from_env(name: str) -> ResultCache | None:
    config = settings_from_env()
    if config is None:
        return None
    table = os.environ.get(env.CACHE_TABLE)
    shared = None
    if config.shared and table:
        from inferstack.aws import AwsClients  # boto3 only where the cache is shared

        shared = DynamoStore(AwsClients().dynamodb, table, config.ttl_s, model=name)
    return ResultCache(config, shared=shared)
