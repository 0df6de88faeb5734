"""`inferstack rollout status`: where each model's rollout stands, on `inferstack dev` or on the deployed stack.

    inferstack rollout status [--url URL] [--json]                  # the local stack (`dev --candidate ...`)
    inferstack rollout status --aws [--manifest FILE] [--region R]  # the deployed stack: read-only AWS calls

Both show, per model: the traffic split between the current and the new version, each version's requests, error
rate and p99 latency, and the decision (shifting, complete, rolled back, and why). On AWS it reads CodeDeploy's
last deployment of each light model (its deployment group, target and status), SageMaker's endpoint of each heavy
model (`DescribeEndpoint`: its status, pending deployment and last deployment config) and the per-version metrics
of the last 15 minutes from CloudWatch; it changes nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path
from typing import Any

import httpx

from inferstack.manifest import Manifest
from inferstack.observability.emf import LATENCY, NAMESPACE, REQUESTS, SERVICE, STATUS_5XX
from inferstack.topology import endpoint_name, rollout_application, rollout_group
from inferstack_infra.cli.common import DEFAULT_URL, DevState, fail, manifest, print_json
from inferstack_infra.local.rollout import STATUS_PATH

WINDOW = dt.timedelta(minutes=15)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def render(rollouts: list[dict[str, Any]]) -> str:
    if not rollouts:
        return "no rollout in progress (start one with `inferstack dev --candidate MODEL=FILE.onnx`)"
    lines = []
    for r in rollouts:
        split = r.get("split") or {}
        lines.append(f"{r['model']}: {r.get('strategy', '?')} {r['phase']} — current {split.get('current', '?')} % / "
                     f"new {split.get('candidate', '?')} %")
        for role, v in (r.get("versions") or {}).items():
            lines.append(f"  {role:<9} {v.get('version') or '?':<14} requests {v.get('requests') or 0:>7}  "
                         f"errors {_pct(v.get('error_rate')):>8}  p99 {_ms(v.get('p99_ms')):>10}")
        decision = r.get("decision")
        if decision:
            after = f" after {decision['after_s']:.2f} s" if decision.get("after_s") is not None else ""
            lines.append(f"  decision: {decision['outcome']}{after}: {decision.get('reason') or ''}".rstrip(": "))
    return "\n".join(lines)


def local_status(url: str) -> list[dict[str, Any]]:
    try:
        response = httpx.get(f"{url.rstrip('/')}{STATUS_PATH}", timeout=10)
    except httpx.HTTPError as exc:
        fail(f"cannot reach {url}: {exc} (is `inferstack dev` running? pass --url)")
    if response.status_code != 200:
        fail(f"{url} answered {response.status_code}: only `inferstack dev` reports rollouts this way "
             "(for a deployed stack pass --aws)")
    rollouts: list[dict[str, Any]] = response.json()["rollouts"]
    return rollouts


class AwsRollouts:
    """Read-only: CodeDeploy, SageMaker and CloudWatch clients (injectable for tests)."""

    def __init__(self, manifest: Manifest, *, codedeploy: Any, sagemaker: Any, cloudwatch: Any,
                 now: dt.datetime | None = None) -> None:
        self.manifest, self.codedeploy, self.sagemaker, self.cloudwatch = manifest, codedeploy, sagemaker, cloudwatch
        self.now = now or dt.datetime.now(dt.UTC)

    def status(self) -> list[dict[str, Any]]:
        out = [self.light(m.name) for m in self.manifest.light_models]
        out += [self.heavy(m.name) for m in self.manifest.heavy_models]
        return out

    def light(self, model: str) -> dict[str, Any]:
        group = rollout_group(self.manifest, model, "predict")
        found = self.codedeploy.list_deployments(applicationName=rollout_application(self.manifest),
                                                 deploymentGroupName=group).get("deployments", [])
        base = {"model": model, "tier": "light", "deployment_group": group}
        if not found:
            return {**base, "phase": "no deployment yet", "versions": self.versions(model)}
        info = self.codedeploy.get_deployment(deploymentId=found[0])["deploymentInfo"]
        split: dict[str, Any] = {}
        targets = self.codedeploy.list_deployment_targets(deploymentId=found[0]).get("targetIds", [])
        if targets:
            target = self.codedeploy.get_deployment_target(deploymentId=found[0], targetId=targets[0])
            fn = (target.get("deploymentTarget", {}).get("lambdaTarget", {}).get("lambdaFunctionInfo") or {})
            weight = fn.get("targetVersionWeight")
            if weight is not None:
                split = {"current": round(100 - weight * 100), "candidate": round(weight * 100),
                         "function_versions": [fn.get("currentVersion"), fn.get("targetVersion")]}
        status = info.get("status", "?")
        phase = {"Succeeded": "complete", "Stopped": "rolled-back", "Failed": "rolled-back"}.get(
            status, "shifting" if status in ("InProgress", "Created", "Queued", "Ready") else status)
        reason = (info.get("errorInformation") or {}).get("message") or \
            (info.get("rollbackInfo") or {}).get("rollbackMessage") or ""
        decision = None if phase == "shifting" else {"outcome": phase, "reason": reason or status,
                                                     "after_s": _seconds(info.get("createTime"),
                                                                         info.get("completeTime"))}
        return {**base, "deployment_id": found[0], "strategy": info.get("deploymentConfigName"), "phase": phase,
                "split": split, "versions": self.versions(model), "decision": decision}

    def heavy(self, model: str) -> dict[str, Any]:
        name = endpoint_name(self.manifest, model)
        try:
            info = self.sagemaker.describe_endpoint(EndpointName=name)
        except Exception as exc:  # not deployed (ValidationException), or no access: say so
            return {"model": model, "tier": "heavy", "endpoint": name, "phase": f"unknown: {exc}",
                    "versions": {}}
        status = info.get("EndpointStatus", "?")
        phase = {"InService": "complete", "Updating": "shifting", "SystemUpdating": "shifting",
                 "RollingBack": "rolling back", "UpdateRollbackFailed": "rollback failed"}.get(status, status)
        routing = (((info.get("LastDeploymentConfig") or {}).get("BlueGreenUpdatePolicy") or {})
                   .get("TrafficRoutingConfiguration") or {})
        failure = info.get("FailureReason")
        return {"model": model, "tier": "heavy", "endpoint": name, "phase": phase, "strategy": routing.get("Type"),
                "pending": info.get("PendingDeploymentSummary"), "versions": self.versions(model),
                "decision": {"outcome": "rolled-back", "reason": failure} if failure else None}

    def versions(self, model: str) -> dict[str, dict[str, Any]]:
        """Each version's requests, error rate and p99 over the last 15 minutes (the per-model metrics)."""
        listed = self.cloudwatch.list_metrics(Namespace=NAMESPACE, MetricName=REQUESTS,
                                              Dimensions=[{"Name": "model", "Value": model}]).get("Metrics", [])
        versions = sorted({d["Value"] for m in listed for d in m["Dimensions"] if d["Name"] == "version"})
        out: dict[str, dict[str, Any]] = {}
        for i, version in enumerate(versions):
            dims = [{"Name": "service", "Value": SERVICE}, {"Name": "model", "Value": model},
                    {"Name": "version", "Value": version}]

            def query(qid: str, name: str, stat: str, dims: list[dict[str, str]] = dims) -> dict[str, Any]:
                return {"Id": qid, "MetricStat": {"Metric": {"Namespace": NAMESPACE, "MetricName": name,
                                                             "Dimensions": dims},
                                                  "Period": int(WINDOW.total_seconds()), "Stat": stat}}

            data = self.cloudwatch.get_metric_data(
                MetricDataQueries=[query("r", REQUESTS, "Sum"), query("e", STATUS_5XX, "Sum"),
                                   query("p", LATENCY, "p99")],
                StartTime=self.now - WINDOW, EndTime=self.now)
            values = {r["Id"]: (r.get("Values") or [None])[0] for r in data.get("MetricDataResults", [])}
            requests = int(values.get("r") or 0)
            errors = int(values.get("e") or 0)
            out[f"v{i + 1}"] = {"version": version, "requests": requests, "errors": errors,
                                "error_rate": round(errors / requests, 4) if requests else None,
                                "p99_ms": values.get("p")}
        return out


