"""Projects made by `inferstack init` of earlier releases keep working after an upgrade.

tests/projects/schema<N>/ holds what `init` wrote at schema N (never edited afterwards). Each must still load
when N is the current schema, or, once the schema has moved on, be refused with what changed since N. When a
change to the manifest breaks the current snapshot, raise SCHEMA_VERSION, say what changed in CHANGES, and add
the new `init` output as tests/projects/schema<N+1>/.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inferstack.manifest import ManifestError, load_manifest
from inferstack.manifest_schema import CHANGES, SCHEMA_VERSION
from inferstack_infra.cli.cdk import cdk_json
from tests.conftest import ROOT

PROJECTS = sorted((ROOT / "tests" / "projects").glob("schema*"))


@pytest.mark.parametrize("project", PROJECTS, ids=[p.name for p in PROJECTS])
def test_every_earlier_init_project_loads_or_names_what_changed(project: Path) -> None:
    version = int(project.name.removeprefix("schema"))
    if version == SCHEMA_VERSION:
        manifest = load_manifest(project / "inferstack.toml", check_files=False)
        assert [m.name for m in manifest.models] == ["iris"]
    else:
        with pytest.raises(ManifestError) as info:
            load_manifest(project / "inferstack.toml", check_files=False)
        [(field, message)] = info.value.problems
        assert field == "schema" and all(CHANGES[v] in message for v in range(version + 1, SCHEMA_VERSION + 1))
    # the app command of its cdk.json still names this package's app
    assert json.loads((project / "cdk.json").read_text())["app"] == cdk_json()["app"]



def test_the_current_schema_has_its_snapshot() -> None:
    assert (ROOT / "tests" / "projects" / f"schema{SCHEMA_VERSION}" / "inferstack.toml").is_file(), (
        "a new schema needs the manifest `inferstack init` writes for it under tests/projects/")
