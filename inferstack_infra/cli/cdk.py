"""`inferstack synth|deploy|destroy`: the AWS CDK CLI, pinned by this package, run on the user's project.

The CLI comes through `npx aws-cdk@<CDK_CLI_VERSION>` (Node.js 20 or later), the app is this package's
(`python -m inferstack_infra.app`, with this very interpreter), the manifest the project's. After a deploy the
stack's outputs give the API URL and the API keys' ids; a key's value is read with the AWS CLI.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from inferstack.manifest import Manifest, ManifestError
from inferstack_infra.cli.common import fail, manifest
from inferstack_infra.cli.extras import require
from inferstack_infra.paths import MANIFEST_NAME
from inferstack_infra.stages import with_stage

#: The AWS CDK CLI this release runs (this repository's package.json pins the same one).
CDK_CLI_VERSION = "2.1148.1"
#: The oldest Node.js the CDK CLI and aws-cdk-lib's jsii runtime support.
NODE_MIN_MAJOR = 20
#: jsii prints a banner on every run under a Node release it calls deprecated or end-of-life; silence it for the
#: releases the README accepts.
JSII_QUIET = {"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20,22,24",
              "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1"}
#: The feature flags of the CDK app (cdk.json's "context"), the same in every project.
CDK_CONTEXT: dict[str, Any] = {
    "@aws-cdk/aws-lambda:recognizeLayerVersion": True,
    "@aws-cdk/core:checkSecretUsage": True,
    "@aws-cdk/aws-iam:minimizePolicies": True,
    "@aws-cdk/aws-apigateway:disableCloudWatchRole": False,
    "@aws-cdk/core:enablePartitionLiterals": True,
    "@aws-cdk/aws-lambda:useCdkManagedLogGroup": True,
}
#: Where the outputs of the last deploy are kept, in the project.
OUTPUTS_FILE = Path("build") / "cdk-outputs.json"


def cdk_json(python: str = "python3") -> dict[str, Any]:
    """A project's `cdk.json`: `npx cdk ...` run in the project runs inferstack's app with `python`."""
    quiet = " ".join(f"{k}={v}" for k, v in JSII_QUIET.items())
    return {"app": f"{quiet} {python} -m inferstack_infra.app",
            "watch": {"include": [MANIFEST_NAME, "models/**"]},
            "context": CDK_CONTEXT}


def npx() -> str:
    """The `npx` to run the CDK CLI with; exits with what to install when Node.js is missing or too old."""
    found = shutil.which("npx")
    node = shutil.which("node")
    if not found or not node:
        fail(f"`inferstack synth|deploy|destroy` run the AWS CDK CLI (aws-cdk@{CDK_CLI_VERSION}) with npx, which "
             f"comes with Node.js {NODE_MIN_MAJOR} or later, and no `{'npx' if node else 'node'}` is on PATH: "
             "install Node.js (https://nodejs.org, or your system's package manager: e.g. `apt install nodejs "
             "npm`, `brew install node`), then run this again", 2)
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    major = version.lstrip("v").split(".")[0]
    if major.isdigit() and int(major) < NODE_MIN_MAJOR:
        fail(f"Node.js {version} is too old for the AWS CDK CLI: install Node.js {NODE_MIN_MAJOR} or later", 2)
    return found


def deploy_tools(loaded: Manifest) -> str:
    """What `synth`/`deploy` will find on this machine (for `inferstack doctor`): Node.js and npx, the [cdk]
    extra, and Docker where a heavy model's image is built at deploy time."""
    node, npx_found = shutil.which("node"), shutil.which("npx")
    version = (subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
               if node else "")
    major = version.lstrip("v").split(".")[0]
    lines = [f"node {version} and npx: ok (AWS CDK CLI {CDK_CLI_VERSION} through npx)"
             if node and npx_found and major.isdigit() and int(major) >= NODE_MIN_MAJOR else
             f"node/npx: MISSING or too old ({version or 'not found'}): install Node.js {NODE_MIN_MAJOR} or later "
             "for synth and deploy"]
    missing = require("cdk")
    lines.append("CDK app ([cdk] extra): ok" if not missing else
                 f"CDK app: MISSING {', '.join(missing)}: pip install \"inferstack[cdk]\"")
    if any(m.image_uri is None for m in loaded.heavy_models):
        lines.append("docker: ok (builds the heavy tier's image at deploy time)" if shutil.which("docker") else
                     "docker: MISSING: deploying a heavy model without image_uri builds its image with Docker")
    return "\n".join(f"  {line}" for line in lines)


def cdk_command(args: argparse.Namespace, action: str) -> list[str]:
    manifest_file = Path(args.manifest).resolve()
    cmd = [npx(), "--yes", f"aws-cdk@{CDK_CLI_VERSION}", action,
           "--app", f"{shlex.quote(sys.executable)} -m inferstack_infra.app",
           "--context", f"manifest={manifest_file}"]
    if args.stage:
        cmd += ["--context", f"stage={args.stage}"]
    if args.region:
        cmd += ["--context", f"region={args.region}"]
    if args.profile:
        cmd += ["--profile", args.profile]
    if action == "deploy":
        cmd += ["--outputs-file", str(OUTPUTS_FILE)]
        if getattr(args, "yes", False):
            cmd += ["--require-approval", "never"]
    if action == "destroy" and getattr(args, "yes", False):
        cmd += ["--force"]
    return cmd + list(args.cdk_args)


