"""A price book with round prices for hand-computed tests (one region, "test"), and small manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inferstack.manifest import Manifest, parse_manifest
from inferstack_infra.cost.prices import PriceBook
from tests.conftest import ROOT

#: The prices every hand-computed figure in these tests uses.
TEST_PRICES = """
as_of = "2000-01-01"
currency = "USD"
hours_per_month = 730

[regions.test.lambda]
source = "test"
requests_per_million = 0.20
arm_gb_second = [[1e9, 0.00001], [inf, 0.000005]]
arm_provisioned_gb_second = 0.000004
arm_provisioned_duration_gb_second = 0.000008
snapstart_cache_gb_second = 0.000002
snapstart_restore_gb = 0.0001

[regions.test.api_gateway]
rest_requests_per_million = [[100e6, 3.50], [inf, 3.00]]

[regions.test.sqs]
standard_requests_per_million = 0.40

[regions.test.dynamodb]
write_request_units_per_million = 1.00
read_request_units_per_million = 0.25
storage_gb_month = 0.25

[regions.test.s3]
storage_gb_month = 0.02
put_requests_per_thousand = 0.005
get_requests_per_thousand = 0.0004

[regions.test.secrets_manager]
secret_month = 0.40
api_calls_per_10k = 0.05

[regions.test.cloudwatch]
logs_ingested_gb = 0.50
logs_stored_gb_month = 0.03
metric_month = 0.30
alarm_month = 0.10
high_resolution_alarm_month = 0.30
dashboard_month = 3.00

[regions.test.xray]
traces_recorded_per_million = 5.00

[regions.test.data_transfer]
out_to_internet_gb = [[10240, 0.09], [inf, 0.05]]

[regions.test.sagemaker]
data_processed_in_gb = 0.02
data_processed_out_gb = 0.02

[regions.test.sagemaker.instance_hour]
"ml.g4dn.xlarge" = 0.50
"ml.g5.xlarge" = 1.00
"""


@pytest.fixture(scope="session")
def book(tmp_path_factory: pytest.TempPathFactory) -> PriceBook:
    path = tmp_path_factory.mktemp("prices") / "prices.toml"
    path.write_text(TEST_PRICES)
    return PriceBook.load("test", path)


def manifest(*models: dict[str, Any]) -> Manifest:
    return parse_manifest({"name": "costs", "models": list(models)}, root=ROOT, check_files=False)


def light(name: str = "m", **settings: Any) -> dict[str, Any]:
    return {"name": name, "path": "models/iris.onnx", "tier": "light", **settings}


def heavy(name: str = "h", **settings: Any) -> dict[str, Any]:
    return {"name": name, "path": "models/mlp.onnx", "tier": "heavy", "instance_type": "ml.g5.xlarge", **settings}


__all__ = ["TEST_PRICES", "Path", "book", "heavy", "light", "manifest"]
