"""The estimate's arithmetic on hand-computed cases, priced with the round prices of `conftest.TEST_PRICES`:
Lambda $0.20 per million requests, $0.00001 per GB-s (arm64, first 1e9 GB-s), provisioned concurrency
$0.000004 per GB-s and $0.000008 per GB-s of its invocations; API Gateway $3.50 per million (first 100 million,
then $3.00); SQS $0.40 per million; CloudWatch logs $0.50 per GB, alarms $0.10 a month; X-Ray $5 per million
traces; transfer out $0.09 per GB; SageMaker ml.g5.xlarge $1.00 an hour. A month is 730 hours."""

from __future__ import annotations

import math

import pytest

from inferstack_infra.cost.estimate import estimate, model_lines, price, warnings
from inferstack_infra.cost.prices import PriceBook, PriceError, tiered
from inferstack_infra.cost.profile import Measured, Traffic, TrafficProfile, build_profile
from inferstack_infra.cost.usage import SCALE_IN_TAIL_S, WAKE_BILLED_S, WAKE_S, Line, endpoint_load
from tests.unit.cost.conftest import Path, heavy, light, manifest

MONTH_S = 730 * 3600
DAYS = 730 / 24
FAST = Measured(warm_s=0.010, init_s=1.0, source="test")


def service_costs(book: PriceBook, lines: list[Line]) -> dict[str, float]:
    out: dict[str, float] = {}
    for p in price(book, lines):
        out[p.service] = out.get(p.service, 0.0) + p.cost
    return out


def test_tiered_prices_apply_to_the_months_total(book: PriceBook) -> None:
    # 150 million REST calls: 100 million at $3.50 per million, 50 million at $3.00 = $350 + $150
    assert book.cost("apigw.requests", 150e6) == pytest.approx(500.0)
    assert tiered(5, ((2, 1.0), (math.inf, 0.5))) == pytest.approx(2 + 1.5)
    # split between two models, each line gets its share of the total's cost (not its own first tier)
    m = manifest(light("a"), light("b"))
    lines = [line for name in ("a", "b") for line in model_lines(m, m.model(name), Traffic(rps=0), FAST)]
    assert lines == []  # no traffic, no usage
    priced = price(book, [Line("a", "apigw.requests", 100e6), Line("b", "apigw.requests", 50e6)])
    assert [round(p.cost, 2) for p in priced] == [333.33, 166.67]


def test_light_model_on_demand_hand_computed(book: PriceBook) -> None:
    # GIVEN a 2048 MB function (over one vCPU: the measured 10 ms holds), 10 req/s around the clock
    m = manifest(light("m", memory_mb=2048))
    requests = 10 * MONTH_S  # 26,280,000
    lines = model_lines(m, m.model("m"), Traffic(rps=10), FAST)
    costs = service_costs(book, lines)
    # Lambda: requests 26.28M x $0.20/M = $5.256; duration 26.28M x 0.010 s x 2 GB = 525,600 GB-s = $5.256;
    # cold starts: busy all day, one environment recycled every 2 h = 12 a day x 30.42 days = 365,
    # each billing its 1.0 s init x 2 GB = 730 GB-s = $0.0073
    assert costs["Lambda"] == pytest.approx(5.256 + 5.256 + 0.0073, abs=1e-3)
    # API Gateway: 26.28M x $3.50/M
    assert costs["API Gateway"] == pytest.approx(91.98)
    # CloudWatch logs: (350 + 550) bytes a request ingested, $0.50/GB; stored: function logs one month and
    # access logs three, $0.03 per GB-month
    ingested = requests * 900 / 1024**3
    stored = requests * 350 / 1024**3 + requests * 550 / 1024**3 * 3
    assert costs["CloudWatch"] == pytest.approx(ingested * 0.5 + stored * 0.03)
    # X-Ray: the first request each second and 5% of the other 9: 1.45 traces/s x 2,628,000 s x $5/M
    assert costs["X-Ray"] == pytest.approx(1.45 * MONTH_S * 5 / 1e6)
    # transfer out: 26.28M answers of 1 KB at $0.09/GB
    assert costs["Data transfer"] == pytest.approx(requests / 1024**2 * 0.09)
    assert "SageMaker" not in costs and "SQS" not in costs  # no jobs, no endpoint


