"""What AWS meters each month for one model, from its settings, its traffic and its measured durations.

Every path a request takes is counted where it runs: predict (API Gateway, the model's function or the heavy
proxy and its SageMaker endpoint), jobs (submit and result reads on the API function, the queue, the worker,
the table, the webhook), and what each writes to CloudWatch Logs and X-Ray. The figures that cannot be
measured here are named constants below, each with its reason; they are the estimate's assumptions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from inferstack.jobs.schemas import INLINE_INPUT_BYTES
from inferstack.jobs.service import DEPTH_CACHE_S
from inferstack.jobs.store import INLINE_RESULT_BYTES
from inferstack.jobs.webhooks import INLINE_WEBHOOK_RESULT_BYTES, SECRET_CACHE_S
from inferstack.manifest import JobsConfig, Model
from inferstack_infra.cost.profile import DAYS_PER_MONTH, HOURS_PER_MONTH, Measured, Traffic

# -- Lambda ---------------------------------------------------------------------------------------------------
#: Lambda gives a function one full vCPU at 1,769 MB, and CPU in proportion below that (AWS's Lambda docs). The
#: durations are measured on one thread, so a function with less memory runs them slower by that ratio.
VCPU_MB = 1769
#: An idle execution environment is reclaimed after some minutes (AWS does not publish how long: assumed 10),
#: and a busy one is recycled after a few hours (assumed 2): both end in a cold start.
IDLE_RECLAIM_S = 600.0
ENVIRONMENT_LIFETIME_S = 7200.0
#: Bytes of CloudWatch Logs per invocation: the START, END and REPORT lines (the handlers log nothing per
#: request on the happy path), and the REST API's JSON access log line per request.
INVOCATION_LOG_BYTES = 350
ACCESS_LOG_BYTES = 550
#: Months the log groups keep their logs (the constructs: one month for functions, three for access logs).
FUNCTION_LOG_MONTHS = 1.0
ACCESS_LOG_MONTHS = 3.0
#: X-Ray's default sampling rule: the first request each second, and 5% of the others.
XRAY_RESERVOIR_PER_S = 1.0
XRAY_RATE = 0.05

# -- heavy tier -------------------------------------------------------------------------------------------------
#: The heavy proxy's own time around the endpoint call (signing, the HTTPS call within the region, re-encoding).
PROXY_OVERHEAD_S = 0.008
#: Scale to zero: an inference component goes to zero copies after 15 minutes of idle datapoints (its target
#: tracking's low alarm) and its instance is released some minutes later; one measured cycle on ml.g5.xlarge
#: took 11 and then 12 minutes. The way back: about a minute for the alarm, then an instance to provision and
#: the container to pull and load (AWS's example of scaling out from zero measured 5.03 minutes in all).
SCALE_IN_TAIL_S = 23 * 60.0
WAKE_S = 5 * 60.0
WAKE_BILLED_S = 4 * 60.0

# -- jobs tier --------------------------------------------------------------------------------------------------
#: The API function's time for one jobs call (a few DynamoDB and SQS round trips).
API_CALL_S = 0.025
#: Each job's result is read once (a client that fetches it after its webhook, or one poll), and every job
#: names a webhook.
RESULT_READS_PER_JOB = 1.0
#: The worker's AWS calls per batch (a conditional claim per job, the writes, the webhook hand-over), and one
#: webhook delivery (an HTTPS POST to the receiver).
WORKER_OVERHEAD_S = 0.04
WEBHOOK_DELIVERY_S = 0.15
#: How long the event source gathers messages before invoking (it returns what one long poll finds).
BATCH_GATHER_S = 0.5


@dataclass(frozen=True)
class Line:
    """A quantity of one meter, used by one model (or shared)."""

    owner: str
    meter: str
    quantity: float
    note: str = ""
    #: The instance type, for SageMaker instance-hours.
    variant: str | None = None


def cpu_factor(memory_mb: float) -> float:
    return max(1.0, VCPU_MB / memory_mb)


def billed_s(seconds: float) -> float:
    """Lambda bills duration in whole milliseconds, rounded up."""
    return math.ceil(round(seconds * 1000, 6)) / 1000


def cold_starts(traffic: Traffic, rps: float, duration_s: float) -> float:
    """Cold starts a month of a function invoked `rps` times a second while the model is active: requests that
    follow a gap longer than IDLE_RECLAIM_S (Poisson arrivals), the first of each day after an idle stretch,
    and environments recycled while busy."""
    if rps <= 0:
        return 0.0
    window = traffic.hours_per_day * 3600
    busy = 1 - math.exp(-rps * IDLE_RECLAIM_S)
    environments = max(1, math.ceil(rps * duration_s))
    per_day = (rps * window * math.exp(-rps * IDLE_RECLAIM_S) + (1 if traffic.idle_stretch else 0)
               + environments * busy * window / ENVIRONMENT_LIFETIME_S)
    return min(per_day * DAYS_PER_MONTH, rps * traffic.active_seconds)


def sampled_traces(rps: float, active_s: float) -> float:
    return (min(rps, XRAY_RESERVOIR_PER_S) + XRAY_RATE * max(0.0, rps - XRAY_RESERVOIR_PER_S)) * active_s


def request_logs(owner: str, requests: float, *, access_log: bool) -> list[Line]:
    function_gb = requests * INVOCATION_LOG_BYTES / 1024**3
    access_gb = requests * ACCESS_LOG_BYTES / 1024**3 if access_log else 0.0
    return [Line(owner, "cloudwatch.logs_ingested", function_gb + access_gb, "function and access logs"),
            Line(owner, "cloudwatch.logs_stored", function_gb * FUNCTION_LOG_MONTHS + access_gb * ACCESS_LOG_MONTHS,
                 "kept one month (functions) and three (access logs)")]


def lambda_duration(measured: Measured, memory_mb: float) -> float:
    return measured.warm_s * cpu_factor(memory_mb)


def light_predict(model: Model, traffic: Traffic, measured: Measured) -> list[Line]:
    """A light model's predict route: API Gateway, its function, with its cold-start setting."""
    owner, n = model.name, traffic.predict_requests
    rps = traffic.rps * (1 - traffic.jobs_share)
    gb = model.memory_mb / 1024
    duration = billed_s(lambda_duration(measured, model.memory_mb))
    init = measured.init_s * cpu_factor(model.memory_mb)
    out = [Line(owner, "apigw.requests", n), Line(owner, "lambda.requests", n, "predict")]
    mode = model.cold_start.mode
    if mode == "provisioned":
        pc = model.cold_start
        concurrency = rps * duration
        active = min(pc.max_instances, max(pc.min_instances, math.ceil(concurrency / pc.utilization)))
        hours = DAYS_PER_MONTH * (traffic.hours_per_day * active + (24 - traffic.hours_per_day) * pc.min_instances)
        spill = max(0.0, concurrency - pc.max_instances) / concurrency if concurrency else 0.0
        recycled = hours * 3600 / ENVIRONMENT_LIFETIME_S  # provisioned environments re-initialise now and then
        out += [Line(owner, "lambda.provisioned_gb_seconds", gb * hours * 3600,
                     f"provisioned concurrency {pc.min_instances} (idle) to {active} (active)"),
                Line(owner, "lambda.provisioned_duration_gb_seconds",
                     gb * (n * (1 - spill) * duration + recycled * init), "invocations served by it"),
                Line(owner, "lambda.gb_seconds", gb * n * spill * duration, "beyond provisioned concurrency")]
    else:
        cold = cold_starts(traffic, rps, duration)
        out.append(Line(owner, "lambda.gb_seconds", gb * n * duration, "predict duration"))
        if mode == "snapstart":
            out += [Line(owner, "lambda.snapstart_cache_gb_seconds", gb * HOURS_PER_MONTH * 3600,
                         "one published version cached"),
                    Line(owner, "lambda.snapstart_restore_gb", gb * cold, f"{cold:.0f} restores")]
        else:
            out.append(Line(owner, "lambda.gb_seconds", gb * cold * init, f"{cold:.0f} cold starts' init, billed"))
    return out + _request_tail(owner, traffic, n, rps)


