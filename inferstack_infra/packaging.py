"""Build what Lambda runs, without Docker: dependency layers for Lambda's platform, and function bundles.

Layers are installed with pip for `manylinux_2_28_aarch64` / CPython 3.14 (Lambda's python3.14 on arm64,
Amazon Linux 2023), trimmed of what never runs (tests, caches, stubs, unused subpackages), and cached under
the project's `build/layers/<name>-<hash>` keyed by the recipe and the trim rules. The recipes ship with the
package (`inferstack_infra/layers/`); the run-time library bundled into functions is the installed `inferstack`.
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
from dataclasses import dataclass
from pathlib import Path

from inferstack.catalog import Catalog, CatalogEntry
from inferstack.manifest import Manifest, Model
from inferstack.topology import FunctionSpec
from inferstack_infra import optimize
from inferstack_infra.catalog import bundled_rule
from inferstack_infra.paths import CONTAINER_DIR, LAYERS_DIR, RUNTIME_DIR, build_dir

#: Where builds go: the project's `build/` (the working directory's, or $INFERSTACK_PROJECT's), or
#: $INFERSTACK_BUILD_DIR; never into the installed package.
BUILD_DIR = build_dir()

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


#: The heavy tier's container (inferstack_infra/container/Dockerfile: Ubuntu 24.04's Python, an amd64 image).
HEAVY_PYTHON = "3.12"
HEAVY_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


@dataclass(frozen=True)
class Layer:
    """A Lambda layer: its name and its recipe, a pinned requirements file."""

    name: str
    recipe: Path


def handler_dir(manifest: Manifest, model: Model) -> Path | None:
    handler = manifest.handler_file(model)
    return handler.resolve().parent if handler else None


def handler_requirements(manifest: Manifest, model: Model) -> Path | None:
    """The `requirements.txt` beside a model's handler: what it imports beyond the inferstack run time."""
    directory = handler_dir(manifest, model)
    recipe = directory / "requirements.txt" if directory else None
    return recipe if recipe and recipe.is_file() else None


def function_layers(spec: FunctionSpec, manifest: Manifest) -> list[Layer]:
    """The layers a function runs with: `base`, `inference` for those that run a model, and the model's
    handler dependencies (`handler-<model>`) where its handler has a `requirements.txt`."""
    if not spec.inference:
        return [Layer("base", LAYERS_DIR / "base.txt")]
    out = [Layer("base", LAYERS_DIR / "base.txt"), Layer("inference", LAYERS_DIR / "inference.txt")]
    recipe = handler_requirements(manifest, manifest.model(spec.model)) if spec.model else None
    if recipe:
        out.append(Layer(f"handler-{spec.model}", recipe))
    return out


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


def build_layer(layer: str | Layer, *, quiet: bool = True, python: str = LAMBDA_PYTHON,
                platforms: tuple[str, ...] = LAMBDA_PLATFORMS) -> Path:
    """Build (or reuse) a layer (a recipe name in `inferstack_infra/layers/`, or a `Layer`) by pip-installing
    its pinned recipe (the whole closure: `--no-deps`) as wheels for another platform: no Docker, no
    compiler. Returns the directory that holds `python/`. By default for Lambda; with `python=HOST_PYTHON,
    platforms=HOST_PLATFORMS` the same recipe and trim for this machine, and with `HEAVY_PYTHON,
    HEAVY_PLATFORMS` for the heavy container."""
    if isinstance(layer, str):
        layer = Layer(layer, LAYERS_DIR / f"{layer}.txt")
    out = BUILD_DIR / "layers" / f"{layer.name}-{_recipe_hash(layer.recipe, python, platforms)}"
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
           "--target", str(site), "-r", str(layer.recipe)]
    done = subprocess.run(cmd, capture_output=quiet, text=True, check=False)
    if done.returncode:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"building layer {layer.name} ({layer.recipe}) for {platforms[0]} / Python {python} "
                           f"failed:\n{done.stdout}{done.stderr}")
    trim(site)
    (tmp / ".complete").write_text(layer.recipe.read_text())
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


