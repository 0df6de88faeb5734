"""The widgets of the stack's CloudWatch dashboard, built from the manifest: a row of graphs per model (its
tier's metrics, its jobs and webhooks), and one for the API as a whole.

- the API: requests, 4xx, 5xx; latency p50/p95/p99; the composite alarms' states;
- a light model: latency p50/p95/p99 at API Gateway and in the function, the model's own time; requests, 4xx,
  5xx; throttles, concurrency, provisioned-concurrency utilisation; cold starts and validation failures by kind;
  rows per request, pre- and post-processing time;
- a heavy model: latency at API Gateway; invocations, 4xx, 5xx; model latency p50/p95/p99; instances and GPU
  utilisation; the container's batch sizes and queue depth;
- a model's jobs: queue depth, in flight and dead letters; age of the oldest message; queue wait and run time
  p50/p95/p99; jobs submitted, succeeded, failed;
- a model's webhooks: the success rate of the attempts; delivered, retried, given up.

The run-time metrics (`Latency`, `Rows`, `JobRunTime`, ...) are those of `inferstack.observability.emf`, by the
`service` (the deployment) and `model` dimensions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_sqs as sqs

from inferstack.manifest import Manifest, Model
from inferstack.observability import emf
from inferstack.topology import API_STAGE
from inferstack_infra.constructs.function import InferenceFunction

PERIOD = Duration.minutes(1)
#: What the metric filters on a heavy model's container log make of its metric lines' sums
#: (`ModelMetrics.summaries`): SageMaker does not extract EMF from a container's log.
CONTAINER_BATCH_ROWS, CONTAINER_BATCHES = "ContainerBatchRows", "ContainerBatches"
CONTAINER_BATCH_SIZE_MAX, CONTAINER_QUEUE_DEPTH_MAX = "ContainerBatchSizeMax", "ContainerQueueDepthMax"
CONTAINER_FILTERS = {  # metric name: the member of the container's metric line it reads
    CONTAINER_BATCH_ROWS: f"$.{emf.BATCH_SIZE}Sum", CONTAINER_BATCHES: f"$.{emf.BATCH_SIZE}Count",
    CONTAINER_BATCH_SIZE_MAX: f"$.{emf.BATCH_SIZE}Max", CONTAINER_QUEUE_DEPTH_MAX: f"$.{emf.QUEUE_DEPTH}Max"}
WIDTH, HEIGHT = 6, 6
PERCENTILES = ("p50", "p95", "p99")


@dataclass(frozen=True)
class ModelParts:
    """What the dashboard graphs for one model."""

    model: Model
    predict: InferenceFunction | None
    worker: InferenceFunction | None
    queue: sqs.IQueue | None
    dlq: sqs.IQueue | None
    endpoint: str | None = None
    component: str | None = None


def emf_metric(manifest: Manifest, model: str, name: str, statistic: str = "Sum", label: str | None = None
               ) -> cw.Metric:
    return cw.Metric(namespace=emf.NAMESPACE, metric_name=name, statistic=statistic, period=PERIOD,
                     dimensions_map={"service": manifest.name, "model": model}, label=label or f"{name} {statistic}")


def graph(title: str, left: Sequence[cw.IMetric], right: Sequence[cw.IMetric] = (), *, unit: str = "",
          right_unit: str = "") -> cw.GraphWidget:
    return cw.GraphWidget(title=title, left=list(left), right=list(right), width=WIDTH, height=HEIGHT,
                          left_y_axis=cw.YAxisProps(label=unit, show_units=False, min=0),
                          right_y_axis=cw.YAxisProps(label=right_unit, show_units=False, min=0))


def api_metric(api_name: str, name: str, statistic: str, *, resource: str | None = None, method: str = "POST",
               label: str | None = None) -> cw.Metric:
    dims = {"ApiName": api_name, "Stage": API_STAGE}
    if resource:
        dims.update(Resource=resource, Method=method)
    return cw.Metric(namespace="AWS/ApiGateway", metric_name=name, statistic=statistic, period=PERIOD,
                     dimensions_map=dims, label=label or f"{name} {statistic}")


def validation_failures(manifest: Manifest, model: str) -> cw.MathExpression:
    """Every kind's count, whichever kinds occurred (a search: the kinds are not known in advance)."""
    return cw.MathExpression(
        expression=f"SEARCH('{{{emf.NAMESPACE},kind,model,service}} MetricName=\"{emf.VALIDATION_FAILURES}\" "
                   f"model=\"{model}\" service=\"{manifest.name}\"', 'Sum', 60)",
        using_metrics={}, label="", period=PERIOD)


