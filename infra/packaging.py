"""Build what Lambda runs, without Docker: dependency layers for Lambda's platform, and function bundles.

Layers are installed with pip for `manylinux_2_28_aarch64` / CPython 3.14 (Lambda's python3.14 on arm64,
Amazon Linux 2023), trimmed of what never runs (tests, caches, stubs, unused subpackages), and cached under
`build/layers/<name>-<hash>` keyed by the recipe and the trim rules.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from inferstack.catalog import Catalog, CatalogEntry
from inferstack.manifest import Manifest, Model
from inferstack.topology import FunctionSpec

ROOT = Path(__file__).resolve().parent.parent
LAYERS_DIR = ROOT / "layers"
BUILD_DIR = Path(os.environ.get("INFERSTACK_BUILD_DIR", ROOT / "build"))

LAMBDA_PYTHON = "3.14"
LAMBDA_PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64")
#: The same layers built for this machine, to run a trimmed function bundle here (tests, benchmarks).
HOST_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
HOST_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
LAMBDA_MAX_UNZIPPED_BYTES = 250 * 1024 * 1024

#: Removed from every layer: never imported by a running function.
TRIM_DIRS = {"tests", "test", "testing", "__pycache__", "bin", "include"}
TRIM_SUFFIXES = (".pyi", ".pyc", ".pyx", ".pxd", ".c", ".h", ".hpp")
#: Whole subpackages that no function imports.
TRIM_PATHS = (
    "onnxruntime/transformers", "onnxruntime/quantization", "onnxruntime/tools", "onnxruntime/datasets",
    # the C API library: the Python binding links onnxruntime statically and never loads it (readelf -d)
    "onnxruntime/capi/libonnxruntime.so.*",
    "numpy/f2py", "numpy/distutils", "numpy/_pyinstaller", "numpy/typing/tests", "numpy/doc",
    # loaded lazily by numpy and used by nothing a function runs
    "numpy/random", "numpy/fft", "numpy/polynomial",
    "aws_lambda_powertools/utilities/parser/models",
    "fastapi/cli.py",
)
TRIM_VERSION = "2"


def layer_names(spec: FunctionSpec) -> list[str]:
    return ["base", "inference"] if spec.inference else ["base"]


def _recipe_hash(recipe: Path, python: str, platforms: tuple[str, ...]) -> str:
    digest = hashlib.sha256(recipe.read_bytes())
    digest.update(json.dumps([python, platforms, sorted(TRIM_DIRS), TRIM_SUFFIXES, TRIM_PATHS,
                              TRIM_VERSION]).encode())
    return digest.hexdigest()[:12]


def trim(site: Path) -> None:
    for rel in TRIM_PATHS:
        for target in site.glob(rel):
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink()
    for path in sorted(site.rglob("*"), reverse=True):
        if path.is_dir() and path.name in TRIM_DIRS:
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() and path.name.endswith(TRIM_SUFFIXES):
            path.unlink()


def build_layer(name: str, *, quiet: bool = True, python: str = LAMBDA_PYTHON,
                platforms: tuple[str, ...] = LAMBDA_PLATFORMS) -> Path:
    """Build (or reuse) a layer; returns the directory that holds `python/`. By default for Lambda; with
    `python=HOST_PYTHON, platforms=HOST_PLATFORMS` the same recipe and trim for this machine."""
    recipe = LAYERS_DIR / f"{name}.txt"
    out = BUILD_DIR / "layers" / f"{name}-{_recipe_hash(recipe, python, platforms)}"
    if (out / ".complete").exists():
        return out
    # Built aside and moved into place in one rename: concurrent builders (parallel tests, a synth beside
    # them) never see, trim or delete each other's half-built tree; the first rename wins.
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    site = tmp / "python"
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-deps",
           "--no-compile", "--only-binary=:all:", "--implementation", "cp", "--python-version", python,
           *[arg for p in platforms for arg in ("--platform", p)],
           "--target", str(site), "-r", str(recipe)]
    done = subprocess.run(cmd, capture_output=quiet, text=True, check=False)
    if done.returncode:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"building layer {name} failed:\n{done.stdout}{done.stderr}")
    trim(site)
    (tmp / ".complete").write_text(recipe.read_text())
    return _publish(tmp, out)


def _publish(tmp: Path, out: Path) -> Path:
    """Move a finished build into place in one rename; when another builder got there first with the same
    inputs (same name), keep theirs."""
    try:
        os.rename(tmp, out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "py.typed"), dirs_exist_ok=True)


def _staged(kind: str, name: str, build: Callable[[Path], None]) -> Path:
    """Build into a fresh directory and move it into place atomically, so that concurrent syntheses (tests
    in parallel, a `cdk synth` beside them) never see or delete each other's half-written trees. The result
    is addressed by its content: an identical build is reused."""
    parent = BUILD_DIR / kind
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=parent))
    build(tmp)
    digest = hashlib.sha256()
    for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(tmp)).encode())
        digest.update(path.read_bytes())
    return _publish(tmp, parent / f"{name}-{digest.hexdigest()[:12]}")


def stage_function(spec: FunctionSpec, manifest: Manifest, catalog: Catalog) -> Path:
    """Write the function's code bundle: the run-time library, its entry point, the catalog and (for a
    predict function) its model. Returns the directory to deploy as the function's code asset."""
    return _staged("functions", spec.key, lambda out: _write_function(out, spec, manifest, catalog))


def _write_function(out: Path, spec: FunctionSpec, manifest: Manifest, catalog: Catalog) -> None:
    _copy_tree(ROOT / "inferstack", out / "inferstack")
    entry_dir = spec.handler.rsplit(".", 2)[0].replace(".", "/")  # functions/predict
    _copy_tree(ROOT / entry_dir, out / entry_dir)
    (out / "functions" / "__init__.py").write_text("")
    entries: list[CatalogEntry] = list(catalog.models)
    if spec.inference and spec.model:
        model = manifest.model(spec.model)
        entry = catalog.get(spec.model)
        assert entry is not None
        (out / entry.artifact).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(manifest.model_file(model), out / entry.artifact)
    Catalog(models=entries).dump(out / "catalog.json")


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def heavy_model_config(entry: CatalogEntry, model: Model) -> dict[str, object]:
    """What the heavy container reads from `inferstack.json` beside `model.onnx`."""
    return {"name": entry.name, "tier": "heavy", "version": entry.version,
            "allow_non_finite": entry.allow_non_finite, "batching": model.batching.model_dump()}


def stage_heavy_model(model: Model, manifest: Manifest, catalog: Catalog, out: Path | None = None) -> Path:
    """The SageMaker model directory (`/opt/ml/model`): `model.onnx` and `inferstack.json`."""
    entry = catalog.get(model.name)
    assert entry is not None

    def write(target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(manifest.model_file(model), target / "model.onnx")
        (target / "inferstack.json").write_text(json.dumps(heavy_model_config(entry, model), indent=2) + "\n")

    if out is not None:
        write(out)
        return out
    return _staged("heavy", model.name, write)


def model_tarball(model_dir: Path) -> Path:
    """`model.tar.gz` as SageMaker expects it (files at the archive's root), reproducible byte for byte."""
    out = model_dir.with_name(model_dir.name + ".tar.gz")
    if out.exists():
        return out
    tmp = out.with_name(f".{out.name}.{os.getpid()}")
    with tmp.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:
        for path in sorted(model_dir.iterdir()):
            info = tar.gettarinfo(str(path), arcname=path.name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with path.open("rb") as f:
                tar.addfile(info, f)
    os.replace(tmp, out)
    return out