def test_less_memory_than_a_vcpu_runs_the_measured_time_slower(book: PriceBook) -> None:
    # 884.5 MB is half of Lambda's 1,769 MB vCPU: 10 ms become 20 ms, on half the memory: GB-s are equal
    half = manifest(light("m", memory_mb=884))
    lines = [ln for ln in model_lines(half, half.model("m"), Traffic(rps=1), FAST) if ln.note == "predict duration"]
    assert lines[0].quantity == pytest.approx(MONTH_S * 0.021 * 884 / 1024)  # 20.01 ms, billed as 21 ms


def test_provisioned_concurrency_hand_computed(book: PriceBook) -> None:
    # GIVEN provisioned concurrency 2..10 at 50% target, 2 GB, 100 ms a request, 10 req/s for 12 hours a day
    pc = {"mode": "provisioned", "min": 2, "max": 10, "target_utilization": 0.5}
    m = manifest(light("m", memory_mb=2048, cold_start=pc))
    slow = Measured(warm_s=0.1, init_s=1.0, source="test")
    lines = model_lines(m, m.model("m"), Traffic(rps=10, hours_per_day=12), slow)
    by_meter = {ln.meter: ln.quantity for ln in lines}
    # concurrency 10 x 0.1 = 1, at 50% -> 2 environments while active, min 2 while idle: 2 all month,
    # 730 h x 3600 s x 2 x 2 GB = 10,512,000 GB-s
    assert by_meter["lambda.provisioned_gb_seconds"] == pytest.approx(10_512_000)
    assert book.cost("lambda.provisioned_gb_seconds", 10_512_000) == pytest.approx(42.048)
    # invocations: 10/s x 12 h x 3600 x 30.42 days = 13,140,000 x 0.1 s x 2 GB = 2,628,000 GB-s, plus the
    # environments re-initialised every 2 h: 1,460 env-hours / 2 = 730 inits x 1 s x 2 GB = 1,460 GB-s
    assert by_meter["lambda.provisioned_duration_gb_seconds"] == pytest.approx(2_628_000 + 1_460)
    assert "lambda.snapstart_cache_gb_seconds" not in by_meter


def test_snapstart_pays_a_cache_and_restores_instead_of_inits(book: PriceBook) -> None:
    m = manifest(light("m", memory_mb=1024, cold_start={"mode": "snapstart"}))
    lines = model_lines(m, m.model("m"), Traffic(rps=1), FAST)
    by_meter = {ln.meter: ln.quantity for ln in lines}
    # the snapshot cached all month: 1 GB x 2,628,000 s x $0.000002 = $5.256
    assert book.cost("lambda.snapstart_cache_gb_seconds",
                     by_meter["lambda.snapstart_cache_gb_seconds"]) == pytest.approx(5.256)
    assert by_meter["lambda.snapstart_restore_gb"] > 0
    assert not [ln for ln in lines if "init" in ln.note]  # no init billed: restores are


def test_heavy_model_always_on_hand_computed(book: PriceBook) -> None:
    # GIVEN 10 req/s per instance (600 a minute), min 1 max 4, 25 req/s for 8 hours a day
    m = manifest(heavy("h", instances={"min": 1, "max": 4, "target_invocations_per_instance": 600}))
    traffic = Traffic(rps=25, hours_per_day=8)
    load = endpoint_load(m.model("h"), traffic)
    # 3 instances for 8 h, 1 for 16 h: 40 instance-hours a day x 30.42 days = 1,216.67 h at $1.00
    assert load.instances == 3 and not load.over_capacity
    assert load.instance_hours == pytest.approx(40 * DAYS)
    costs = service_costs(book, model_lines(m, m.model("h"), traffic, FAST))
    data_gb = traffic.requests / 1024**2  # 1 KB in and 1 KB out each, $0.02/GB each way
    assert costs["SageMaker"] == pytest.approx(40 * DAYS + 2 * data_gb * 0.02)


def test_heavy_model_scaled_to_zero_idle_most_of_the_day(book: PriceBook) -> None:
    # GIVEN a call every 100 s (0.01/s) for 2 hours a day, scaled to zero the rest
    m = manifest(heavy("h", instances={"min": 0, "max": 2, "target_invocations_per_instance": 600}))
    traffic = Traffic(rps=0.01, hours_per_day=2)
    load = endpoint_load(m.model("h"), traffic)
    # up while calls come: gaps never reach the 23 min scale-in tail within the window (e^-13.8 ~ 1e-6), so one
    # wake a day (the first call), up for the window, then the tail, plus the wake's billed 4 minutes
    up = 1 - math.exp(-0.01 * SCALE_IN_TAIL_S)
    wakes = 0.01 * 7200 * math.exp(-0.01 * SCALE_IN_TAIL_S) + 1
    seconds = 7200 * up + SCALE_IN_TAIL_S * up + wakes * WAKE_BILLED_S
    assert load.instance_hours == pytest.approx(DAYS * seconds / 3600)
    assert load.instance_hours == pytest.approx(DAYS * (7200 + 1380 + 240) / 3600, rel=1e-4)  # ~74.5 h, $74.52
    # the calls that find it at zero: the first, and those in the 5 minutes it takes to come up (3)
    assert load.wakes == pytest.approx(DAYS * wakes)
    assert load.refused == pytest.approx(DAYS * wakes * (1 + 0.01 * WAKE_S))
    # always on, the same traffic costs a whole month of one instance
    always = manifest(heavy("h", instances={"min": 1, "max": 2, "target_invocations_per_instance": 600}))
    assert endpoint_load(always.model("h"), traffic).instance_hours == pytest.approx(730)


