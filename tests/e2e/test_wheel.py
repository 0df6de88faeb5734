"""A user's path, end to end, with nothing of this repository in reach: build the wheel, install it into a fresh
virtual environment in a temporary directory, `inferstack init` a project there, then `doctor`, `dev` (a
prediction, a job and its signed webhook) and `synth` (the template checked with CDK assertions, cfn-lint, and
cdk-nag, which fails the synthesis on any finding).

The slowest test of the suite: pip installs the wheel's dependencies (from pip's cache after the first run) and
the project's Lambda layers are built for it from scratch. Each step's duration is printed (`pytest -s`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from inferstack_infra.local.aws import free_port
from inferstack_infra.local.webhook_receiver import WebhookReceiver
from tests.conftest import ROOT
from tests.e2e.conftest import eventually

pytestmark = pytest.mark.e2e

#: Paths that must not reach the installed package: this checkout and the environment running the tests.
REPO_PATHS = sorted({str(ROOT), str(ROOT.resolve()), sys.prefix, str(Path(sys.prefix).resolve())}, key=len,
                    reverse=True)
EXTRAS = "local,cdk,models"
PACKAGES = ("inferstack", "inferstack_infra")


@dataclass
class Installed:
    venv: Path
    project: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 600, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        began = time.monotonic()
        done = subprocess.run([str(self.venv / "bin" / "inferstack"), *args], cwd=self.project, env=self.env,
                              input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
        print(f"inferstack {' '.join(args)}: {time.monotonic() - began:.1f} s", flush=True)
        return done


def clean_environment(venv: Path) -> dict[str, str]:
    """This environment without any variable that names the checkout or the test environment (PYTHONPATH,
    VIRTUAL_ENV, PATH entries...), the fresh venv's bin first on PATH."""
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and not p.startswith(tuple(REPO_PATHS))]
    env = {k: v for k, v in os.environ.items()
           if k not in ("PATH", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not any(r in v for r in REPO_PATHS)}
    return {**env, "PATH": os.pathsep.join([str(venv / "bin"), *path]), "PYTHONUNBUFFERED": "1"}


def step(what: str, cmd: list[str], **kwargs: object) -> None:
    began = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{what} failed:\n{done.stdout}\n{done.stderr}"
    print(f"{what}: {time.monotonic() - began:.1f} s", flush=True)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("user")
    assert not base.resolve().is_relative_to(ROOT.resolve())
    # the wheel, built from a copy of the sources setuptools reads (a build writes into its source directory)
    source = base / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = base / "dist"
    step("pip wheel", [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(source)])
    (wheel,) = dist.glob("inferstack-*.whl")
    # every file of the packages ships (package data by pattern: a new package's data file with a new kind of
    # name fails here, not in a user's deployment)
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if ".dist-info/" not in n}
    assert shipped == {str(f.relative_to(source)) for package in PACKAGES for f in (source / package).rglob("*")
                       if f.is_file()}
    venv = base / "venv"
    env = clean_environment(venv)
    step("venv", [sys.executable, "-m", "venv", str(venv)], env=env)
    step(f"pip install inferstack[{EXTRAS}]", [str(venv / "bin" / "pip"), "install", "--quiet", "--no-compile", "-c",
                                               str(ROOT / "constraints.txt"), f"{wheel}[{EXTRAS}]"], env=env, cwd=base)
    return Installed(venv, base / "shop", env)


@pytest.fixture(scope="module")
def project(installed: Installed) -> Installed:
    installed.project.mkdir()
    done = installed.run("init")
    assert done.returncode == 0, done.stderr
    assert (installed.project / "models" / "iris.onnx").is_file()  # built by init with scikit-learn + skl2onnx
    return installed


def test_the_installed_package_runs_without_the_checkout(installed: Installed) -> None:
    script = ("import json, sys, inferstack, inferstack_infra, inferstack_infra.paths as p; print(json.dumps("
              "{'path': sys.path, 'files': [inferstack.__file__, inferstack_infra.__file__, str(p.LAYERS_DIR), "
              "str(p.CONTAINER_DIR)]}))")
    done = subprocess.run([str(installed.venv / "bin" / "python"), "-c", script], env=installed.env,
                          cwd=installed.venv, capture_output=True, text=True, check=True)
    found = json.loads(done.stdout)
    assert not [p for p in found["path"] if p.startswith(tuple(REPO_PATHS))]
    site = installed.venv.resolve()
    assert all(Path(f).resolve().is_relative_to(site) for f in found["files"]), found["files"]
    assert (Path(found["files"][2]) / "base.txt").is_file() and (Path(found["files"][3]) / "Dockerfile").is_file()
    assert not [k for k, v in installed.env.items() if any(r in v for r in REPO_PATHS)]


