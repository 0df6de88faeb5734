"""Which optional extra of the `inferstack` distribution brings a module: what to install when a command finds
one missing (the run time is always installed; the CDK app, the local twin and the model tools are extras)."""

from __future__ import annotations

import importlib.util

#: Top-level modules of each extra's packages (pyproject.toml's optional-dependencies).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "cdk": ("aws_cdk", "constructs", "cdk_nag", "jsii"),
    "local": ("uvicorn", "moto", "flask", "flask_cors", "jsonschema", "matplotlib", "uvloop", "httptools",
              "orjson"),
    "models": ("sklearn", "skl2onnx", "onnx", "safetensors", "tokenizers"),
}


def missing_extra(module: str | None) -> str | None:
    """The extra that provides `module` (a dotted name counts by its top level), or None."""
    top = (module or "").split(".")[0]
    return next((extra for extra, modules in EXTRA_MODULES.items() if top in modules), None)


def require(extra: str) -> list[str]:
    """The modules of `extra` that are not installed."""
    return [m for m in EXTRA_MODULES[extra] if m != "jsii" and importlib.util.find_spec(m) is None]
