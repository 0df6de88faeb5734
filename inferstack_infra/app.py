"""The CDK app: `inferstack synth|deploy` run it (`npx cdk ...` too: a project's cdk.json runs
`python3 -m inferstack_infra.app`), in the project's directory.

The manifest is `inferstack.toml` unless `-c manifest=FILE` says otherwise; `-c stage=NAME` deploys it as
`<name>-<stage>` (inferstack_infra/stages.py). cdk-nag's AwsSolutions pack
checks every resource; each acknowledgement in the constructs carries its reason.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aws_cdk import App, Environment, Validations
from cdk_nag import AwsSolutionsChecks

from inferstack.manifest import ManifestError, load_manifest
from inferstack_infra.stack import InferenceStack
from inferstack_infra.stages import with_stage


def build_app(manifest_path: str | Path = "inferstack.toml", *, app: App | None = None) -> tuple[App, InferenceStack]:
    app = app or App()
    manifest = with_stage(load_manifest(app.node.try_get_context("manifest") or manifest_path),
                          app.node.try_get_context("stage"))
    stack = InferenceStack(app, manifest.name, manifest=manifest, env=Environment(
        account=app.node.try_get_context("account"), region=app.node.try_get_context("region")))
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack


def main() -> None:
    try:
        app, _ = build_app()
    except ManifestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    app.synth()


if __name__ == "__main__":
    main()
