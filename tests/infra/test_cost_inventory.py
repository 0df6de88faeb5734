"""The cost estimate's count of what bills by the month matches the synthesized templates, so that a change to
the constructs (an alarm more) cannot leave `inferstack cost` behind. (The scale-to-zero flavour's count is
checked in test_heavy_zero.py, beside its synthesized app.)"""

from __future__ import annotations

from typing import Any

from inferstack.manifest import load_manifest
from inferstack_infra.cost.inventory import target_tracking_policies, template_alarms
from tests.conftest import EXAMPLE_MANIFEST
from tests.infra.conftest import Synthesized


def counts(s: Synthesized) -> tuple[int, int, int]:
    found: dict[str, Any] = s.template.find_resources("AWS::ApplicationAutoScaling::ScalingPolicy")
    tracking = sum(1 for p in found.values() if p["Properties"]["PolicyType"] == "TargetTrackingScaling")
    return (len(s.template.find_resources("AWS::CloudWatch::Alarm")), tracking,
            len(s.template.find_resources("AWS::SecretsManager::Secret")))


def test_alarms_and_scaling_policies_of_the_example(example: Synthesized) -> None:
    manifest = load_manifest(EXAMPLE_MANIFEST)
    assert counts(example) == (sum(template_alarms(manifest).values()),
                               sum(target_tracking_policies(manifest).values()), 1)
