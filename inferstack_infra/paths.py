"""Where things are: the installed package's own data, the user's project, and its build outputs.

Nothing here points into a source checkout: the framework's files (layer recipes, the heavy container's
Dockerfile) are found through the installed package (`importlib.resources`), the user's files (manifest,
models, handlers) relative to the project directory, and what is built goes under the project's `build/`
(never into site-packages).

- project: `$INFERSTACK_PROJECT`, else the working directory (`cdk` runs the app in the directory of
  `cdk.json`; the `inferstack` commands are run in the project).
- build outputs: `$INFERSTACK_BUILD_DIR`, else `<project>/build`.
"""

from __future__ import annotations

import os
import sysconfig
from importlib import resources
from pathlib import Path

import inferstack

#: The environment variables that move the project and its build directory.
PROJECT_ENV = "INFERSTACK_PROJECT"
BUILD_DIR_ENV = "INFERSTACK_BUILD_DIR"
#: The name of a project's manifest.
MANIFEST_NAME = "inferstack.toml"


def package_data(*parts: str) -> Path:
    """A file or directory shipped inside the `inferstack_infra` package (installed as plain files)."""
    return Path(str(resources.files("inferstack_infra").joinpath(*parts)))


#: The pinned requirements of the Lambda layers (`base.txt`, `inference.txt`).
LAYERS_DIR = package_data("layers")
#: The heavy tier's container: Dockerfile, requirements.txt, serve.
CONTAINER_DIR = package_data("container")
#: The run-time library that function bundles and the container image carry: the installed `inferstack`.
RUNTIME_DIR = Path(inferstack.__file__).resolve().parent


def project_dir() -> Path:
    return Path(os.environ.get(PROJECT_ENV) or Path.cwd())


def default_manifest() -> Path:
    return project_dir() / MANIFEST_NAME


def build_dir() -> Path:
    return Path(os.environ.get(BUILD_DIR_ENV) or project_dir() / "build")


def child_pythonpath() -> str:
    """`PYTHONPATH` for a child interpreter (a local function, the local heavy container) that must import this
    same `inferstack`: the directory it was imported from (a checkout run with PYTHONPATH, an editable install),
    or nothing when that is this interpreter's own site-packages (an installed package), which it finds anyway."""
    where = RUNTIME_DIR.parent
    site = {Path(sysconfig.get_path(k)).resolve() for k in ("purelib", "platlib")}
    return "" if where in site else str(where)


def python_path() -> dict[str, str]:
    """The environment entry that gives a child interpreter `child_pythonpath()` (none when it needs none)."""
    where = child_pythonpath()
    return {"PYTHONPATH": where} if where else {}
