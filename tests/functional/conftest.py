from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from inferstack import env
from inferstack.jobs.webhooks import signing_secret
from inferstack.manifest import load_manifest
from inferstack_infra.catalog import build_catalog
from inferstack_infra.local.runtime import LocalContext
from inferstack_infra.local.webhook_receiver import WebhookReceiver
from tests.conftest import EXAMPLE_MANIFEST
from tests.functional.jobs_world import World, make_world

Handler = Callable[[dict[str, Any]], dict[str, Any]]


@pytest.fixture(scope="session")
def catalog_file(tmp_path_factory: pytest.TempPathFactory, iris_model: Path) -> Path:
    path = tmp_path_factory.mktemp("catalog") / "catalog.json"
    build_catalog(load_manifest(EXAMPLE_MANIFEST), bundled=False).dump(path)
    return path


def _import_fresh(module: str, environment: dict[str, str]) -> ModuleType:
    """Import a function's entry point as Lambda's init phase would: in a clean module state, with its env."""
    mp = pytest.MonkeyPatch()
    for key, value in environment.items():
        mp.setenv(key, value)
    sys.modules.pop(module, None)
    try:
        return importlib.import_module(module)
    finally:
        mp.undo()


def _invoke(module: ModuleType, name: str) -> Handler:
    def call(event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = module.handler(event, LocalContext(name, 1024, 10, "test-request"))
        return result
    return call


@pytest.fixture(scope="session")
def api_handler(catalog_file: Path) -> Iterator[Handler]:
    yield _invoke(_import_fresh("inferstack.functions.api.handler", {env.CATALOG_PATH: str(catalog_file)}), "api")


@pytest.fixture(scope="session")
def predict_handler(catalog_file: Path) -> Iterator[Handler]:
    module = _import_fresh("inferstack.functions.predict.handler", {
        env.CATALOG_PATH: str(catalog_file), env.MODEL_NAME: "iris", env.MAX_BODY_BYTES: str(64 * 1024)})
    yield _invoke(module, "predict-iris")


# The jobs tier in moto with the real worker, webhook sender and dead-letter handler (a module may override `world`,
# e.g. with other settings; `receiver` then follows it).
@pytest.fixture
def world(iris_model: Path) -> Iterator[World]:
    w = make_world(iris_model)
    yield w
    w.aws.stop()


@pytest.fixture
def receiver(world: World) -> Iterator[WebhookReceiver]:
    secret = world.aws.client("secretsmanager").get_secret_value(SecretId=world.settings.secret_id)["SecretString"]
    r = WebhookReceiver(signing_secret(secret)).start()
    yield r
    r.stop()
