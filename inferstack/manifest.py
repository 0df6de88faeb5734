"""The deployment manifest (`inferstack.toml`): one schema shared by the CDK app and `inferstack dev`.

`load_manifest(path)` returns a validated `Manifest` or raises `ManifestError`, whose message names every
offending field by its path in the file (`models[0] (iris).cold_start.min`) and says what to do.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from inferstack.cache.config import CacheConfig
from inferstack.cascade.budget import MAX_BUDGET_MS
from inferstack.cascade.config import Cascade, Circuit, check_cascades
from inferstack.manifest_schema import check_schema
from inferstack.manifest_sections import (
    ApiConfig,
    BatchesConfig,
    Batching,
    ColdStart,
    Instances,
    JobsConfig,
    Quota,
    Throttle,
    UsagePlan,
    WebhookConfig,
    _Strict,
)
from inferstack.observability.alerts import Alerts
from inferstack.optimize.config import Optimize
from inferstack.rollout.config import Rollout, Variant, check_heavy_rollout, check_variants

#: The sections and tier settings live in inferstack.manifest_sections; importing them from here keeps working.
__all__ = ["API_GATEWAY_TIMEOUT_S", "ApiConfig", "BatchesConfig", "Batching", "ColdStart", "Instances", "JobsConfig",
           "Manifest", "ManifestError", "Model", "Quota", "Throttle", "UsagePlan", "WebhookConfig", "load_manifest",
           "parse_manifest", "resource_id"]

MODEL_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,39}$"
LAMBDA_MAX_MEMORY_MB = 10240
API_GATEWAY_TIMEOUT_S = 29

#: Fields that only make sense on one tier: a model on the other tier that sets one is rejected.
LIGHT_ONLY_FIELDS = ("memory_mb", "timeout_s", "reserved_concurrency", "cold_start")
#: SageMaker real-time instance families with NVIDIA GPUs.
GPU_INSTANCE = re.compile(r"^ml\.(g4dn|g5|g6|g6e|gr6|g7e|p3|p3dn|p4d|p4de|p5|p5e|p5en|p6-b200)\.\d*x?large$")
HEAVY_ONLY_FIELDS = ("instance_type", "instances", "batching", "image_uri", "fallback", "circuit")


class ManifestError(ValueError):
    """The manifest is unreadable or invalid; `problems` holds one `(field path, message)` per finding."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {where}: {what}" for where, what in problems)
        super().__init__(f"{source} is not a valid inferstack manifest:\n{lines}")


