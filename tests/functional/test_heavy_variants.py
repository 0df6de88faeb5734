"""A heavy model's A/B variants on the local SageMaker endpoint: one container per production variant, the calls
split by weight, each answer naming its variant (InvokedProductionVariant) and version (custom attributes)."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import onnx
import pytest

from inferstack.manifest import parse_manifest
from inferstack.rollout import answered_version
from inferstack_infra.catalog import build_catalog
from inferstack_infra.local.sagemaker import LocalSageMaker
from tests.conftest import ROOT

MLP = ROOT / "models" / "mlp.onnx"
CALLS = 200
CATALOGS: dict[str, Any] = {}


@pytest.fixture(scope="module")
def ab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalSageMaker, dict[str, str]]]:
    if not MLP.exists():
        pytest.fail("models/mlp.onnx is missing: run `make models`")
    d = tmp_path_factory.mktemp("heavy-ab")
    tuned = onnx.load(str(MLP))
    tuned.doc_string = "tuned"
    onnx.save(tuned, str(d / "tuned.onnx"))
    manifest = parse_manifest({"name": "ab", "models": [{
        "name": "mlp", "tier": "heavy", "instance_type": "ml.g5.xlarge", "variants": [
            {"name": "control", "path": str(MLP), "weight": 75},
            {"name": "tuned", "path": str(d / "tuned.onnx"), "weight": 25}]}]}, root=d)
    catalog = build_catalog(manifest, bundled=False)
    sm = LocalSageMaker(manifest, catalog, d, log=lambda part, line: None)
    sm.start()
    versions = {v.name: v.version for v in catalog.models[0].variants or []}
    CATALOGS[sm.endpoint_url] = catalog
    yield sm, versions
    sm.stop()


def test_calls_split_by_weight_and_name_their_variant(ab: tuple[LocalSageMaker, dict[str, str]]) -> None:
    sm, versions = ab
    client = boto3.client("sagemaker-runtime", endpoint_url=sm.endpoint_url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    seen: Counter[str] = Counter()
    for _ in range(CALLS):
        r = client.invoke_endpoint(EndpointName="ab-mlp", Body=json.dumps({"inputs": [[0.5] * 512]}),
                                   ContentType="application/json")
        variant = r["InvokedProductionVariant"]
        assert answered_version(r.get("CustomAttributes")) == versions[variant]  # each container is its version
        assert len(json.loads(r["Body"].read())["outputs"]["probabilities"]) == 1
        seen[variant] += 1
    p = 0.25
    assert abs(seen["tuned"] / CALLS - p) <= 4 * math.sqrt(p * (1 - p) / CALLS), seen
    assert set(seen) == {"control", "tuned"}


def test_the_proxy_names_the_variant_and_version_that_answered(ab: tuple[LocalSageMaker, dict[str, str]]) -> None:
    from fastapi.testclient import TestClient

    from inferstack.api.app import create_app
    from inferstack.catalog import Catalog
    from inferstack.heavy.endpoint import EndpointPredictor

    sm, versions = ab
    (entry,) = CATALOGS[sm.endpoint_url].models
    client = boto3.client("sagemaker-runtime", endpoint_url=sm.endpoint_url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    app = create_app(Catalog(models=[entry]), {"mlp": EndpointPredictor(entry, "ab-mlp", client=client)})
    seen = set()
    with TestClient(app) as api:
        for _ in range(60):
            r = api.post("/v1/models/mlp/predict", json={"inputs": [[0.5] * 512]})
            assert r.status_code == 200
            variant, version = r.headers["x-model-variant"], r.headers["x-model-version"]
            assert versions[variant] == version == r.json()["version"]
            seen.add(variant)
    assert seen == {"control", "tuned"}  # 60 calls at 75/25 miss a variant once in ~30 million runs
