"""The local dashboard of `inferstack dev` in a real headless browser: the distribution's Chromium driven by
selenium (`make browser` installs chromium and chromium-driver). It loads without console errors, shows a panel
per model, and its numbers and plots move while `inferstack load` runs. The screenshot is kept as a test
artifact (build/test-artifacts/dashboard.png)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT
from tests.e2e.conftest import PRO_KEY, RunningStack, eventually

ARTIFACTS = ROOT / "build" / "test-artifacts"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver are missing: `make browser` installs them")
        pytest.skip("chromium and chromium-driver are not installed (`make browser`)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1500,2200", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def number(driver: Any, css: str) -> float:
    text = driver.find_element("css selector", css).text
    return float("nan") if text in ("", "\u2013") else float(text)  # a dash: no value yet


def plotted(driver: Any, canvas_parent: str) -> list[Any]:
    """The values a Chart.js plot holds now, every dataset's."""
    values: list[Any] = driver.execute_script(
        "const c = Chart.getChart(document.querySelector(arguments[0] + ' canvas'));"
        "return c ? c.data.datasets.flatMap((d) => d.data) : [];", canvas_parent)
    return values


def test_the_dashboard_shows_each_model_and_moves_under_load(dev_stack: RunningStack, browser: Any) -> None:
    # GIVEN the running stack's dashboard, open in Chromium
    browser.get(f"{dev_stack.url}/_local/dashboard")
    assert "inferstack dev dashboard" in browser.title
    # THEN a panel per model of the manifest, with its plots, even before any call
    sections = eventually(lambda: browser.find_elements("css selector", "section.model"), 30)
    assert sorted(s.get_attribute("data-model") for s in sections) == ["iris", "minilm"]
    assert browser.find_elements("css selector", "#panel-iris-latency canvas")
    assert browser.find_elements("css selector", "#panel-minilm-batches canvas")  # the heavy model's batches
    before = number(browser, "#total-requests")

    # WHEN `inferstack load` runs a short load on iris (and a few jobs)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    load = subprocess.Popen(
        [sys.executable, "-m", "inferstack_infra.cli", "load", "--url", dev_stack.url, "--api-key", PRO_KEY,
         "--model", "iris", "--rate", "40", "--duration", "8", "--jobs", "0.1", "--quiet",
         "--out", str(ARTIFACTS / "load.png")], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    with httpx.Client(base_url=dev_stack.url, headers={"x-api-key": PRO_KEY}, timeout=30) as client:
        for _ in range(6):  # the heavy model too, so that its container's batches show
            texts = ["the dashboard moves", "while load runs"]
            assert client.post("/v1/models/minilm/predict", json={"inputs": {"text": texts}}).status_code == 200
    # THEN while it runs the numbers move: requests counted, iris's request rate and p99 appear
    eventually(lambda: number(browser, "#total-requests") > before + 50, 40)
    eventually(lambda: number(browser, "#model-iris .rps") > 0, 20)
    eventually(lambda: number(browser, "#model-iris .p99") > 0, 20)
    # AND the plots hold the new points: iris's latency percentiles, the heavy model's batch sizes, jobs finishing
    eventually(lambda: any(v for v in plotted(browser, "#panel-iris-latency") if v), 20)
    eventually(lambda: any(v for v in plotted(browser, "#panel-minilm-batches") if v), 20)
    eventually(lambda: any(v for v in plotted(browser, "#panel-iris-jobs") if v), 40)
    time.sleep(1)
    browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
    output, _ = load.communicate(timeout=120)
    assert load.returncode == 0, output

    # AND the page logged no error to its console
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