def copy_handler(manifest: Manifest, model: Model, dst: Path) -> None:
    """A model's handler directory, without caches and without model files (each model travels on its own)."""
    src = handler_dir(manifest, model)
    assert src is not None
    models = {manifest.model_file(m).resolve() for m in manifest.models}

    def ignore(directory: str, names: list[str]) -> set[str]:
        return {n for n in names if n == "__pycache__" or n.endswith(".pyc") or (Path(directory) / n).resolve()
                in models}

    shutil.copytree(src, dst, ignore=ignore, dirs_exist_ok=True)


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
    _copy_tree(RUNTIME_DIR, out / "inferstack")  # the run-time library, entry points included
    for name in spec.local_models:
        model = manifest.model(name)
        entry = catalog.get(name)
        assert entry is not None
        (out / entry.artifact).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(optimize.artifact(manifest, model), out / entry.artifact)
        for variant, source in zip(entry.variants or [], model.variants or [], strict=True):  # A/B: every file
            shutil.copy2(manifest.resolve(source.path), out / variant.artifact)
        if entry.handler:
            copy_handler(manifest, model, (out / entry.handler).parent)
    cascade = next((c for c in manifest.cascades if c.name == spec.cascade), None)
    if cascade is not None and cascade.accept.rule is not None:  # its custom acceptance rule
        (out / bundled_rule(cascade.name)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(manifest.resolve(cascade.accept.rule), out / bundled_rule(cascade.name))
    catalog.dump(out / "catalog.json")


def stage_container() -> Path:
    """The heavy container image's build context: the Dockerfile, its requirements and `serve`, and the
    run-time library it copies; content-addressed like a function bundle, so an unchanged image is not
    rebuilt."""

    def write(out: Path) -> None:
        for name in ("Dockerfile", "requirements.txt", "serve"):
            shutil.copy2(CONTAINER_DIR / name, out / name)
        _copy_tree(RUNTIME_DIR, out / "inferstack")

    return _staged("container", "heavy", write)


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def function_size(spec: FunctionSpec, manifest: Manifest, catalog: Catalog) -> tuple[int, int]:
    """A function's unzipped code and layers, in bytes, as Lambda counts them against its 250 MB."""
    code = dir_size(stage_function(spec, manifest, catalog))
    return code, sum(dir_size(build_layer(layer)) for layer in function_layers(spec, manifest))


def as_light(manifest: Manifest) -> Manifest:
    """The manifest with every model on the light tier: what a heavy model's functions would be on Lambda."""
    return manifest.model_copy(update={"models": [m.model_copy(update={"tier": "light"}) for m in manifest.models]})


#: Where a heavy model's handler directory lies in its model archive (SageMaker's convention for code).
HEAVY_CODE_DIR = "code"


def heavy_model_config(entry: CatalogEntry, model: Model, manifest: Manifest) -> dict[str, object]:
    """What the heavy container reads from `inferstack.json` beside `model.onnx`."""
    handler = manifest.handler_file(model)
    return {"name": entry.name, "tier": "heavy", "version": entry.version,
            "allow_non_finite": entry.allow_non_finite, "batching": model.batching.model_dump(),
            "graph_optimized": entry.graph_optimized, "pad": entry.pad,
            "handler": f"{HEAVY_CODE_DIR}/{handler.name}" if handler else None}


def stage_heavy_model(model: Model, manifest: Manifest, catalog: Catalog, out: Path | None = None, *,
                      dependencies: bool = True, variant: str | None = None) -> Path:
    """The SageMaker model directory (`/opt/ml/model`): `model.onnx`, `inferstack.json`, and for a model with a
    handler `code/` (the handler's directory) with its requirements installed in `code/lib` for the
    container's platform. `dependencies=False` leaves them out, for a container that has them already (the
    local emulation runs in the project's environment)."""
    entry = catalog.get(model.name)
    assert entry is not None
    if variant is not None:  # an A/B variant: its own file and version, the model's name and settings
        (chosen,) = [v for v in entry.variants or [] if v.name == variant]
        (source,) = [v for v in model.variants or [] if v.name == variant]
        model = model.model_copy(update={"path": manifest.resolve(source.path), "variants": None})
        entry = entry.model_copy(update={"version": chosen.version, "variants": None})

    def write(target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(optimize.artifact(manifest, model), target / "model.onnx")
        (target / "inferstack.json").write_text(json.dumps(heavy_model_config(entry, model, manifest),
                                                           indent=2) + "\n")
        if manifest.handler_file(model):
            copy_handler(manifest, model, target / HEAVY_CODE_DIR)
            recipe = handler_requirements(manifest, model)
            if recipe and dependencies:
                # built (and cached) like a layer, for the container's platform instead of Lambda's
                built = build_layer(Layer(f"handler-{model.name}", recipe), python=HEAVY_PYTHON,
                                    platforms=HEAVY_PLATFORMS)
                shutil.copytree(built / "python", target / HEAVY_CODE_DIR / "lib")

    if out is not None:
        write(out)
        return out
    return _staged("heavy", model.name + (f"--{variant}" if variant else ""), write)


def model_tarball(model_dir: Path) -> Path:
    """`model.tar.gz` as SageMaker expects it (the directory's content at the archive's root), reproducible byte
    for byte."""
    out = model_dir.with_name(model_dir.name + ".tar.gz")
    if out.exists():
        return out
    tmp = out.with_name(f".{out.name}.{os.getpid()}")
    with tmp.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:
        for path in sorted(model_dir.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(model_dir)))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if path.is_dir():
                info.mode = 0o755
                tar.addfile(info)
                continue
            info.mode = 0o755 if info.mode & 0o100 else 0o644
            with path.open("rb") as f:
                tar.addfile(info, f)
    os.replace(tmp, out)
    return out
