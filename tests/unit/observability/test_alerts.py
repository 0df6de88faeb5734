"""`[alerts]` in the manifest: the README's example, and bad entries named by field."""

from __future__ import annotations

import re
import tomllib

import pytest

from inferstack.manifest import ManifestError, parse_manifest
from tests.conftest import ROOT

MODELS = [{"name": "m", "path": "x.onnx", "tier": "light"}]


def test_the_readme_example_parses() -> None:
    readme = (ROOT / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```toml\n(.*?)```", readme, re.S) if b.startswith("[alerts]")]
    manifest = parse_manifest({**tomllib.loads(block), "models": MODELS}, root=ROOT, check_files=False)
    assert manifest.alerts.emails == ["oncall@example.com"]
    assert manifest.alerts.https == ["https://events.example.com/alarms"]
    assert parse_manifest({"models": MODELS}, root=ROOT, check_files=False).alerts.emails == []


@pytest.mark.parametrize(("alerts", "field", "says"), [
    ({"emails": ["not-an-address"]}, "alerts.emails[0]", "is not an email address"),
    ({"https": ["http://plain.example.com/hook"]}, "alerts.https[0]", "needs an https:// URL"),
    ({"sms": ["+15550100"]}, "alerts.sms", "unknown key"),
])
def test_bad_alerts_are_named(alerts: dict[str, list[str]], field: str, says: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest({"alerts": alerts, "models": MODELS}, root=ROOT, check_files=False)
    assert any(where == field and says in what for where, what in caught.value.problems), caught.value.problems
