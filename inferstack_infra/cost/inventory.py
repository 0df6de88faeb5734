"""What a deployment pays for whatever its traffic: the resources the CDK app creates that bill by the month.

Read from the same topology the CDK app builds from (`inferstack.topology`), so they follow the manifest;
`tests/infra` checks the alarm count against a synthesized template.
"""

from __future__ import annotations

from dataclasses import dataclass

from inferstack.manifest import Manifest
from inferstack.topology import functions, queues
from inferstack_infra.cost.profile import HOURS_PER_MONTH

SHARED = "(shared)"
#: Alarms the constructs create: per function (errors, throttles, p99 duration), on the REST API (5XX, p99
#: latency), per queue (oldest message, or depth for a dead-letter queue), per heavy endpoint (p99 model
#: latency, 5XX) and a scale-to-zero model's wake alarm (NoCapacityInvocationFailures).
FUNCTION_ALARMS = 3
API_ALARMS = 2
QUEUE_ALARMS = 1
ENDPOINT_ALARMS = 2
WAKE_ALARMS = 1
#: Application Auto Scaling creates two alarms (high, low) for each target-tracking policy.
TARGET_TRACKING_ALARMS = 2
#: An SQS event source mapping long-polls its queue all the time, traffic or not: Lambda reads a queue with
#: at least five pollers (its SQS event source documentation), and an idle poller makes a ReceiveMessage call
#: per 20 s long poll. An assumption: AWS does not publish the idle rate.
ESM_POLLERS = 5
ESM_WAIT_S = 20
ESM_IDLE_RECEIVES = ESM_POLLERS * HOURS_PER_MONTH * 3600 / ESM_WAIT_S


@dataclass(frozen=True)
class Fixed:
    owner: str
    meter: str
    quantity: float
    note: str


def template_alarms(manifest: Manifest) -> dict[str, int]:
    """The CloudWatch alarms in the template, by owner (a model, or SHARED)."""
    out: dict[str, int] = {}

    def add(owner: str | None, n: int) -> None:
        out[owner or SHARED] = out.get(owner or SHARED, 0) + n

    for spec in functions(manifest):
        add(spec.model, FUNCTION_ALARMS)
    add(None, API_ALARMS)
    for q in queues(manifest):
        add(q.model or _dlq_model(q.key, manifest), QUEUE_ALARMS)
    for m in manifest.heavy_models:
        add(m.name, ENDPOINT_ALARMS * len(m.variants or [None]) + (WAKE_ALARMS if m.instances.scales_to_zero else 0))
    for m in manifest.models:  # the rollout alarms on each model's new version (constructs/rollout.py)
        add(m.name, len(m.rollout.thresholds(latency_budget_ms=m.latency_budget_ms, timeout_s=m.timeout_s)))
    return out


def target_tracking_policies(manifest: Manifest) -> dict[str, int]:
    """Target-tracking scaling policies, by model: provisioned concurrency of a light model, a heavy model's
    instances (or copies)."""
    return {m.name: len(m.variants or [None]) if m.tier == "heavy" else 1 for m in manifest.models
            if m.tier == "heavy" or (m.tier == "light" and m.cold_start.mode == "provisioned")}


def _dlq_model(key: str, manifest: Manifest) -> str | None:
    return next((m.name for m in manifest.models if key == f"jobs-{m.name}-dlq"), None)


def fixed_usage(manifest: Manifest) -> list[Fixed]:
    out = [Fixed(SHARED, "secrets.secrets", 1, "the webhook signing secret")]
    for owner, n in template_alarms(manifest).items():
        out.append(Fixed(owner, "cloudwatch.alarms", n, f"{n} alarms"))
    for owner, n in target_tracking_policies(manifest).items():
        out.append(Fixed(owner, "cloudwatch.alarms", n * TARGET_TRACKING_ALARMS, "target tracking's alarms"))
    for q in queues(manifest):
        if q.function:
            out.append(Fixed(q.model or _dlq_model(q.key, manifest) or SHARED, "sqs.requests", ESM_IDLE_RECEIVES,
                             f"{q.key}: the event source's long polls"))
    return out
