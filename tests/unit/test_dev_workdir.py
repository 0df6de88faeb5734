"""Each `inferstack dev` stack stages its files in a folder of its own, so stacks of one project never collide."""

from __future__ import annotations

from pathlib import Path

from inferstack.manifest import load_manifest
from inferstack_infra.local.stack import DevStack

ROOT = Path(__file__).resolve().parents[2]


def stack(port: int, workdir: Path | None = None) -> DevStack:
    manifest = load_manifest(ROOT / "inferstack.toml", check_files=False)
    return DevStack(manifest, api_keys={}, port=port, workdir=workdir)


def test_two_stacks_of_one_project_stage_their_catalogs_apart_and_remove_them_when_stopped() -> None:
    # GIVEN two stacks of the same project on two ports (two test files' stacks, or a user's second stack)
    first, second = stack(61001), stack(61002)
    # THEN each stages its catalog, heavy models and ports file in a folder of its own
    assert first.workdir != second.workdir
    assert first.ports_file.parent == first.workdir and first.workdir.name == "61001"
    # WHEN one stops, its folder goes and the other's stays
    first.workdir.mkdir(parents=True, exist_ok=True)
    second.workdir.mkdir(parents=True, exist_ok=True)
    (first.workdir / "catalog.json").write_text("{}")
    first.stop()
    assert not first.workdir.exists() and second.workdir.exists()
    second.stop()


def test_a_given_workdir_is_the_caller_s_and_is_kept(tmp_path: Path) -> None:
    given = stack(61003, workdir=tmp_path / "mine")
    given.workdir.mkdir()
    given.stop()
    assert given.workdir == tmp_path / "mine" and given.workdir.exists()