def api_row(manifest: Manifest, api_name: str, composites: list[cw.IAlarm]) -> list[cw.IWidget]:
    return [
        cw.TextWidget(markdown=f"## {manifest.name}: the API\nEvery route through API Gateway; the alarm states "
                               "are the per-model composites that page.", width=24, height=2),
        graph("API requests and errors", [api_metric(api_name, "Count", "Sum", label="requests")],
              [api_metric(api_name, "4XXError", "Sum", label="4xx"),
               api_metric(api_name, "5XXError", "Sum", label="5xx")], unit="requests/min", right_unit="errors/min"),
        graph("API latency (ms)", [api_metric(api_name, "Latency", p, label=f"latency {p}") for p in PERCENTILES]
              + [api_metric(api_name, "IntegrationLatency", "p99", label="integration p99")], unit="ms"),
        cw.AlarmStatusWidget(title="Alarms (composites)", alarms=composites, width=12, height=HEIGHT),
    ]


def light_row(manifest: Manifest, api_name: str, parts: ModelParts) -> list[cw.IWidget]:
    name, fn = parts.model.name, parts.predict
    assert fn is not None
    resource = f"/v1/models/{name}/predict"
    alias = fn.alias
    widgets: list[cw.IWidget] = [
        cw.TextWidget(markdown=f"## {name} (light: Lambda `{fn.spec.key}`)", width=24, height=1),
        graph(f"{name}: latency at API Gateway (ms)",
              [api_metric(api_name, "Latency", p, resource=resource, label=f"gateway {p}") for p in PERCENTILES],
              unit="ms"),
        graph(f"{name}: function duration and model time (ms)",
              [alias.metric_duration(statistic=p, period=PERIOD, label=f"duration {p}") for p in PERCENTILES],
              [emf_metric(manifest, name, emf.INFERENCE_LATENCY, p, label=f"inference {p}") for p in PERCENTILES],
              unit="ms", right_unit="ms"),
        graph(f"{name}: requests, 4xx, 5xx",
              [api_metric(api_name, "Count", "Sum", resource=resource, label="requests")],
              [api_metric(api_name, "4XXError", "Sum", resource=resource, label="4xx"),
               api_metric(api_name, "5XXError", "Sum", resource=resource, label="5xx")],
              unit="requests/min", right_unit="errors/min"),
        graph(f"{name}: throttles, concurrency, provisioned utilisation",
              [alias.metric_throttles(period=PERIOD, statistic="Sum", label="throttles"),
               fn.function.metric("ConcurrentExecutions", period=PERIOD, statistic="Maximum", label="concurrency")],
              [alias.metric("ProvisionedConcurrencyUtilization", period=PERIOD, statistic="Maximum",
                            label="provisioned utilisation")], unit="count", right_unit="share"),
        graph(f"{name}: cold starts and validation failures by kind",
              [emf_metric(manifest, name, emf.COLD_STARTS, label="cold starts")],
              [validation_failures(manifest, name)], unit="count", right_unit="failures"),
        graph(f"{name}: rows per request",
              [emf_metric(manifest, name, emf.ROWS, s, label=f"rows {s}") for s in ("Average", "Maximum")],
              [emf_metric(manifest, name, emf.PREPROCESS_LATENCY, "p99", label="pre-processing p99"),
               emf_metric(manifest, name, emf.POSTPROCESS_LATENCY, "p99", label="post-processing p99")],
              unit="rows", right_unit="ms"),
    ]
    return widgets


