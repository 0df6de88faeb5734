from __future__ import annotations

import os
from pathlib import Path

import pytest

# jsii's Node deprecation and end-of-life banners (the Makefile sets these too)
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20,22,24")

from aws_cdk import App
from aws_cdk.assertions import Template

from inferstack_infra.app import build_app
from inferstack_infra.stack import InferenceStack
from tests.conftest import DIGITS_MANIFEST, EXAMPLE_MANIFEST, MINILM_HANDLER


class Synthesized:
    def __init__(self, app: App, stack: InferenceStack, outdir: Path) -> None:
        self.app, self.stack, self.outdir = app, stack, outdir
        # app.synth() runs cdk-nag's AwsSolutions pack and raises on any unacknowledged finding
        self.assembly = app.synth()
        self.template = Template.from_stack(stack)
        self.template_file = outdir / f"{stack.stack_name}.template.json"


def synthesize(manifest: Path, outdir: Path) -> Synthesized:
    app, stack = build_app(manifest, app=App(outdir=str(outdir)))
    return Synthesized(app, stack, outdir)


@pytest.fixture(scope="session")
def example(tmp_path_factory: pytest.TempPathFactory, iris_model: Path, minilm_model: Path) -> Synthesized:
    return synthesize(EXAMPLE_MANIFEST, tmp_path_factory.mktemp("cdk-example"))


@pytest.fixture(scope="session")
def snapstart(tmp_path_factory: pytest.TempPathFactory, iris_model: Path, minilm_model: Path) -> Synthesized:
    """A variant: SnapStart instead of provisioned concurrency, WAF on, one plan with named keys, and the
    sentence-embedding model (with its handler) on the light tier."""
    d = tmp_path_factory.mktemp("cdk-snapstart")
    manifest = d / "inferstack.toml"
    manifest.write_text(f"""
name = "snap"
[api]
waf = true
[alerts]
emails = ["oncall@example.com", "ml-team@example.com"]
https = ["https://events.example.com/alarms"]
[[api.plans]]
name = "partners"
throttle = {{ rate = 20, burst = 40 }}
quota = {{ limit = 500, period = "MONTH" }}
keys = ["acme", "globex"]
[[models]]
name = "iris"
path = "{iris_model}"
tier = "light"
memory_mb = 3008
cold_start = {{ mode = "snapstart" }}
[[models]]
name = "minilm"
path = "{minilm_model}"
handler = "{MINILM_HANDLER}"
tier = "light"
memory_mb = 2048
cold_start = {{ mode = "snapstart" }}
""")
    return synthesize(manifest, d / "out")


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory, digits_models: Path) -> Synthesized:
    """The cascade example (examples/digits): cached light and heavy models, a fallback, a cascade."""
    return synthesize(DIGITS_MANIFEST, tmp_path_factory.mktemp("cdk-digits"))