def _request_tail(owner: str, traffic: Traffic, n: float, rps: float) -> list[Line]:
    """What every synchronous request adds: logs, traces and the answer's transfer out."""
    return [*request_logs(owner, n, access_log=True),
            Line(owner, "xray.traces", sampled_traces(rps, traffic.active_seconds)),
            Line(owner, "transfer.out", n * traffic.payload_kb / 1024**2, "answers")]


def endpoint_s(model: Model, measured: Measured) -> float:
    """An endpoint call's time: the model's time (the CPU measurement, an upper bound for the GPU), the dynamic
    batcher's delay (a lone request waits all of it) and the proxy's own."""
    return measured.warm_s + model.batching.max_delay_ms / 1000 + PROXY_OVERHEAD_S


def heavy_predict(model: Model, traffic: Traffic, measured: Measured, proxy_memory_mb: int) -> list[Line]:
    """A heavy model's predict route: API Gateway and the proxy function (the endpoint is `heavy_endpoint`)."""
    owner, n = model.name, traffic.predict_requests
    rps = traffic.rps * (1 - traffic.jobs_share)
    gb = proxy_memory_mb / 1024
    return [Line(owner, "apigw.requests", n), Line(owner, "lambda.requests", n, "predict proxy"),
            Line(owner, "lambda.gb_seconds", gb * n * billed_s(endpoint_s(model, measured)), "proxy duration"),
            *_request_tail(owner, traffic, n, rps)]