def run_cdk(args: argparse.Namespace, action: str) -> int:
    missing = require("cdk")  # the app runs in cdk's child process: say what is missing before it starts
    if missing:
        fail(f"`inferstack {action}` runs inferstack's CDK app, which needs {', '.join(missing)}: "
             "pip install \"inferstack[cdk]\"", 2)
    loaded = manifest(args.manifest)  # a bad manifest (or stage) is reported here, before Node starts
    try:
        loaded = with_stage(loaded, args.stage)
    except ManifestError as exc:
        fail(str(exc), 2)
    project = loaded.root.resolve()
    cmd = cdk_command(args, action)
    print(f"inferstack {action}: {loaded.name} in {project} (AWS CDK CLI {CDK_CLI_VERSION})", flush=True)
    environ = {**os.environ, **JSII_QUIET, "INFERSTACK_PROJECT": str(project)}
    done = subprocess.run(cmd, cwd=project, env=environ, check=False)
    if done.returncode == 0 and action == "deploy":
        print(deployed_summary(project / OUTPUTS_FILE, loaded.name, args))
    elif done.returncode == 0 and action == "synth":
        print(f"template: {project / 'cdk.out' / f'{loaded.name}.template.json'}")
    return done.returncode


def deployed_summary(outputs_file: Path, stack: str, args: argparse.Namespace) -> str:
    """The API URL and how to read each API key, from the outputs of `cdk deploy`."""
    try:
        outputs: dict[str, str] = json.loads(outputs_file.read_text()).get(stack, {})
    except (OSError, ValueError):
        return f"(no outputs in {outputs_file}: see `aws cloudformation describe-stacks --stack-name {stack}`)"
    url = next((v for k, v in outputs.items() if k.startswith("RestUrl")), None)
    keys = {k: v for k, v in outputs.items() if "ApiKey" in k}
    where = "".join(f" --{flag} {value}" for flag, value in (("region", args.region), ("profile", args.profile))
                    if value)
    lines = [f"\nAPI:  {url}v1" if url and url.endswith("/") else f"\nAPI:  {url}/v1"] if url else []
    lines += [f"key {name}: aws apigateway get-api-key --api-key {key_id} --include-value --query value "
              f"--output text{where}" for name, key_id in keys.items()]
    if url and keys:
        lines.append(f"try:  inferstack invoke <model> --url {url.rstrip('/')} --api-key <the key> --input -")
    return "\n".join(lines)


def register(sub: Any) -> None:
    actions = {"synth": ("the CloudFormation template, checked by cdk-nag, into cdk.out/ (no AWS access)",
                         cmd_synth),
               "deploy": ("deploy the project to AWS (credentials as for the AWS CLI)", cmd_deploy),
               "destroy": ("delete the deployed stack", cmd_destroy),
               "bootstrap": ("prepare an AWS account and region for CDK deployments (once per account and region)",
                             cmd_bootstrap)}
    for action, (help_text, func) in actions.items():
        p = sub.add_parser(action, help=help_text,
                           description=f"{help_text}: runs `npx aws-cdk@{CDK_CLI_VERSION} {action}` in the "
                           "manifest's directory. Arguments after `--` go to the CDK CLI.")
        p.add_argument("--manifest", default=MANIFEST_NAME)
        p.add_argument("--stage", help="deploy the project once more, as <name>-<stage> (stack and resource "
                       "names): e.g. dev, prod")
        p.add_argument("--region", help="the AWS region (default: the profile's or $AWS_REGION)")
        p.add_argument("--profile", help="the AWS CLI profile")
        if action in ("deploy", "destroy"):
            p.add_argument("--yes", action="store_true", help="ask nothing (deploy: approve security changes; "
                           "destroy: no confirmation)")
        p.add_argument("cdk_args", nargs=argparse.REMAINDER, help="after `--`: passed to the CDK CLI as they are")
        p.set_defaults(func=func)


def _strip(args: argparse.Namespace) -> argparse.Namespace:
    """The CDK CLI's own arguments, without the `--` that separates them."""
    args.cdk_args = args.cdk_args[1:] if args.cdk_args[:1] == ["--"] else args.cdk_args
    return args


def cmd_synth(args: argparse.Namespace) -> int:
    return run_cdk(_strip(args), "synth")


def cmd_deploy(args: argparse.Namespace) -> int:
    return run_cdk(_strip(args), "deploy")


def cmd_destroy(args: argparse.Namespace) -> int:
    return run_cdk(_strip(args), "destroy")


def cmd_bootstrap(args: argparse.Namespace) -> int:
    return run_cdk(_strip(args), "bootstrap")