def heavy_row(manifest: Manifest, api_name: str, parts: ModelParts) -> list[cw.IWidget]:
    name = parts.model.name
    assert parts.endpoint is not None
    dims = {"InferenceComponentName": parts.component} if parts.component else {
        "EndpointName": parts.endpoint, "VariantName": "AllTraffic"}

    def sm(metric: str, statistic: str, label: str, namespace: str = "AWS/SageMaker") -> cw.Metric:
        return cw.Metric(namespace=namespace, metric_name=metric, dimensions_map=dims, statistic=statistic,
                         period=PERIOD, label=label)

    if parts.component:
        capacity: list[cw.IMetric] = [sm("GPUUtilizationNormalized", "Average", "GPU utilisation",
                                         "/aws/sagemaker/InferenceComponents")]
        copies: list[cw.IMetric] = [cw.MathExpression(
            expression="invocations / IF(per_copy > 0, per_copy, 1)", label="copies (invocations / per copy)",
            using_metrics={"invocations": sm("Invocations", "Sum", "invocations"),
                           "per_copy": sm("InvocationsPerCopy", "Sum", "per copy")}, period=PERIOD)]
    else:
        capacity = [sm("GPUUtilization", "Average", "GPU utilisation", "/aws/sagemaker/Endpoints")]
        copies = [cw.MathExpression(
            expression="invocations / IF(per_instance > 0, per_instance, 1)",
            label="instances (invocations / per instance)",
            using_metrics={"invocations": sm("Invocations", "Sum", "invocations"),
                           "per_instance": sm("InvocationsPerInstance", "Sum", "per instance")}, period=PERIOD)]
    return [
        cw.TextWidget(markdown=f"## {name} (heavy: SageMaker `{parts.endpoint}`, {parts.model.instance_type})",
                      width=24, height=1),
        graph(f"{name}: latency at API Gateway (ms)",
              [api_metric(api_name, "Latency", p, resource=f"/v1/models/{name}/predict", label=f"gateway {p}")
               for p in PERCENTILES], unit="ms"),
        graph(f"{name}: invocations, 4xx, 5xx", [sm("Invocations", "Sum", "invocations")],
              [sm("Invocation4XXErrors", "Sum", "4xx"), sm("Invocation5XXErrors", "Sum", "5xx")],
              unit="invocations/min", right_unit="errors/min"),
        graph(f"{name}: model latency (µs)", [sm("ModelLatency", p, f"model {p}") for p in PERCENTILES]
              + [sm("OverheadLatency", "p99", "overhead p99")], unit="µs"),
        graph(f"{name}: instances and GPU utilisation", copies, capacity, unit="instances", right_unit="%"),
        graph(f"{name}: batch sizes and queue depth (container)",
              [cw.MathExpression(expression="rows / IF(batches > 0, batches, 1)", label="batch rows mean",
                                 using_metrics={"rows": emf_metric(manifest, name, CONTAINER_BATCH_ROWS),
                                                "batches": emf_metric(manifest, name, CONTAINER_BATCHES)},
                                 period=PERIOD),
               emf_metric(manifest, name, CONTAINER_BATCH_SIZE_MAX, "Maximum", label="batch rows max")],
              [emf_metric(manifest, name, CONTAINER_QUEUE_DEPTH_MAX, "Maximum", label="waiting requests")],
              unit="rows", right_unit="requests"),
    ]


