"""The price book: `prices.toml` read for one region, prices looked up by meter, tiered prices applied.

A meter is what AWS bills by (Lambda requests, arm64 GB-seconds, REST API calls ...): `METERS` names each one,
the table and key of its price in the file, and the quantity that price is quoted for.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRICES_FILE = Path(__file__).with_name("prices.toml")


class PriceError(ValueError):
    """The price file lacks a region or a price, or holds a malformed one."""


@dataclass(frozen=True)
class Meter:
    #: Display name of the AWS service that bills it (a column of the estimate).
    service: str
    #: The service's table in the region, and the price's key in it.
    table: str
    key: str
    #: How many units the price is quoted for (1,000,000 for a price per million requests).
    per: float
    unit: str


METERS: dict[str, Meter] = {
    "lambda.requests": Meter("Lambda", "lambda", "requests_per_million", 1e6, "requests"),
    "lambda.gb_seconds": Meter("Lambda", "lambda", "arm_gb_second", 1, "GB-s"),
    "lambda.provisioned_gb_seconds": Meter("Lambda", "lambda", "arm_provisioned_gb_second", 1, "GB-s"),
    "lambda.provisioned_duration_gb_seconds": Meter("Lambda", "lambda", "arm_provisioned_duration_gb_second", 1,
                                                    "GB-s"),
    "lambda.snapstart_cache_gb_seconds": Meter("Lambda", "lambda", "snapstart_cache_gb_second", 1, "GB-s"),
    "lambda.snapstart_restore_gb": Meter("Lambda", "lambda", "snapstart_restore_gb", 1, "GB"),
    "apigw.requests": Meter("API Gateway", "api_gateway", "rest_requests_per_million", 1e6, "requests"),
    "sqs.requests": Meter("SQS", "sqs", "standard_requests_per_million", 1e6, "requests"),
    "dynamodb.writes": Meter("DynamoDB", "dynamodb", "write_request_units_per_million", 1e6, "WRU"),
    "dynamodb.reads": Meter("DynamoDB", "dynamodb", "read_request_units_per_million", 1e6, "RRU"),
    "dynamodb.storage": Meter("DynamoDB", "dynamodb", "storage_gb_month", 1, "GB-month"),
    "s3.storage": Meter("S3", "s3", "storage_gb_month", 1, "GB-month"),
    "s3.puts": Meter("S3", "s3", "put_requests_per_thousand", 1e3, "requests"),
    "s3.gets": Meter("S3", "s3", "get_requests_per_thousand", 1e3, "requests"),
    "secrets.secrets": Meter("Secrets Manager", "secrets_manager", "secret_month", 1, "secret-months"),
    "secrets.api_calls": Meter("Secrets Manager", "secrets_manager", "api_calls_per_10k", 1e4, "calls"),
    "cloudwatch.logs_ingested": Meter("CloudWatch", "cloudwatch", "logs_ingested_gb", 1, "GB"),
    "cloudwatch.logs_stored": Meter("CloudWatch", "cloudwatch", "logs_stored_gb_month", 1, "GB-month"),
    "cloudwatch.metrics": Meter("CloudWatch", "cloudwatch", "metric_month", 1, "metric-months"),
    "cloudwatch.alarms": Meter("CloudWatch", "cloudwatch", "alarm_month", 1, "alarm-months"),
    "cloudwatch.high_resolution_alarms": Meter("CloudWatch", "cloudwatch", "high_resolution_alarm_month", 1,
                                               "alarm-months"),
    "cloudwatch.dashboards": Meter("CloudWatch", "cloudwatch", "dashboard_month", 1, "dashboard-months"),
    "xray.traces": Meter("X-Ray", "xray", "traces_recorded_per_million", 1e6, "traces"),
    "transfer.out": Meter("Data transfer", "data_transfer", "out_to_internet_gb", 1, "GB"),
    "sagemaker.data_in": Meter("SageMaker", "sagemaker", "data_processed_in_gb", 1, "GB"),
    "sagemaker.data_out": Meter("SageMaker", "sagemaker", "data_processed_out_gb", 1, "GB"),
    "sagemaker.instance_hours": Meter("SageMaker", "sagemaker", "instance_hour", 1, "instance-hours"),
}
#: The services in the order the estimate lists them.
SERVICES = tuple(dict.fromkeys(m.service for m in METERS.values()))

Tiers = tuple[tuple[float, float], ...]


def tiered(quantity: float, tiers: Tiers) -> float:
    """The cost of `quantity` units under tiered prices ((upper bound, price per unit), ...), bounds cumulative."""
    cost, below = 0.0, 0.0
    for upper, price in tiers:
        if quantity <= below:
            break
        cost += (min(quantity, upper) - below) * price
        below = upper
    return cost


@dataclass(frozen=True)
class PriceBook:
    region: str
    as_of: str
    hours_per_month: float
    tables: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, region: str = "us-east-1", path: Path = PRICES_FILE) -> PriceBook:
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise PriceError(f"cannot read the price file {path}: {exc}") from None
        regions: dict[str, Any] = data.get("regions", {})
        if region not in regions:
            raise PriceError(f"{path.name} (prices as of {data.get('as_of')}) has no prices for region {region!r}; "
                             f"it has {', '.join(sorted(regions))}: pass one of those, or add the region's prices")
        tables = {k: v for k, v in regions[region].items() if isinstance(v, dict)}
        return cls(region, str(data["as_of"]), float(data["hours_per_month"]), tables)

    def source(self, table: str) -> str:
        return str(self.tables.get(table, {}).get("source", ""))

    def unit_price(self, meter_id: str, variant: str | None = None) -> float | Tiers:
        """The price of one unit of the meter: a number, or tiers of (upper bound, price per unit)."""
        meter = METERS[meter_id]
        raw = self.tables.get(meter.table, {}).get(meter.key)
        if variant is not None:
            raw = raw.get(variant) if isinstance(raw, dict) else None
        where = f"[regions.{self.region}.{meter.table}] {meter.key}" + (f" {variant!r}" if variant else "")
        if raw is None:
            raise PriceError(f"no price for {where} in {PRICES_FILE.name} (prices as of {self.as_of}): add it")
        if isinstance(raw, int | float):
            return float(raw) / meter.per
        if isinstance(raw, list) and raw and all(isinstance(t, list) and len(t) == 2 for t in raw):
            tiers = tuple((float(upper), float(price) / meter.per) for upper, price in raw)
            if tiers[-1][0] != math.inf:
                raise PriceError(f"{where}: the last tier must end at inf")
            return tiers
        raise PriceError(f"{where}: expected a number or [[upper bound, price], ...], got {raw!r}")

    def cost(self, meter_id: str, quantity: float, variant: str | None = None) -> float:
        price = self.unit_price(meter_id, variant)
        return tiered(quantity, price) if isinstance(price, tuple) else quantity * price

    def instance_types(self) -> list[str]:
        return sorted(self.tables.get("sagemaker", {}).get("instance_hour", {}))
