"""`inferstack init [DIR]`: a new project that uses the installed package, ready for `inferstack dev`.

It writes `inferstack.toml` (one light model; tiers, jobs and plans shown in comments), `cdk.json` (inferstack's
CDK app), `models/build_iris.py` (the example model, built at once when scikit-learn and skl2onnx are installed),
`.gitignore` and a README with the next commands. Existing files are never overwritten without `--force`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from string import Template
from typing import Any

from inferstack.manifest_schema import SCHEMA_VERSION
from inferstack_infra.cli.cdk import cdk_json
from inferstack_infra.cli.common import fail
from inferstack_infra.paths import MANIFEST_NAME, package_data

TEMPLATE = package_data("templates", "project")
#: What `init` writes: the file in the project and its template (None: generated).
FILES: dict[str, str | None] = {
    MANIFEST_NAME: MANIFEST_NAME,
    "cdk.json": None,
    ".gitignore": "gitignore",
    "README.md": "README.md",
    "models/build_iris.py": "models/build_iris.py",
}
EXAMPLE_MODEL = Path("models") / "iris.onnx"
#: What the example model's builder imports.
EXAMPLE_BUILD_NEEDS = ("sklearn", "skl2onnx")


def project_name(directory: Path) -> str:
    """A stack name from the directory's name: letters, digits and hyphens, starting with a letter."""
    name = re.sub(r"[^A-Za-z0-9-]+", "-", directory.resolve().name).strip("-")
    if not name or not name[0].isalpha():
        name = f"inferstack-{name}".rstrip("-")
    return name[:64]


def render(target: str, name: str) -> str:
    template = FILES[target]
    if template is None:
        return json.dumps(cdk_json(), indent=2) + "\n"
    text = (TEMPLATE / template).read_text()
    if target in (MANIFEST_NAME, "README.md"):
        text = Template(text).substitute(name=name, schema=SCHEMA_VERSION)
    return text


def cmd_init(args: argparse.Namespace) -> int:
    directory: Path = args.directory
    name = args.name or project_name(directory)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,63}", name):
        fail(f"--name {name!r}: a stack name is a letter then letters, digits or hyphens (at most 64)", 2)
    existing = sorted(t for t in FILES if (directory / t).exists())
    if existing and not args.force:
        fail(f"{directory} already has {', '.join(existing)}: nothing written (pass --force to overwrite them)", 2)
    for target in FILES:
        path = directory / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(target, name))
        print(f"wrote {path}")
    built = build_example(directory, skip=args.no_model)
    print(next_steps(directory, built))
    return 0


def build_example(directory: Path, *, skip: bool = False) -> bool:
    """Build the example model with this interpreter when its build tools are installed; say how otherwise."""
    if skip:
        return False
    missing = [m for m in EXAMPLE_BUILD_NEEDS if importlib.util.find_spec(m) is None]
    if missing:
        print(f"\nthe example model is not built: models/build_iris.py needs scikit-learn and skl2onnx "
              f"({', '.join(missing)} not installed). Either\n"
              f"  pip install \"inferstack[models]\" && python models/build_iris.py --out {EXAMPLE_MODEL}\n"
              f"or bring your own ONNX file: put it under models/ and set its `path` in {MANIFEST_NAME}.")
        return False
    done = subprocess.run([sys.executable, "models/build_iris.py", "--out", str(EXAMPLE_MODEL)], cwd=directory,
                          capture_output=True, text=True, check=False)
    if done.returncode:
        print(f"\nbuilding the example model failed:\n{done.stdout}{done.stderr}", file=sys.stderr)
        return False
    print(done.stdout.strip())
    return True


def next_steps(directory: Path, built: bool) -> str:
    cd = "" if directory.resolve() == Path.cwd().resolve() else f"cd {directory}\n  "
    model = "" if built else f"python models/build_iris.py --out {EXAMPLE_MODEL}   # first build the model\n  "
    return (f"\nnext:\n  {cd}{model}inferstack dev       # the deployment on this machine\n"
            "  inferstack synth     # the CloudFormation template, checked (needs Node.js for npx)\n"
            "  inferstack deploy    # to AWS, with your credentials")


def register(sub: Any) -> None:
    p = sub.add_parser("init", help="create a new project (inferstack.toml, cdk.json, an example model)",
                       description="Write a new inferstack project into DIR (default: this directory).")
    p.add_argument("directory", nargs="?", type=Path, default=Path("."), metavar="DIR")
    p.add_argument("--name", help="the stack name (default: from the directory's name)")
    p.add_argument("--force", action="store_true", help="overwrite the files it writes when they exist")
    p.add_argument("--no-model", action="store_true", help="do not build the example model")
    p.set_defaults(func=cmd_init)