def jobs_row(manifest: Manifest, parts: ModelParts) -> list[cw.IWidget]:
    name = parts.model.name
    assert parts.queue is not None and parts.dlq is not None
    q, dlq = parts.queue, parts.dlq
    return [
        graph(f"{name} jobs: queue depth and dead letters",
              [q.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum", label="waiting"),
               q.metric_approximate_number_of_messages_not_visible(period=PERIOD, statistic="Maximum",
                                                                   label="in flight")],
              [dlq.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum",
                                                                 label="dead letters")],
              unit="messages", right_unit="messages"),
        graph(f"{name} jobs: age of the oldest message (s)",
              [q.metric_approximate_age_of_oldest_message(period=PERIOD, statistic="Maximum", label="oldest")],
              unit="s"),
        graph(f"{name} jobs: queue wait and run time (ms)",
              [emf_metric(manifest, name, emf.JOB_QUEUE_WAIT, p, label=f"queue wait {p}") for p in PERCENTILES],
              [emf_metric(manifest, name, emf.JOB_RUN_TIME, p, label=f"run {p}") for p in PERCENTILES],
              unit="ms", right_unit="ms"),
        graph(f"{name} jobs: submitted, succeeded, failed",
              [emf_metric(manifest, name, n, label=label) for n, label in (
                  (emf.JOBS_SUBMITTED, "submitted"), (emf.JOBS_SUCCEEDED, "succeeded"), (emf.JOBS_FAILED, "failed"))],
              unit="jobs/min"),
    ]


def webhooks_row(manifest: Manifest, model: str) -> list[cw.IWidget]:
    metrics = {key: emf_metric(manifest, model, n) for key, n in (
        ("attempts", emf.WEBHOOK_ATTEMPTS), ("delivered", emf.WEBHOOK_DELIVERED),
        ("retried", emf.WEBHOOK_RETRIED), ("gaveup", emf.WEBHOOK_GAVE_UP))}
    rate = cw.MathExpression(expression="100 * delivered / attempts", label="success rate %",
                             using_metrics={"delivered": metrics["delivered"], "attempts": metrics["attempts"]},
                             period=PERIOD)
    return [graph(f"{model} webhooks: success rate and outcomes", [rate],
                  [emf_metric(manifest, model, emf.WEBHOOK_DELIVERED, label="delivered"),
                   emf_metric(manifest, model, emf.WEBHOOK_RETRIED, label="retried"),
                   emf_metric(manifest, model, emf.WEBHOOK_GAVE_UP, label="gave up")],
                  unit="%", right_unit="attempts/min")]


def answers_graph(manifest: Manifest, name: str, title: str) -> cw.GraphWidget:
    """How a model's (or a cascade's) answers were made: from the result cache, by escalation, degraded."""
    return graph(title, [emf_metric(manifest, name, n, label=label) for n, label in (
        (emf.CACHE_HITS, "cache hits"), (emf.CACHE_MISSES, "cache misses"))],
        [emf_metric(manifest, name, n, label=label) for n, label in (
            (emf.ESCALATED_ROWS, "escalated rows"), (emf.DEGRADED, "degraded answers"),
            (emf.CIRCUIT_OPEN, "refused by an open circuit"))], unit="answers/min", right_unit="per min")


def model_rows(manifest: Manifest, api_name: str, parts: ModelParts) -> list[list[cw.IWidget]]:
    name = parts.model.name
    tier = light_row(manifest, api_name, parts) if parts.model.tier == "light" else \
        heavy_row(manifest, api_name, parts)
    return [tier, [*jobs_row(manifest, parts)],
            [*webhooks_row(manifest, name), answers_graph(manifest, name, f"{name}: cache, escalations, degraded")]]


def cascade_rows(manifest: Manifest, api_name: str) -> list[list[cw.IWidget]]:
    """A row per cascade: its route's latency at API Gateway and how its answers were made."""
    rows: list[list[cw.IWidget]] = []
    for c in manifest.cascades:
        resource = f"/v1/cascades/{c.name}/predict"
        rows.append([
            cw.TextWidget(markdown=f"## cascade {c.name}", width=24, height=1),
            graph(f"cascade {c.name}: latency at API Gateway (ms)",
                  [api_metric(api_name, "Latency", p, resource=resource, label=f"gateway {p}") for p in PERCENTILES],
                  [api_metric(api_name, "Count", "Sum", resource=resource, label="requests")],
                  unit="ms", right_unit="requests/min"),
            answers_graph(manifest, c.name, f"cascade {c.name}: cache, escalations, degraded")])
    return rows