@dataclass(frozen=True)
class EndpointLoad:
    instances: int
    over_capacity: bool
    instance_hours: float
    wakes: float
    #: Requests a month that find the model scaled to zero (503, or a job that waits).
    refused: float


def endpoint_load(model: Model, traffic: Traffic) -> EndpointLoad:
    """Instance-hours of a heavy model: as many instances as its target invocations per instance need while
    active (between min and max), `min` while idle; scaled to zero, up only while calls come (and a tail)."""
    inst = model.instances
    per_instance = inst.target_invocations_per_instance / 60
    needed = math.ceil(traffic.rps / per_instance) if traffic.rps else 0
    active = min(inst.max, max(inst.min, needed, 1 if traffic.rps else 0))
    over = needed > inst.max
    if not inst.scales_to_zero:
        hours = DAYS_PER_MONTH * (traffic.hours_per_day * active + (24 - traffic.hours_per_day) * inst.min)
        return EndpointLoad(active, over, hours, 0.0, 0.0)
    rps, window = traffic.rps, traffic.hours_per_day * 3600
    if rps <= 0:
        return EndpointLoad(0, False, 0.0, 0.0, 0.0)
    up = 1 - math.exp(-rps * SCALE_IN_TAIL_S)  # the share of the active window with an instance up
    wakes = rps * window * math.exp(-rps * SCALE_IN_TAIL_S) + (1 if traffic.idle_stretch else 0)
    tail = SCALE_IN_TAIL_S * up if traffic.idle_stretch else 0.0
    seconds = active * (window * up + tail) + wakes * WAKE_BILLED_S
    refused = min(wakes * (1 + rps * WAKE_S), rps * window)
    return EndpointLoad(active, over, DAYS_PER_MONTH * seconds / 3600, DAYS_PER_MONTH * wakes,
                        DAYS_PER_MONTH * refused)


def heavy_endpoint(model: Model, traffic: Traffic, instance_type: str | None = None) -> list[Line]:
    load = endpoint_load(model, traffic)
    kind = instance_type or model.instance_type
    gb = traffic.requests * traffic.payload_kb / 1024**2
    note = (f"{load.instances} x {kind} while active" + (", scaled to zero while idle" if model.instances.scales_to_zero
                                                         else f", {model.instances.min} while idle"))
    return [Line(model.name, "sagemaker.instance_hours", load.instance_hours, note, variant=kind),
            Line(model.name, "sagemaker.data_in", gb), Line(model.name, "sagemaker.data_out", gb)]


