"""Stages: one project deployed more than once (`inferstack deploy --stage dev`, `-c stage=dev`).

A stage renames the deployment `<name>-<stage>`: the stack and, since every resource's name derives from the
manifest's `name`, every resource, so that stages live side by side in one account and region.
"""

from __future__ import annotations

import re

from inferstack.manifest import Manifest, ManifestError

STAGE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,19}$")
#: CloudFormation's limit on a stack name (the manifest's `name` allows the same).
MAX_NAME = 64


def staged_name(name: str, stage: str | None) -> str:
    """`name`, or `name-stage`; raises ManifestError naming `stage` when it cannot be one."""
    if not stage:
        return name
    if not STAGE_PATTERN.match(stage):
        raise ManifestError("--stage", [("stage", f"{stage!r}: expected 1-20 lowercase letters, digits or hyphens, "
                                                  "e.g. dev or prod")])
    staged = f"{name}-{stage}"
    if len(staged) > MAX_NAME:
        raise ManifestError("--stage", [("stage", f"{staged!r} is longer than {MAX_NAME} characters: shorten the "
                                                  "manifest's name or the stage")])
    return staged


def with_stage(manifest: Manifest, stage: str | None) -> Manifest:
    return manifest.model_copy(update={"name": staged_name(manifest.name, stage)}) if stage else manifest