def _seconds(start: Any, end: Any) -> float | None:
    if isinstance(start, dt.datetime) and isinstance(end, dt.datetime):
        return (end - start).total_seconds()
    return None


def cmd_rollout_status(args: argparse.Namespace) -> int:
    if args.aws:
        import boto3

        loaded = manifest(args.manifest or "inferstack.toml")
        session = boto3.Session(region_name=args.region or os.environ.get("AWS_REGION"))
        rollouts = AwsRollouts(loaded, codedeploy=session.client("codedeploy"),
                               sagemaker=session.client("sagemaker"), cloudwatch=session.client("cloudwatch")).status()
    else:
        url = args.url or os.environ.get("INFERSTACK_URL") or (DevState(Path.cwd()).read() or {}).get("url") or \
            DEFAULT_URL
        rollouts = local_status(url)
    if args.json:
        print_json({"rollouts": rollouts})
    else:
        print(render(rollouts))
    return 0


def register(sub: Any) -> None:
    rollout = sub.add_parser("rollout", help="model rollouts: where they stand")
    rollout_sub = rollout.add_subparsers(dest="rollout_command", required=True)
    status = rollout_sub.add_parser("status", help="the split, each version's requests, error rate and p99, and "
                                    "the decision")
    status.add_argument("--url", help="a running `inferstack dev` (default: the one started in this directory)")
    status.add_argument("--aws", action="store_true", help="the deployed stack instead (read-only AWS calls: "
                        "CodeDeploy, SageMaker DescribeEndpoint, CloudWatch metrics)")
    status.add_argument("--manifest", help="with --aws: the deployed manifest (default inferstack.toml)")
    status.add_argument("--region", help="with --aws: the stack's region (default: $AWS_REGION or your profile's)")
    status.add_argument("--json", action="store_true", help="print JSON instead of the table")
    status.set_defaults(func=cmd_rollout_status)
