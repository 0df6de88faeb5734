"""`inferstack cost` and `inferstack advise` as a user runs them: on a manifest, with measured durations."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inferstack.manifest import load_manifest
from inferstack_infra.catalog import build_catalog
from inferstack_infra.cli import main
from inferstack_infra.cost import measure
from tests.conftest import EXAMPLE_MANIFEST


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Measurements cached in a fresh place, and no bench results unless a test writes them."""
    monkeypatch.setattr(measure, "CACHE", tmp_path / "measurements.json")
    monkeypatch.setattr(measure, "BENCH_RESULTS", tmp_path / "results.json")
    yield tmp_path


@pytest.fixture
def iris_only(tmp_path: Path, iris_model: Path) -> Path:
    path = tmp_path / "inferstack.toml"
    path.write_text(f'name = "c"\n[[models]]\nname = "iris"\npath = "{iris_model}"\ntier = "light"\n'
                    'cold_start = { mode = "provisioned", min = 1, max = 4 }\n')
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


def test_cost_measures_once_then_reuses_the_measurement(isolated: Path, iris_only: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN cost runs on a model never measured THEN it measures it and says so, then prices the month
    code, out, err = run(capsys, "cost", "--manifest", str(iris_only), "--rps", "3", "--json")
    assert code == 0 and "measuring iris" in err
    body: dict[str, Any] = json.loads(out)
    iris = body["models"]["iris"]
    assert iris["traffic"]["rps"] == 3 and iris["measured"]["source"] == "measured on this machine"
    assert 0 < iris["measured"]["warm_s"] < 1 and iris["measured"]["init_s"] > 0
    assert iris["services"]["API Gateway"] == pytest.approx(3 * 730 * 3600 * 3.5 / 1e6, rel=1e-3)
    assert body["total"] == pytest.approx(sum(m["total"] for m in body["models"].values()), abs=0.05)
    assert body["price_sources"]["lambda"].startswith("https://aws.amazon.com/lambda/pricing/")
    # WHEN it runs again THEN the cached figures serve (same model version)
    code, out, err = run(capsys, "cost", "--manifest", str(iris_only), "--rps", "iris=3")
    assert code == 0 and "measuring" not in err
    assert "cached" in out and out.splitlines()[3].startswith("USD/month") and "total" in out.splitlines()[-3]


def test_bench_results_of_the_current_version_are_used(isolated: Path, iris_only: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    version = build_catalog(load_manifest(iris_only)).models[0].version
    (isolated / "results.json").write_text(json.dumps([
        {"figure": f"{measure.BENCH_FIGURE}, iris (ms)", "value": 2.0, "baselines": {}, "targets": {},
         "model": "iris", "version": version, "init_s": 0.3}]))
    code, out, err = run(capsys, "cost", "--manifest", str(iris_only), "--json")
    assert code == 0 and "measuring" not in err
    assert json.loads(out)["models"]["iris"]["measured"] == {"warm_s": 0.002, "init_s": 0.3,
                                                             "source": "results.json"}


def test_bad_traffic_is_refused_naming_the_option(isolated: Path, iris_only: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "cost", "--manifest", str(iris_only), "--rps", "resnet=3")
    assert code == 2 and "--rps 'resnet=3': no model 'resnet' in the manifest (it has iris)" in err
    code, _, err = run(capsys, "cost", "--manifest", str(iris_only), "--hours", "30")
    assert code == 2 and "hours_per_day 30 must be above 0 and at most 24" in err
    code, _, err = run(capsys, "cost", "--manifest", str(iris_only), "--region", "mars-1")
    assert code == 2 and "no prices for region 'mars-1'" in err


def test_advise_on_the_example_manifest(isolated: Path, capsys: pytest.CaptureFixture[str],
                                        minilm_model: Path) -> None:
    code, out, _ = run(capsys, "advise", "--manifest", str(EXAMPLE_MANIFEST), "--rps", "2", "--budget-ms", "500",
                       "--duration-ms", "iris=0.1", "--duration-ms", "minilm=20", "--json")
    assert code == 0
    body = json.loads(out)
    advice = {a["model"]: a for a in body["models"]}
    assert set(advice) == {"iris", "minilm"}
    for a in advice.values():
        assert a["budget_ms"] == 500 and a["verdict"]["meets_budget"]
        costs = [o["usd_per_month"] for o in a["options"] if o["meets_budget"]]
        assert a["verdict"]["usd_per_month"] == min(costs)
        assert a["break_even"]
    # minilm fits Lambda (176 MB of 250), so light options are offered beside the GPUs
    assert {o["tier"] for o in advice["minilm"]["options"]} == {"light", "jobs", "heavy"}
    code, out, _ = run(capsys, "advise", "--manifest", str(EXAMPLE_MANIFEST), "--rps", "2",
                       "--duration-ms", "iris=0.1", "--duration-ms", "minilm=20")
    assert code == 0 and "verdict:" in out and "break-even:" in out
