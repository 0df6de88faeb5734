"""Compute the model catalog from the manifest: versions and signatures read from each ONNX graph."""

from __future__ import annotations

import hashlib
from pathlib import Path

from inferstack.catalog import CascadeInfo, Catalog, CatalogEntry, VariantEntry
from inferstack.inference.handlers import load_handler
from inferstack.inference.ragged import Padding, PaddingError
from inferstack.inference.session import create_session, read_signature
from inferstack.inference.spec import TensorSpec
from inferstack.manifest import Manifest, ManifestError, Model
from inferstack_infra.optimize import artifact


def file_version(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def bundled_artifact(name: str) -> str:
    """Where a model file lies inside a function bundle, relative to its catalog."""
    return f"models/{name}.onnx"


def bundled_handler_dir(name: str) -> str:
    """Where a model's handler directory lies inside a function bundle, relative to its catalog."""
    return f"handlers/{name}"


def bundled_handler(manifest: Manifest, model: Model) -> str | None:
    handler = manifest.handler_file(model)
    return f"{bundled_handler_dir(model.name)}/{handler.name}" if handler else None


def build_catalog(manifest: Manifest, *, bundled: bool = True) -> Catalog:
    """`bundled`: artifact and handler paths as laid out in function bundles; otherwise absolute local paths.
    A model's handler is imported here, for its request and response schemas."""
    entries = []
    for index, m in enumerate(manifest.models):
        path = artifact(manifest, m)  # the optimized model where the manifest asks for one
        inputs, outputs = read_signature(create_session(path, threads=1))
        handler_file = manifest.handler_file(m)
        handler = load_handler(handler_file) if handler_file else None
        if m.pad:
            try:
                Padding.from_signature(m.pad, inputs, outputs)
            except PaddingError as exc:
                raise ManifestError(str(manifest.root / "inferstack.toml"),
                                    [(f"models[{index}] ({m.name}).{exc.field}", exc.detail)]) from None
        handler_path = None
        if handler_file:
            handler_path = bundled_handler(manifest, m) if bundled else str(handler_file.resolve())
        entries.append(CatalogEntry(
            name=m.name, tier=m.tier, version=m.version or model_version(manifest, m), inputs=inputs,
            outputs=outputs, artifact=bundled_artifact(m.name) if bundled else str(path.resolve()),
            allow_non_finite=m.allow_non_finite, pad=m.pad,
            handler=handler_path, graph_optimized=m.optimize.graph if m.optimize else "none",
            request_schema=handler.request_schema() if handler else None,
            response_schema=handler.response_schema() if handler else None,
            variants=variant_entries(manifest, m, inputs, bundled=bundled)))
        if m.variants:  # the model's version: that of the whole A/B test
            entries[-1].version = m.version or hashlib.sha256(
                "".join(v.version for v in entries[-1].variants or []).encode()).hexdigest()[:12]
    return Catalog(models=entries, cascades=cascade_infos(manifest, {e.name: e for e in entries},
                                                                 bundled=bundled))


def bundled_variant(name: str, variant: str) -> str:
    return f"models/{name}--{variant}.onnx"


def variant_entries(manifest: Manifest, model: Model, inputs: list[TensorSpec], *, bundled: bool
                    ) -> list[VariantEntry] | None:
    """Each A/B variant's version and file; every variant must take the inputs the first one takes."""
    if not model.variants:
        return None
    out = []
    for v in model.variants:
        path = manifest.resolve(v.path)
        if read_signature(create_session(path, threads=1))[0] != inputs:
            raise ValueError(f"model {model.name}: variant {v.name} ({path}) takes other inputs than "
                             f"{model.variants[0].name}; every variant must take the same inputs")
        version = v.version or file_version(path)
        out.append(VariantEntry(name=v.name, weight=v.weight, version=version,
                                artifact=bundled_variant(model.name, v.name) if bundled else str(path.resolve())))
    return out


def _signature(entry: CatalogEntry) -> str:
    return ", ".join(f"{t.name}: {t.describe()}" for t in entry.inputs)


def bundled_rule(cascade: str) -> str:
    """Where a cascade's acceptance rule lies inside a function bundle, relative to its catalog."""
    return f"cascades/{cascade}/rule.py"


def cascade_infos(manifest: Manifest, entries: dict[str, CatalogEntry], *, bundled: bool = True
                  ) -> list[CascadeInfo]:
    """Each cascade's signature; its stages must share the input signature and have the accept output."""
    out, problems = [], []
    for i, c in enumerate(manifest.cascades):
        where = f"cascades[{i}] ({c.name}).stages"
        stages = [entries[s] for s in c.stages]
        first = stages[0]
        for other in stages[1:]:
            if [(t.name, t.dtype, t.shape[1:]) for t in other.inputs] != \
                    [(t.name, t.dtype, t.shape[1:]) for t in first.inputs]:
                problems.append((where, f"{other.name}'s inputs ({_signature(other)}) differ from {first.name}'s "
                                        f"({_signature(first)}); a cascade's stages must share one input signature"))
        lacking = [s.name for s in stages if c.accept.output not in {o.name for o in s.outputs}]
        if lacking:
            problems.append((f"cascades[{i}] ({c.name}).accept.output", f"{', '.join(lacking)} have no output "
                             f"{c.accept.output!r}: every stage must have the output the threshold reads"))
            continue
        common = [o for o in first.outputs if all(o.name in {x.name for x in s.outputs} for s in stages[1:])]
        rule = manifest.resolve(c.accept.rule) if c.accept.rule else None
        if rule is not None and (rule.suffix != ".py" or not rule.is_file()):
            problems.append((f"cascades[{i}] ({c.name}).accept.rule", f"{rule} is not a Python file: name one that "
                             "defines accept(outputs)"))
            continue
        out.append(CascadeInfo(name=c.name, stages=c.stages, accept_output=c.accept.output,
                               min_confidence=c.accept.min_confidence, budget_ms=c.budget_ms,
                               inputs=first.inputs, outputs=common,
                               rule=(bundled_rule(c.name) if bundled else str(rule.resolve())) if rule else None))
    if problems:
        raise ManifestError(str(manifest.root / "inferstack.toml"), problems)
    return out


def model_version(manifest: Manifest, model: Model) -> str:
    """The model file's digest, with its handler's source where it has one (a changed handler is a new version)
    and its optimization settings where it has them (an INT8 build is another model than the float one)."""
    version = file_version(manifest.model_file(model))
    handler = manifest.handler_file(model)
    if handler is None and model.optimize is None:
        return version
    extra = (file_version(handler) if handler else "") + (model.optimize.model_dump_json() if model.optimize else "")
    return hashlib.sha256((version + extra).encode()).hexdigest()[:12]
