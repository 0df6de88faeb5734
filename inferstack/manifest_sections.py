"""The manifest's sections and tier settings (`[api]`, `[jobs]`, `[batches]`, a light model's `cold_start`, a
heavy model's `instances` and `batching`): plain validated settings, re-exported by `inferstack.manifest`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Throttle(_Strict):
    """Token bucket: `rate` requests per second on average, bursts of up to `burst`."""

    rate: Annotated[float, Field(gt=0, le=10000)]
    burst: Annotated[int, Field(ge=1, le=5000)]


class Quota(_Strict):
    limit: Annotated[int, Field(ge=1)]
    period: Literal["DAY", "WEEK", "MONTH"]


class UsagePlan(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    throttle: Throttle
    quota: Quota | None = None
    #: Names of the API keys the CDK app creates for this plan (AWS generates their values);
    #: default: one key named `<plan>-key`.
    keys: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]] = Field(default_factory=list)


class ApiConfig(_Strict):
    throttle: Throttle = Throttle(rate=200, burst=400)
    plans: list[UsagePlan] = Field(
        default_factory=lambda: [UsagePlan(name="default", throttle=Throttle(rate=50, burst=100))])
    #: Largest request body accepted. Lambda's synchronous payload limit is 6 MB for the whole event, and the
    #: REST API passes every body base64-encoded (binary media type `*/*`, for the Open Inference Protocol's
    #: binary tensors): 4/3 of the body plus the event's envelope must fit, hence at most 4400 KB.
    max_body_kb: Annotated[int, Field(ge=1, le=4400)] = 4096
    #: Attach an AWS WAF web ACL (AWS managed common rules + IP rate limit) to the stage.
    waf: bool = False

    @field_validator("plans")
    @classmethod
    def _plans_unique(cls, plans: list[UsagePlan]) -> list[UsagePlan]:
        if not plans:
            raise ValueError("declare at least one [[api.plans]]: API keys are bound to usage plans")
        names = [p.name for p in plans]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"usage plan names must be unique; {', '.join(dupes)} appears more than once")
        return plans


class ColdStart(_Strict):
    """How a light model's function fights cold starts.

    `provisioned`: provisioned concurrency on the `live` alias, scaled between `min` and `max` by target
    tracking on its utilisation. `snapstart`: Lambda SnapStart on published versions (cannot be combined with
    provisioned concurrency). `none`: on-demand only.
    """

    mode: Literal["provisioned", "snapstart", "none"] = "none"
    min: Annotated[int, Field(ge=1, le=1000)] | None = None
    max: Annotated[int, Field(ge=1, le=1000)] | None = None
    target_utilization: Annotated[float, Field(gt=0.0, lt=1.0)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ColdStart:
        scaling = [f for f in ("min", "max", "target_utilization") if getattr(self, f) is not None]
        if self.mode != "provisioned" and scaling:
            hint = (
                "SnapStart cannot be combined with provisioned concurrency"
                if self.mode == "snapstart"
                else f"mode = {self.mode!r} uses no provisioned concurrency"
            )
            raise ValueError(
                f"{', '.join(scaling)} only apply to mode = 'provisioned'; {hint}: "
                f"remove {', '.join(scaling)} or set mode = 'provisioned'"
            )
        if self.mode == "provisioned":
            lo = self.min if self.min is not None else 1
            hi = self.max if self.max is not None else lo
            if hi < lo:
                raise ValueError(f"max ({hi}) must be >= min ({lo})")
        return self

    @property
    def min_instances(self) -> int:
        return self.min if self.min is not None else 1

    @property
    def max_instances(self) -> int:
        return self.max if self.max is not None else max(self.min_instances, 10)

    @property
    def utilization(self) -> float:
        return self.target_utilization if self.target_utilization is not None else 0.7


class Instances(_Strict):
    """A heavy model's instances. `min = 0` scales to zero when idle: the model is deployed as a SageMaker
    inference component (scale-out on demand, instances released by managed instance scaling), and while no
    instance is up `predict` answers 503 with `Retry-After` and jobs wait in their queue."""

    min: Annotated[int, Field(ge=0, le=100)] = 1
    max: Annotated[int, Field(ge=1, le=100)] = 1
    target_invocations_per_instance: Annotated[int, Field(ge=1)] = 100

    @model_validator(mode="after")
    def _ordered(self) -> Instances:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) must be >= min ({self.min})")
        return self

    @property
    def scales_to_zero(self) -> bool:
        return self.min == 0


class Batching(_Strict):
    max_batch_size: Annotated[int, Field(ge=1, le=4096)] = 32
    max_delay_ms: Annotated[float, Field(ge=0, le=1000)] = 5
    #: Model instances running batches side by side on a CPU instance type (`inferstack.heavy.instances`); on a
    #: GPU one. "auto": one per 1 to 4 vCPUs, at most 4.
    instances: Annotated[int, Field(ge=1, le=64)] | Literal["auto"] = "auto"


class WebhookConfig(_Strict):
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 8
    timeout_s: Annotated[float, Field(gt=0, le=30)] = 15
    #: First retry after about this long (full jitter), doubling per attempt, capped at SQS's 900 s delay.
    backoff_base_s: Annotated[float, Field(ge=0, le=900)] = 30


class JobsConfig(_Strict):
    """The asynchronous tier: one SQS queue (+ DLQ) and worker function per model."""

    batch_size: Annotated[int, Field(ge=1, le=10000)] = 10
    batching_window_s: Annotated[int, Field(ge=0, le=300)] = 0
    max_concurrency: Annotated[int, Field(ge=2, le=1000)] = 20
    max_receive_count: Annotated[int, Field(ge=1, le=1000)] = 3
    #: Submissions answer 429 once a model's queue holds more messages than this.
    max_queue_depth: Annotated[int, Field(ge=1)] = 10000
    result_ttl_days: Annotated[int, Field(ge=1, le=365)] = 7
    worker_timeout_s: Annotated[int, Field(ge=1, le=900)] = 60
    #: Default 6x the worker timeout (AWS's guidance for SQS event sources); never less.
    visibility_timeout_s: Annotated[int, Field(ge=1, le=43200)] | None = None
    webhook: WebhookConfig = WebhookConfig()

    @model_validator(mode="after")
    def _limits(self) -> JobsConfig:
        if self.visibility_timeout_s is not None and self.visibility_timeout_s < 6 * self.worker_timeout_s:
            raise ValueError(f"visibility_timeout_s ({self.visibility_timeout_s}) must be at least 6x "
                             f"worker_timeout_s ({6 * self.worker_timeout_s}), or a message is redelivered "
                             "while a worker still runs it")
        if self.batch_size > 10 and self.batching_window_s < 1:
            raise ValueError("batch_size above 10 needs batching_window_s >= 1 (an SQS event source rule)")
        return self

    @property
    def visibility_timeout(self) -> int:
        return self.visibility_timeout_s or 6 * self.worker_timeout_s


class BatchesConfig(_Strict):
    """Bulk scoring (`POST /v1/batches`): per light model a Step Functions Distributed Map over files in S3, per
    heavy model a state machine around a SageMaker Batch Transform job."""

    #: Rows each chunk (one child of the Distributed Map, one invocation of the model's batch function) scores;
    #: a request may ask for fewer or more. Peak memory of a chunk grows with it, not with the file.
    rows_per_chunk: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000
    #: Chunks scored at once (the Map's MaxConcurrency and the batch function's reserved concurrency); never
    #: more than a light model's own reserved_concurrency, so bulk work cannot starve real-time traffic.
    max_concurrency: Annotated[int, Field(ge=1, le=1000)] = 10
    #: Percentage of chunks that may fail (after their retries) without failing the batch.
    tolerated_failure_percentage: Annotated[float, Field(ge=0, le=100)] = 0
    #: Attempts per chunk: a crashed or throttled chunk is retried with exponential backoff and jitter.
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    #: The batch function's timeout: one chunk must be scored within it.
    chunk_timeout_s: Annotated[int, Field(ge=10, le=900)] = 300
    #: Buckets besides the stack's own batch bucket that batches may read their input from / write output to
    #: (the functions are granted exactly these; any other is refused at submit).
    input_buckets: list[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]] = Field(
        default_factory=list)
    output_buckets: list[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]] = Field(
        default_factory=list)
    #: A heavy model's Batch Transform job: instances (of the model's instance_type), requests in flight per
    #: instance, and the largest request body in MB (MaxPayloadInMB: many JSON lines per request).
    transform_instances: Annotated[int, Field(ge=1, le=100)] = 1
    transform_concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    max_payload_mb: Annotated[int, Field(ge=1, le=100)] = 6
