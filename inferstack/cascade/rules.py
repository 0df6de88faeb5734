"""Custom acceptance rules: `accept = { rule = "cascades/digits_rule.py" }` names a Python file defining

    def accept(outputs: dict[str, numpy.ndarray]) -> numpy.ndarray   # one bool per row: the answer stands

It is loaded once per execution environment, like a model's handler."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from inferstack.cascade.runner import Rule


def load_rule(path: Path) -> Rule:
    spec = importlib.util.spec_from_file_location(f"inferstack_rule_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load the acceptance rule {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rule = getattr(module, "accept", None)
    if not callable(rule):
        raise RuntimeError(f"{path} defines no accept(outputs) function")
    return rule  # type: ignore[no-any-return]
