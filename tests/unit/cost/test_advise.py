"""The advisor's choices on crafted profiles, priced with `conftest.TEST_PRICES` (among them: Lambda $0.00001
per GB-s, provisioned concurrency $0.000004 per GB-s, SnapStart's cache $0.000002 per GB-s, REST calls $3.50
per million, ml.g4dn.xlarge $0.50 and ml.g5.xlarge $1.00 an hour)."""

from __future__ import annotations

import math

import pytest

from inferstack_infra.cost.advise import Advisor, Facts, break_even
from inferstack_infra.cost.prices import PriceBook
from inferstack_infra.cost.profile import Measured, Traffic
from tests.unit.cost.conftest import heavy, light, manifest

#: A small model: 10 ms a request on one vCPU, 2 s to load (its cold start is 3.6 s on a 1 GB function).
SMALL = Facts(Measured(warm_s=0.010, init_s=2.0, source="test"), fits_lambda=True, model_mb=5)
#: A slow model that still fits Lambda: 200 ms a request.
SLOW = Facts(Measured(warm_s=0.200, init_s=4.0, source="test"), fits_lambda=True, model_mb=400)
#: A large model that does not fit Lambda's 250 MB.
LARGE = Facts(Measured(warm_s=0.050, init_s=20.0, source="test"), fits_lambda=False, model_mb=2_000)


def test_idle_most_of_the_day_a_small_model_takes_snapstart(book: PriceBook) -> None:
    # GIVEN a call every 200 s for 4 hours a day and a 1 s budget
    m = manifest(light("small", memory_mb=1024))
    advice = Advisor(book, m).advise(m.model("small"), Traffic(rps=0.005, hours_per_day=4), SMALL, 1000)
    by_kind = {a.option.kind: a for a in advice.assessments}
    # THEN on demand fails: gaps over 10 minutes make ~9% of calls cold, and a cold start takes 3.6 s
    assert not by_kind["light"].meets and "of requests meet a cold start (3," in by_kind["light"].reason
    # AND SnapStart restores in ~0.6 s, for a snapshot cache of 1 GB x 730 h x $0.000002 = $5.26 a month, under
    # provisioned concurrency's 1 GB x 730 h x $0.000004 = $10.51
    verdict = advice.verdict
    assert verdict is not None and verdict.option.kind == "snapstart"
    assert verdict.p99_s is not None and verdict.p99_s < 1.0
    assert by_kind["provisioned"].meets and by_kind["provisioned"].cost > verdict.cost
    # AND a GPU kept for it would cost hundreds; scaled to zero, its wakes fail the budget
    assert by_kind["heavy-zero"].meets is False and "wakes a month" in by_kind["heavy-zero"].reason
    assert min(a.cost for a in advice.assessments if a.option.kind == "heavy") > 300


def test_idle_most_of_the_day_a_large_model_scales_to_zero(book: PriceBook) -> None:
    # GIVEN a model too large for Lambda, called for an hour a day by callers that wait out a wake (budget 10 min)
    m = manifest(heavy("large", instances={"min": 1, "max": 2, "target_invocations_per_instance": 600}))
    advice = Advisor(book, m).advise(m.model("large"), Traffic(rps=0.2, hours_per_day=1), LARGE, 600_000)
    verdict = advice.verdict
    # THEN no light option is offered, and the cheapest heavy option is the smallest GPU scaled to zero: about
    # 1 h + 23 min tail + 4 min wake a day x 30.42 days x $0.50 = $22 of instance time, not 730 h x $0.50
    assert {a.option.tier for a in advice.assessments} == {"heavy"}
    assert verdict is not None and verdict.option.kind == "heavy-zero"
    assert verdict.option.instance_type == "ml.g4dn.xlarge"
    always = next(a for a in advice.assessments if a.option.kind == "heavy"
                  and a.option.instance_type == "ml.g4dn.xlarge")
    assert verdict.cost < always.cost / 5


def test_steady_low_traffic_stays_on_demand(book: PriceBook) -> None:
    # GIVEN 2 req/s around the clock and a 100 ms budget
    m = manifest(light("small", memory_mb=1024))
    advice = Advisor(book, m).advise(m.model("small"), Traffic(rps=2), SMALL, 100)
    verdict = advice.verdict
    # THEN cold starts are rare (environments recycled a few times a day) and nothing standing is worth paying
    assert verdict is not None and verdict.option.kind == "light"
    assert verdict.p99_s is not None and verdict.p99_s < 0.1
    assert verdict.cost < next(a.cost for a in advice.assessments if a.option.kind == "provisioned")
    # AND the jobs tier cannot answer within 100 ms
    assert not next(a for a in advice.assessments if a.option.kind == "jobs").meets


def test_heavy_sustained_traffic_moves_a_slow_model_to_a_gpu(book: PriceBook) -> None:
    # GIVEN a slow model (200 ms a request on a vCPU) that a GPU instance serves at 100 req/s, 300 req/s all day
    m = manifest(heavy("slow", instances={"min": 1, "max": 4, "target_invocations_per_instance": 6000}))
    advice = Advisor(book, m).advise(m.model("slow"), Traffic(rps=300), SLOW, 1000)
    verdict = advice.verdict
    # THEN the GPU's instances cost less than the Lambda GB-seconds: 788M requests x 0.2 s x 1.73 GB on
    # Lambda, against 3 x ml.g4dn.xlarge x 730 h x $0.50 and a proxy that only waits
    assert verdict is not None and verdict.option.tier == "heavy"
    assert verdict.option.kind == "heavy" and verdict.option.instance_type == "ml.g4dn.xlarge"
    light_cost = min(a.cost for a in advice.assessments if a.option.tier == "light")
    assert verdict.cost < light_cost
    # AND the break-even with the light tier lies below today's traffic: light is the cheaper below it
    (line,) = [b for b in advice.break_evens if b.startswith("light")]
    rate = float(line.split(" cost the same at ")[1].split(" req/s")[0].replace(",", ""))
    assert 1 < rate < 300 and line.endswith(f"above it {verdict.option.label} is the cheaper")


def test_break_even_finds_the_crossing() -> None:
    # a standing $100 against $1 per req/s: they cross at 100 req/s
    rate = break_even(lambda r: 100.0, lambda r: r * 1.0)
    assert rate == pytest.approx(100, rel=1e-3)
    assert break_even(lambda r: 1.0, lambda r: 2.0) is None
    assert math.isfinite(rate or 0)


def test_advice_as_json_names_the_verdict_and_every_option(book: PriceBook) -> None:
    m = manifest(light("small", memory_mb=1024, latency_budget_ms=250))
    advice = Advisor(book, m).advise(m.model("small"), Traffic(rps=1), SMALL, m.model("small").latency_budget_ms)
    body = advice.to_json()
    assert body["budget_ms"] == 250 and body["verdict"]["option"] == advice.assessments[0].option.label
    assert len(body["options"]) == len(advice.assessments) == 4 + 2 * 2  # light x3, jobs, 2 GPU types x 2
    assert all(isinstance(o["usd_per_month"], float) and o["reason"] for o in body["options"])