def jobs(model: Model, traffic: Traffic, measured: Measured, jobs_config: JobsConfig, *, api_memory_mb: int,
         worker_memory_mb: int, webhook_memory_mb: int) -> list[Line]:
    """The jobs path: submit and result reads (API Gateway, the API function), the queue, the worker (in
    process, or calling the endpoint), the table, the webhook, and S3 past the inline limits."""
    owner, count = model.name, traffic.jobs
    if count <= 0:
        return []
    rate = traffic.rps * traffic.jobs_share
    kb = traffic.payload_kb
    api_calls = count * (1 + RESULT_READS_PER_JOB)
    gather = max(BATCH_GATHER_S, jobs_config.batching_window_s)
    batch = min(jobs_config.batch_size, max(1.0, rate * gather))
    batches = count / batch
    if model.tier == "heavy":
        worker_s = endpoint_s(model, measured) + WORKER_OVERHEAD_S  # one call per job, concurrently
    else:
        worker_s = lambda_duration(measured, worker_memory_mb) * batch + WORKER_OVERHEAD_S
    chunks = math.ceil(kb / 64)
    webhook_kb = min(kb, INLINE_WEBHOOK_RESULT_BYTES / 1000) + 1
    result_units = math.ceil(kb + 0.5)  # an update is billed on the whole item, result included
    out = [
        Line(owner, "apigw.requests", api_calls, "job submissions and result reads"),
        Line(owner, "lambda.requests", api_calls + batches + count, "API function, worker, webhooks"),
        Line(owner, "lambda.gb_seconds", api_calls * API_CALL_S * api_memory_mb / 1024, "API function"),
        Line(owner, "lambda.gb_seconds", batches * billed_s(worker_s) * worker_memory_mb / 1024, "worker"),
        Line(owner, "lambda.gb_seconds", count * WEBHOOK_DELIVERY_S * webhook_memory_mb / 1024, "webhooks"),
        Line(owner, "sqs.requests", count * chunks + 2 * batches + count * math.ceil(webhook_kb / 64) + 2 * count
             + min(count, traffic.active_seconds / DEPTH_CACHE_S),
             "send, receive and delete; webhook messages; queue depth checks"),
        Line(owner, "dynamodb.writes", count * (1 + 1 + 2 * result_units),
             "create, conditional claim, finish, webhook record"),
        Line(owner, "dynamodb.reads", count * RESULT_READS_PER_JOB * math.ceil((kb + 1) / 4),
             "strongly consistent result reads"),
        Line(owner, "dynamodb.storage", count * jobs_config.result_ttl_days / DAYS_PER_MONTH * (kb + 1) / 1024**2,
             f"jobs kept {jobs_config.result_ttl_days} days"),
        Line(owner, "secrets.api_calls", min(count, traffic.active_seconds / SECRET_CACHE_S),
             "the webhook signing key, cached"),
        *request_logs(owner, api_calls, access_log=True),
        *request_logs(owner, batches + count, access_log=False),
        Line(owner, "xray.traces", sampled_traces(rate * (1 + RESULT_READS_PER_JOB), traffic.active_seconds)
             + sampled_traces(rate / batch, traffic.active_seconds) + sampled_traces(rate, traffic.active_seconds)),
        Line(owner, "transfer.out", count * RESULT_READS_PER_JOB * kb / 1024**2, "results read"),
    ]
    if kb * 1000 > INLINE_INPUT_BYTES:
        out += [Line(owner, "s3.puts", count, "inputs over the SQS limit"), Line(owner, "s3.gets", count)]
    if kb * 1000 > INLINE_RESULT_BYTES:
        out += [Line(owner, "s3.puts", count, "results over the item limit"),
                Line(owner, "s3.gets", count * RESULT_READS_PER_JOB)]
    stored = count * jobs_config.result_ttl_days / DAYS_PER_MONTH * kb / 1024**2
    if kb * 1000 > min(INLINE_INPUT_BYTES, INLINE_RESULT_BYTES):
        out.append(Line(owner, "s3.storage", stored, f"kept {jobs_config.result_ttl_days} days"))
    return out
