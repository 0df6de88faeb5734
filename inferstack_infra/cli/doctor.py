"""`inferstack doctor`: validate the manifest, size every Lambda package against the 250 MB limit, and show what
each model's build-time optimization did (sizes before and after, accuracy against the float model)."""

from __future__ import annotations

import argparse
from typing import Any

from inferstack.inference.exceptions import ModelLoadError
from inferstack.manifest import Manifest
from inferstack_infra.cli.common import fail, manifest


def cmd_doctor(args: argparse.Namespace) -> int:
    from inferstack.topology import FunctionSpec, functions, predict_function_key
    from inferstack_infra.catalog import build_catalog
    from inferstack_infra.optimize import OptimizationError
    from inferstack_infra.packaging import LAMBDA_MAX_UNZIPPED_BYTES, as_light, function_size

    loaded = manifest(args.manifest)
    try:
        catalog = build_catalog(loaded)
    except (ModelLoadError, OptimizationError) as exc:
        fail(str(exc), 2)
    print(f"manifest {args.manifest}: ok ({len(loaded.models)} model(s), {len(loaded.api.plans)} usage plan(s))")
    mb = 1024 * 1024
    optimizations(loaded)

    def report(spec: FunctionSpec, within: Manifest) -> int:
        code, layers = function_size(spec, within, catalog)
        total = code + layers
        flag = "ok" if total <= LAMBDA_MAX_UNZIPPED_BYTES else "TOO LARGE"
        print(f"{spec.key:<24}{code / mb:>8.1f}MB{layers / mb:>8.1f}MB{total / mb:>8.1f}MB   {flag}, "
              f"{(LAMBDA_MAX_UNZIPPED_BYTES - total) / mb:.0f} MB to spare")
        return total

    print(f"\n{'function':<24}{'code':>10}{'layers':>10}{'total':>10}   Lambda limit 250 MB (unzipped)")
    worst = max(report(spec, loaded) for spec in functions(loaded))
    if loaded.heavy_models:
        # What each heavy model's predict function would be with tier = "light": does it fit Lambda at all?
        light = as_light(loaded)
        print('\nheavy models, were they deployed with tier = "light":')
        for m in loaded.heavy_models:
            (spec,) = [f for f in functions(light) if f.key == predict_function_key(m.name)]
            report(spec, light)
    from inferstack_infra.cli.cdk import deploy_tools

    print(f"\ndeploy tools (inferstack synth|deploy):\n{deploy_tools(loaded)}")
    return 0 if worst <= LAMBDA_MAX_UNZIPPED_BYTES else 1


def optimizations(loaded: Manifest) -> None:
    """Each optimized model: its file before and after, and how far its answers drift from the float model's."""
    from inferstack_infra.optimize import optimization

    mb = 1024 * 1024
    for m in loaded.models:
        report = optimization(loaded, m)
        if report is None:
            continue
        print(f"\nmodel {m.name}: {report.recipe}: {report.source_bytes / mb:.1f} MB -> "
              f"{report.artifact_bytes / mb:.1f} MB ({(report.source_bytes - report.artifact_bytes) / mb:.1f} MB "
              f"smaller), accuracy gate max_drift {report.max_drift}: passed")
        for drift in report.drifts:
            print(f"  {drift.describe()} (drift {drift.drift:.4f})")
        if m.tier == "heavy" and m.optimize and m.optimize.quantize != "none":
            print("  note: dynamic INT8 quantization speeds up CPUs; on a GPU endpoint the CUDA provider may run "
                  "quantized operators on the host CPU instead: measure before deploying, or keep graph only")


def register(sub: Any) -> None:
    doctor = sub.add_parser("doctor", help="validate the manifest and size every Lambda package")
    doctor.add_argument("--manifest", default="inferstack.toml")
    doctor.set_defaults(func=cmd_doctor)
