"""The manifest's schema version: the current and an absent one are read, others refused with what to do."""

from __future__ import annotations

from typing import Any

import pytest

from inferstack import manifest_schema
from inferstack.manifest import ManifestError, parse_manifest
from tests.conftest import ROOT

MODEL = {"name": "iris", "path": "models/iris.onnx", "tier": "light"}


def problems(raw: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ManifestError) as info:
        parse_manifest(raw, root=ROOT, source="test.toml", check_files=False)
    return info.value.problems


def test_current_schema_and_a_manifest_without_one_are_read() -> None:
    # GIVEN a manifest of the current schema, and one written before manifests were versioned
    # WHEN each is parsed THEN both are read as the same deployment
    current = parse_manifest({"schema": manifest_schema.SCHEMA_VERSION, "name": "p", "models": [MODEL]},
                             root=ROOT, check_files=False)
    unversioned = parse_manifest({"name": "p", "models": [MODEL]}, root=ROOT, check_files=False)
    assert current == unversioned


def test_newer_schema_asks_for_an_upgrade() -> None:
    newer = manifest_schema.SCHEMA_VERSION + 1
    [(field, message)] = problems({"schema": newer, "name": "p", "models": [MODEL], "field_of_the_future": 1})
    assert field == "schema"
    assert f"schema {newer}" in message and "pip install -U inferstack" in message


@pytest.mark.parametrize("bad", [0, -3, "1", 1.5, True])
def test_unknown_or_malformed_schema_is_refused_naming_the_field(bad: object) -> None:
    [(field, message)] = problems({"schema": bad, "name": "p", "models": [MODEL]})
    assert field == "schema" and str(manifest_schema.SCHEMA_VERSION) in message


def test_older_schema_names_what_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a release that reads schema 3, whose schemas 2 and 3 changed the manifest
    monkeypatch.setattr(manifest_schema, "SCHEMA_VERSION", 3)
    monkeypatch.setattr(manifest_schema, "CHANGES", {2: "`jobs.ttl` is now `jobs.result_ttl_days`",
                                                     3: "`[[plans]]` moved under `[api]`"})
    # WHEN a schema 1 manifest is parsed THEN it is refused with both changes, and what number to set
    [(field, message)] = problems({"schema": 1, "name": "p", "models": [MODEL]})
    assert field == "schema"
    assert "jobs.result_ttl_days" in message and "moved under `[api]`" in message and "schema = 3" in message
    # AND a schema 2 manifest only with the change since
    [(_, message)] = problems({"schema": 2, "name": "p", "models": [MODEL]})
    assert "moved under `[api]`" in message and "jobs.result_ttl_days" not in message
