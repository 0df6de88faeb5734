"""`inferstack init` and the CDK wrappers, without Node or AWS (the wheel e2e test runs them for real)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from inferstack.manifest import load_manifest
from inferstack.manifest_schema import SCHEMA_VERSION
from inferstack_infra.cli import build_parser, cdk, main
from inferstack_infra.cli.project import FILES, project_name
from tests.conftest import ROOT


def init(*argv: str) -> None:
    with pytest.raises(SystemExit) as done:
        main(["init", *argv])
    assert done.value.code == 0


def test_init_writes_a_project_whose_manifest_is_valid(tmp_path: Path) -> None:
    # GIVEN an empty directory WHEN `inferstack init DIR` runs (model build skipped: a unit test)
    project = tmp_path / "My Project_1"
    init(str(project), "--no-model")
    # THEN every file is there, the manifest is of the current schema and valid but for the model not built
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()) == sorted(FILES)
    manifest = load_manifest(project / "inferstack.toml", check_files=False)
    assert manifest.name == "My-Project-1" and [m.name for m in manifest.models] == ["iris"]
    assert manifest.models[0].tier == "light"
    assert f"schema = {SCHEMA_VERSION}" in (project / "inferstack.toml").read_text()
    cdk_json = json.loads((project / "cdk.json").read_text())
    assert cdk_json["app"].endswith("python3 -m inferstack_infra.app") and cdk_json["context"] == cdk.CDK_CONTEXT
    assert "build/" in (project / ".gitignore").read_text() and "cdk.out/" in (project / ".gitignore").read_text()
    readme = (project / "README.md").read_text()
    assert all(f"inferstack {c}" in readme for c in ("dev", "synth", "deploy"))


def test_init_refuses_to_overwrite_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a directory that has its own inferstack.toml
    (tmp_path / "inferstack.toml").write_text("# mine\n")
    # WHEN init runs THEN it fails naming the file and writes nothing
    with pytest.raises(SystemExit) as done:
        main(["init", str(tmp_path), "--no-model"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "already has inferstack.toml" in err and "--force" in err
    assert (tmp_path / "inferstack.toml").read_text() == "# mine\n" and not (tmp_path / "cdk.json").exists()
    # AND with --force it writes the project
    init(str(tmp_path), "--no-model", "--force", "--name", "forced")
    assert load_manifest(tmp_path / "inferstack.toml", check_files=False).name == "forced"


@pytest.mark.parametrize(("directory", "expected"), [("shop", "shop"), ("2024 models", "inferstack-2024-models"),
                                                     ("__", "inferstack")])
def test_project_name_is_a_valid_stack_name(tmp_path: Path, directory: str, expected: str) -> None:
    assert project_name(tmp_path / directory) == expected


def test_without_the_model_tools_init_says_how_to_build_or_bring_a_model(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "skl2onnx" else real(name, *a))
    init(str(tmp_path))
    out = capsys.readouterr().out
    assert "skl2onnx not installed" in out and 'pip install "inferstack[models]"' in out and "ONNX" in out
    assert not (tmp_path / "models" / "iris.onnx").exists()


def test_cdk_command_runs_the_pinned_cli_with_this_interpreter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/opt/node/bin/{name}")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: type("Done", (), {"stdout": "v22.1.0\n"})())
    args = build_parser().parse_args(["deploy", "--manifest", str(tmp_path / "inferstack.toml"), "--region",
                                      "eu-west-1", "--stage", "dev", "--yes", "--", "--hotswap"])
    cmd = cdk.cdk_command(cdk._strip(args), "deploy")
    assert cmd[:3] == ["/opt/node/bin/npx", "--yes", f"aws-cdk@{cdk.CDK_CLI_VERSION}"] and cmd[3] == "deploy"
    assert cmd[cmd.index("--app") + 1] == f"{sys.executable} -m inferstack_infra.app"
    assert f"manifest={tmp_path / 'inferstack.toml'}" in cmd and "region=eu-west-1" in cmd and "stage=dev" in cmd
    assert cmd[-1] == "--hotswap" and "--" not in cmd and "never" in cmd


def test_without_node_the_error_names_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SystemExit) as done:
        cdk.npx()
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "Node.js 20 or later" in err and "https://nodejs.org" in err and cdk.CDK_CLI_VERSION in err


def test_old_node_is_refused(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: type("Done", (), {"stdout": "v16.20.0\n"})())
    with pytest.raises(SystemExit):
        cdk.npx()
    assert "v16.20.0 is too old" in capsys.readouterr().err


def test_deploy_summary_prints_the_url_and_how_to_read_each_key(tmp_path: Path) -> None:
    outputs = tmp_path / "out.json"
    outputs.write_text(json.dumps({"shop": {
        "RestUrlF695A68A": "https://abc.execute-api.eu-west-1.amazonaws.com/prod/",
        "RestApiEndpoint9E5FF2AC": "https://abc.execute-api.eu-west-1.amazonaws.com/prod/",
        "RestApiKeyDefaultDefaultKey9C7E87A7": "k1d2", "JobsWebhookSecretArnD610773B": "arn:..."}}))
    args = build_parser().parse_args(["deploy", "--region", "eu-west-1"])
    text = cdk.deployed_summary(outputs, "shop", args)
    assert "API:  https://abc.execute-api.eu-west-1.amazonaws.com/prod/v1" in text
    assert "aws apigateway get-api-key --api-key k1d2 --include-value --query value --output text --region " \
           "eu-west-1" in text


def test_this_repository_pins_the_same_cdk_cli_and_feature_flags_as_the_package() -> None:
    # The repository is a project that uses the package: its cdk.json and package.json agree with what
    # `inferstack init` writes and what `inferstack deploy` runs.
    assert json.loads((ROOT / "cdk.json").read_text())["context"] == cdk.CDK_CONTEXT
    assert json.loads((ROOT / "package.json").read_text())["devDependencies"]["aws-cdk"] == cdk.CDK_CLI_VERSION


def test_a_command_missing_an_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN `inferstack dev` on an installation without the [local] extra (its first import fails)
    from inferstack_infra.cli import dev

    def without_moto(args: object) -> int:
        raise ModuleNotFoundError("No module named 'moto'", name="moto.server")

    monkeypatch.setattr(dev, "cmd_dev", without_moto)
    # WHEN it runs THEN it says which extra to install, not a traceback
    with pytest.raises(SystemExit) as done:
        main(["dev", "--manifest", str(ROOT / "inferstack.toml")])
    assert done.value.code == 2
    assert 'needs moto.server, from inferstack\'s [local] extra: pip install "inferstack[local]"' in \
        capsys.readouterr().err


def test_synth_without_the_cdk_extra_says_so_before_starting_node(monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "aws_cdk" else real(name, *a))
    monkeypatch.setattr(shutil, "which", lambda name: pytest.fail("Node looked for"))
    with pytest.raises(SystemExit) as done:
        main(["synth", "--manifest", str(ROOT / "inferstack.toml")])
    assert done.value.code == 2 and 'aws_cdk: pip install "inferstack[cdk]"' in capsys.readouterr().err


def test_the_extras_named_in_errors_are_the_distributions() -> None:
    import tomllib

    from inferstack_infra.cli.extras import EXTRA_MODULES

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(EXTRA_MODULES) <= set(declared)


def test_a_bad_stage_is_refused_before_node_starts(tmp_path: Path, iris_model: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "inferstack.toml").write_text(f'name = "shop"\n[[models]]\nname = "iris"\npath = "{iris_model}"\n'
                                              'tier = "light"\n')
    monkeypatch.setattr(shutil, "which", lambda name: pytest.fail("Node looked for"))
    with pytest.raises(SystemExit) as done:
        main(["deploy", "--manifest", str(tmp_path / "inferstack.toml"), "--stage", "Prod"])
    assert done.value.code == 2 and "stage: 'Prod': expected 1-20 lowercase letters" in capsys.readouterr().err


def test_deploy_tools_report_what_synth_and_deploy_will_find(monkeypatch: pytest.MonkeyPatch) -> None:
    from inferstack.manifest import parse_manifest

    heavy = parse_manifest({"name": "p", "models": [{"name": "big", "path": "m.onnx", "tier": "heavy",
                                                     "instance_type": "ml.g5.xlarge"}]}, check_files=False)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: type("Done", (), {"stdout": "v22.3.0\n"})())
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "docker" else f"/usr/bin/{name}")
    report = cdk.deploy_tools(heavy)
    assert "node v22.3.0 and npx: ok" in report and "[cdk] extra): ok" in report
    assert "docker: MISSING" in report
    monkeypatch.setattr(shutil, "which", lambda name: None)
    report = cdk.deploy_tools(heavy)
    assert "node/npx: MISSING" in report and "Node.js 20 or later" in report