class Model(_Strict):
    name: Annotated[str, Field(pattern=MODEL_NAME_PATTERN)]
    #: The model file; left out when `variants` name the files.
    path: Path | None = None
    tier: Literal["light", "heavy"]
    #: A Python module with the model's pre- and post-processing (`inferstack.inference.handlers`); its
    #: directory is packaged with it.
    handler: Path | None = None
    #: Shown in responses; defaults to the first 12 hex digits of the file's SHA-256.
    version: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")] | None = None
    #: Accept NaN and +/-inf in inputs (rejected with 422 by default).
    allow_non_finite: bool = False
    #: Inputs that requests may send at different lengths along their named (symbolic) axes, and the value to pad
    #: them with, so that such requests still run as one batch (`inferstack.inference.ragged`). Declare only when
    #: padding leaves the answer for the real positions unchanged (a transformer under its attention mask).
    pad: dict[Annotated[str, Field(min_length=1)], int | float] | None = None
    #: Per-route throttle on this model's predict route (in addition to the stage and plan throttles).
    throttle: Throttle | None = None
    #: p99 latency (ms) the model's callers can accept: `inferstack advise` picks the cheapest tier that meets it.
    latency_budget_ms: Annotated[int, Field(ge=1, le=3_600_000)] | None = None
    #: Build-time quantization and graph optimization, gated by accuracy (`inferstack.optimize.config`).
    optimize: Optimize | None = None
    #: How a new version takes over (`inferstack.rollout.config`), and A/B variants with fixed weights.
    rollout: Rollout = Rollout()
    variants: list[Variant] | None = None
    #: Result cache (`inferstack.cache.config`), opt-in.
    cache: CacheConfig | None = None
    #: Default latency budget of a request (`x-latency-budget-ms` overrides); a heavy model's endpoint call gets
    #: what is left of it as its timeout (`inferstack.cascade.config`).
    budget_ms: Annotated[int, Field(ge=1, le=MAX_BUDGET_MS)] | None = None
    # light tier
    memory_mb: Annotated[int, Field(ge=128, le=LAMBDA_MAX_MEMORY_MB)] = 1024
    timeout_s: Annotated[int, Field(ge=1, le=API_GATEWAY_TIMEOUT_S)] = 10
    reserved_concurrency: Annotated[int, Field(ge=1)] | None = None
    cold_start: ColdStart = ColdStart()
    # heavy tier
    instance_type: str | None = None
    instances: Instances = Instances()
    batching: Batching = Batching()
    image_uri: str | None = None
    #: A light model that answers (marked degraded) while the endpoint's circuit is open or the budget is spent.
    fallback: str | None = None
    circuit: Circuit = Circuit()

    @model_validator(mode="before")
    @classmethod
    def _fields_match_tier(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        tier = data.get("tier")
        wrong = {"light": HEAVY_ONLY_FIELDS, "heavy": LIGHT_ONLY_FIELDS}.get(str(tier), ())
        misplaced = [f for f in wrong if f in data]
        if misplaced:
            other = "heavy" if tier == "light" else "light"
            raise ValueError(
                f"{', '.join(misplaced)} only apply to tier = {other!r}; this model has tier = {tier!r}: "
                f"remove {', '.join(misplaced)} or set tier = {other!r}"
            )
        return data

    @field_validator("variants")
    @classmethod
    def _variants(cls, variants: list[Variant] | None) -> list[Variant] | None:
        return check_variants(variants) if variants is not None else None

    @model_validator(mode="after")
    def _consistent(self) -> Model:
        if (self.path is None) == (self.variants is None):
            raise ValueError("set either path (one model file) or variants (A/B: several files with weights)"
                             if self.path is None else "path and variants exclude each other: with variants, "
                             "each variant names its file; remove path")
        if self.variants is not None and (self.optimize is not None or self.instances.scales_to_zero):
            raise ValueError("variants are served as they are (no optimize) and, on the heavy tier, as production "
                             "variants of an always-on endpoint (instances.min >= 1): remove one or the other")
        if self.tier == "heavy":
            check_heavy_rollout(self.rollout)
        if self.tier == "heavy" and not self.instance_type:
            raise ValueError("a heavy model needs instance_type, a SageMaker GPU instance such as 'ml.g5.xlarge'")
        if self.instance_type and not GPU_INSTANCE.match(self.instance_type):
            raise ValueError(f"instance_type {self.instance_type!r} is not a SageMaker GPU instance; use one of the "
                             "GPU families ml.g4dn, ml.g5, ml.g6, ml.g6e, ml.p3, ml.p4d, ml.p5 (e.g. 'ml.g5.xlarge')")
        pc = self.cold_start
        if self.reserved_concurrency is not None and pc.mode == "provisioned" \
                and self.reserved_concurrency < pc.max_instances:
            raise ValueError(f"reserved_concurrency ({self.reserved_concurrency}) must be at least cold_start.max "
                             f"({pc.max_instances}): provisioned concurrency is carved out of the reserved "
                             "concurrency; raise reserved_concurrency or lower cold_start.max")
        return self


class Manifest(_Strict):
    #: The CloudFormation stack name and the prefix of every resource.
    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9-]{0,63}$")] = "inferstack"
    api: ApiConfig = ApiConfig()
    jobs: JobsConfig = JobsConfig()
    alerts: Alerts = Alerts()
    batches: BatchesConfig = BatchesConfig()
    models: list[Model]
    cascades: list[Cascade] = Field(default_factory=list)
    #: Directory the relative model paths are resolved against (the manifest's own directory).
    root: Annotated[Path, Field(exclude=True)] = Path(".")

    @field_validator("models")
    @classmethod
    def _unique_models(cls, models: list[Model]) -> list[Model]:
        if not models:
            raise ValueError("declare at least one [[models]] table")
        names = [m.name for m in models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique; {', '.join(dupes)} appears more than once: rename one")
        return models

    @model_validator(mode="after")
    def _cascades(self) -> Manifest:
        check_cascades(self.models, self.cascades)
        ab = sorted({s for c in self.cascades for s in c.stages for m in self.models if m.name == s and m.variants})
        if ab:
            raise ValueError(f"cascade stages run one model file; {', '.join(ab)} has A/B variants: cascade a model "
                             "with one path")
        return self

    def model_file(self, model: Model) -> Path:
        """The model's file (for A/B variants: the first variant's, which gives the signature)."""
        path = model.path if model.path is not None else (model.variants or [])[0].path
        return self.resolve(path)

    def variant_files(self, model: Model) -> dict[str, Path]:
        return {v.name: self.resolve(v.path) for v in model.variants or []}

    def resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else (self.root / path)

    def handler_file(self, model: Model) -> Path | None:
        if model.handler is None:
            return None
        return model.handler if model.handler.is_absolute() else (self.root / model.handler)

    def model(self, name: str) -> Model:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    @property
    def light_models(self) -> list[Model]:
        return [m for m in self.models if m.tier == "light"]

    def batch_concurrency(self, model: Model) -> int:
        """Chunks of one batch scored at once: the manifest's `batches.max_concurrency`, bounded by a light
        model's reserved concurrency (what real-time traffic is promised) and a heavy model's instance count
        times its batch size (more would only queue on the endpoint)."""
        limit = self.batches.max_concurrency
        if model.tier == "light" and model.reserved_concurrency is not None:
            limit = min(limit, model.reserved_concurrency)
        if model.tier == "heavy":
            limit = min(limit, model.instances.max * 2)
        return max(1, limit)

    @property
    def heavy_models(self) -> list[Model]:
        return [m for m in self.models if m.tier == "heavy"]


def _field_path(loc: Iterable[int | str], raw: dict[str, Any]) -> str:
    """Render a pydantic location as the path a user sees in TOML: `models[0] (iris).cold_start.min`."""
    out = ""
    node: Any = raw
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                out += f" ({node['name']})"
        else:
            if part.startswith("function-"):  # a validator's name, not a field
                continue
            out += f".{part}" if out else part
            node = node.get(part) if isinstance(node, dict) else None
    return out or "(top level)"


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key: remove it or check its spelling"
    if kind == "missing":
        return "required: add it"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def parse_manifest(raw: dict[str, Any], *, root: Path = Path("."), source: str = "manifest",
                   check_files: bool = True) -> Manifest:
    raw, problems = check_schema(raw)
    if problems:  # another schema's fields would only add confusing findings
        raise ManifestError(source, problems)
    try:
        manifest = Manifest.model_validate({**raw, "root": root})
    except ValidationError as exc:
        problems = [(_field_path(e["loc"], raw), _message(e)) for e in exc.errors()]
        raise ManifestError(source, problems) from None
    if check_files:
        missing = [
            (f"models[{i}] ({m.name}).path", f"file {manifest.model_file(m)} does not exist: "
             "build it (your project's model build; in inferstack's repository `make models`) or fix the path")
            for i, m in enumerate(manifest.models)
            if m.path is not None and not manifest.model_file(m).is_file()
        ]
        missing += [(f"models[{i}] ({m.name}).variants[{j}] ({v.name}).path", f"file {manifest.resolve(v.path)} does "
                     "not exist: build it or fix the path")
                    for i, m in enumerate(manifest.models) for j, v in enumerate(m.variants or [])
                    if not manifest.resolve(v.path).is_file()]
        missing += _handler_problems(manifest)
        if missing:
            raise ManifestError(source, missing)
    return manifest


def _handler_problems(manifest: Manifest) -> list[tuple[str, str]]:
    """A handler must exist, be a Python file, and live in a directory of its own: the whole directory is
    packaged with the model, so it must not be the project's root nor hold another model's file."""
    problems = []
    for i, m in enumerate(manifest.models):
        handler = manifest.handler_file(m)
        if handler is None:
            continue
        where = f"models[{i}] ({m.name}).handler"
        if handler.suffix != ".py":
            problems.append((where, f"{handler} is not a Python file: name a module such as "
                                    f"'models/{m.name}/handler.py'"))
        elif not handler.is_file():
            problems.append((where, f"file {handler} does not exist: create it or fix the path"))
            continue
        directory = handler.resolve().parent
        if directory == manifest.root.resolve():
            problems.append((where, "the handler's directory is packaged with the model, so it needs a directory "
                                    f"of its own: move it to models/{m.name}/handler.py"))
            continue
        others = [o.name for o in manifest.models
                  if o.name != m.name and directory in manifest.model_file(o).resolve().parents]
        if others:
            problems.append((where, f"the handler's directory {directory} is packaged with the model, but it also "
                                    f"holds the model file of {', '.join(others)}: give the handler a directory "
                                    "of its own"))
    return problems


def load_manifest(path: str | Path, *, check_files: bool = True) -> Manifest:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(str(path), [("(file)", "not found: pass --manifest or create inferstack.toml")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(str(path), [("(syntax)", f"not valid TOML: {exc}")]) from None
    return parse_manifest(raw, root=path.resolve().parent, source=str(path), check_files=check_files)


def resource_id(name: str) -> str:
    """`iris-v2` -> `IrisV2`: a CloudFormation-friendly logical id fragment."""
    return "".join(p.capitalize() for p in re.split(r"[^A-Za-z0-9]", name) if p)
