"""Safe model updates: rollouts (canary, linear, all at once) with automatic rollback, and A/B variants.

- `config`: the manifest's `rollout = {...}` (strategy, schedule, alarm thresholds) and `variants = [...]`, read
  by the CDK app (CodeDeploy and SageMaker deployment configurations, CloudWatch alarms) and the local twin.
- Every answer names the version that produced it (`x-model-version`), and the per-model metrics
  (`inferstack.observability`) carry it as their `version` dimension: the rollout alarms watch the new version
  alone.
"""

#: Every predict and infer answer names the model version that produced it.
MODEL_VERSION_HEADER = "x-model-version"
#: ... and, for a model with A/B variants, the variant.
MODEL_VARIANT_HEADER = "x-model-variant"

#: SageMaker passes a container's `X-Amzn-SageMaker-Custom-Attributes` answer header back to the caller.
CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"


def version_attribute(version: str) -> str:
    return f"version={version}"


def answered_version(custom_attributes: str | None) -> str | None:
    """`version=X` of SageMaker's custom attributes (`k=v` pairs separated by `;` or `,`)."""
    for part in (custom_attributes or "").replace(",", ";").split(";"):
        key, _, value = part.strip().partition("=")
        if key == "version" and value:
            return value
    return None