def test_init_then_doctor(project: Installed) -> None:
    again = project.run("init")  # refuses to overwrite
    assert again.returncode == 2 and "--force" in again.stderr
    done = project.run("doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "inferstack.toml: ok (1 model(s), 1 usage plan(s))" in done.stdout
    assert "MB to spare" in done.stdout and "TOO LARGE" not in done.stdout  # every function sized, all fit
    assert "CDK app ([cdk] extra): ok" in done.stdout  # and what synth/deploy will find here
    # built in the project, never in the installed package
    assert (project.project / "build" / "layers").is_dir()
    # the heavy tier's image context, staged from the installed package (what `cdk deploy` hands to Docker)
    staged = subprocess.run([str(project.venv / "bin" / "python"), "-c", "from inferstack_infra.packaging import "
                             "stage_container; print(stage_container())"], cwd=project.project, env=project.env,
                            capture_output=True, text=True, check=True)
    context = Path(staged.stdout.strip())
    assert context.is_relative_to(project.project / "build" / "container")
    assert sorted(p.name for p in context.iterdir()) == ["Dockerfile", "inferstack", "requirements.txt", "serve"]
    assert (context / "inferstack" / "heavy" / "server.py").is_file()
    assert not list((project.venv / "lib").rglob("build/layers"))


@pytest.fixture(scope="module")
def dev(project: Installed) -> Iterator[tuple[str, str]]:
    port = free_port()
    log = project.project / "dev.log"
    proc = subprocess.Popen([str(project.venv / "bin" / "inferstack"), "dev", "--port", str(port),
                             "--allow-loopback-webhooks"], cwd=project.project, env=project.env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                return httpx.get(f"{url}/v1/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        eventually(up, timeout_s=240)
        secret = eventually(lambda: re.search(r"signed with (whsec_\S+)", log.read_text()))
        yield url, secret.group(1)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_dev_predicts_runs_a_job_with_its_webhook_and_a_load_run(project: Installed, dev: tuple[str, str]) -> None:
    url, secret = dev
    # `inferstack invoke` in the project finds the local stack by itself (no --url, no key)
    assert json.loads((project.project / ".inferstack" / "dev.json").read_text())["url"] == url
    done = project.run("invoke", "iris", "--input", "-", stdin='[[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outputs"]["label"] == [0, 2]
    receiver = WebhookReceiver(secret).start()
    try:
        done = project.run("jobs", "submit", "iris", "--input", "-", "--webhook", receiver.url,
                           stdin='{"inputs": [[6.7, 3.0, 5.2, 2.3]]}')
        assert done.returncode == 0, done.stderr
        job_id = json.loads(done.stdout)["job_id"]
        waited = project.run("jobs", "wait", job_id, "--timeout", "120")
        assert waited.returncode == 0, waited.stdout + waited.stderr
        assert json.loads(waited.stdout)["result"]["label"] == [2]
        delivery = eventually(receiver.verified, timeout_s=60)[0]  # signature checked with standardwebhooks
        assert delivery.webhook_id == f"msg_{job_id}"
    finally:
        receiver.stop()
    # and a short load run (the [local] extra's matplotlib draws its plot)
    done = project.run("load", "--concurrency", "2", "--duration", "2", "--quiet", "--out", "load.png")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["ok"] > 0 and summary["errors"] == 0 and (project.project / "load.png").stat().st_size > 0


def test_synth_passes_cdk_nag_cfn_lint_and_the_assertions(project: Installed) -> None:
    from aws_cdk.assertions import Match, Template

    # without Node on PATH: a clear error naming what to install
    no_node = subprocess.run([str(project.venv / "bin" / "inferstack"), "synth"], cwd=project.project,
                             env={**project.env, "PATH": str(project.venv / "bin")}, capture_output=True, text=True,
                             timeout=120, check=False)
    assert no_node.returncode == 2 and "install Node.js" in no_node.stderr, no_node.stderr
    if not shutil.which("npx", path=project.env["PATH"]):
        pytest.fail("npx (Node.js 20 or later) is needed: `make test` needs it for the CDK too")
    done = project.run("synth", "--", "--quiet")
    assert done.returncode == 0, done.stdout + done.stderr  # cdk-nag's AwsSolutions findings fail the synthesis
    out = project.project / "cdk.out"
    template_file = out / "shop.template.json"
    assert f"template: {template_file}" in done.stdout
    assert json.loads((out / "validation-report.json").read_text())["pluginReports"] == []
    template = Template.from_json(json.loads(template_file.read_text()))
    template.resource_count_is("AWS::ApiGateway::RestApi", 1)
    template.has_resource_properties("AWS::Lambda::Function", {
        "Handler": "inferstack.functions.predict.handler.handler", "Architectures": ["arm64"]})
    template.has_resource_properties("AWS::ApiGateway::UsagePlan", {
        "UsagePlanName": Match.string_like_regexp("default")})
    template.has_resource_properties("AWS::SQS::Queue", {"RedrivePolicy": Match.object_like({"maxReceiveCount": 3})})
    assert [k for k in template.to_json()["Outputs"] if k.startswith("RestUrl")]  # what `deploy` prints
    # the predict function's bundle: the installed run time, the project's model, nothing of this checkout
    assets = json.loads((out / "shop.assets.json").read_text())["files"]
    bundles = [out / a["source"]["path"] for a in assets.values()
               if (out / a["source"]["path"] / "catalog.json").is_file()]
    assert any((b / "models" / "iris.onnx").is_file() for b in bundles)
    assert all((b / "inferstack" / "functions").is_dir() for b in bundles)
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    lint = subprocess.run([str(cfn_lint), str(template_file)], capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