def test_jobs_write_and_queue_per_job(book: PriceBook) -> None:
    # GIVEN every request as a job, 1 req/s, 1 KB payloads
    m = manifest(light("m", memory_mb=2048))
    lines = model_lines(m, m.model("m"), Traffic(rps=1, jobs_share=1.0), FAST)
    by_meter: dict[str, float] = {}
    for ln in lines:
        by_meter[ln.meter] = by_meter.get(ln.meter, 0.0) + ln.quantity
    jobs = MONTH_S
    # DynamoDB: create 1, conditional claim 1 (the item before its result), finish and webhook record 2 each
    # (a 1.5 KB item): 6 WRU a job
    assert by_meter["dynamodb.writes"] == pytest.approx(6 * jobs)
    # API Gateway: the submission and one result read
    assert by_meter["apigw.requests"] == pytest.approx(2 * jobs)
    assert "s3.puts" not in by_meter  # 1 KB inputs and results stay inline


def test_estimate_totals_add_up_and_name_the_shared_costs(book: PriceBook) -> None:
    m = manifest(light("a", memory_mb=2048), heavy("h"))
    result = estimate(m, build_profile(["a", "h"], rps=["2", "h=0.5"]), {"a": FAST, "h": FAST}, book)
    rows = result.by_owner()
    assert set(rows) == {"a", "h", "(shared)"}
    assert sum(sum(r.values()) for r in rows.values()) == pytest.approx(result.total)
    # shared: the signing secret $0.40, the API's and the shared functions' and queues' alarms, the webhook
    # queue's event source polls
    assert rows["(shared)"]["Secrets Manager"] == pytest.approx(0.40)
    body = result.to_json()
    assert body["models"]["h"]["traffic"]["rps"] == 0.5 and body["prices_as_of"] == "2000-01-01"
    assert body["total"] == pytest.approx(round(result.total, 2))
    assert "h" in result.table() and "total" in result.table().splitlines()[-1]


def test_warnings_name_traffic_beyond_the_settings(book: PriceBook) -> None:
    m = manifest(heavy("h", instances={"min": 1, "max": 2, "target_invocations_per_instance": 60}))
    found = warnings(m, TrafficProfile(Traffic(rps=5)), {"h": FAST})
    assert found == ["h: 5 req/s needs 5 instances at 60 invocations a minute each, and instances.max is 2: "
                     "raise max (or the target)"]


def test_a_missing_region_or_price_is_a_clear_error(book: PriceBook, tmp_path: Path) -> None:
    with pytest.raises(PriceError, match=r"no prices for region 'mars-1'.*it has test"):
        PriceBook.load("mars-1", _file(tmp_path))
    with pytest.raises(PriceError, match=r"no price for \[regions.test.sagemaker\] instance_hour 'ml.p5.48xlarge'"):
        book.cost("sagemaker.instance_hours", 1, "ml.p5.48xlarge")


def _file(tmp_path: Path) -> Path:
    from tests.unit.cost.conftest import TEST_PRICES

    path = tmp_path / "prices.toml"
    path.write_text(TEST_PRICES)
    return path


def test_the_repositorys_price_file_is_dated_sourced_and_complete() -> None:
    # every meter has a price in every region of the shipped file, every service names its source
    from inferstack_infra.cost.prices import METERS, PRICES_FILE

    shipped = PriceBook.load("us-east-1", PRICES_FILE)
    assert shipped.as_of.startswith("20")
    for meter in METERS:
        if meter != "sagemaker.instance_hours":
            shipped.unit_price(meter)
    assert all(shipped.source(t).startswith("https://aws.amazon.com/") for t in shipped.tables)
    assert "ml.g5.xlarge" in shipped.instance_types()
