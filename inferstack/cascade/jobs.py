"""A cascade's jobs (`"cascade": name` on `POST /v1/jobs`): each job's rows go through the cascade as a predict
request's would, without a latency budget. A later stage that cannot answer is a retry, not a degraded result
(a job has time to wait for the whole answer); an input at fault fails the job at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inferstack.cascade.runner import CascadeRunner
from inferstack.heavy.exceptions import EndpointError
from inferstack.inference.exceptions import InputValidationError
from inferstack.jobs.worker import Errored, Invalid, Outcome, Succeeded
from inferstack.observability import emf, logger, registry


class CascadeJobRunner:
    def __init__(self, runner: CascadeRunner, validator: Any) -> None:
        self.runner, self.validator = runner, validator

    def _one(self, raw: Any) -> Outcome:
        try:
            arrays = self.validator.prepare(raw).arrays
            result = self.runner.run(arrays)
        except InputValidationError as exc:
            return Invalid(exc)
        except EndpointError as exc:
            return Invalid(exc) if exc.is_client_error else Errored(f"{exc.problem.title}: {exc.detail}")
        except Exception as exc:  # onnxruntime's untyped errors, among others: retried, logged
            logger.error("a cascade job failed", exc_info=exc, extra={"cascade": self.runner.name})
            return Errored(f"{type(exc).__name__}: {exc}")
        registry.model(self.runner.name).add(emf.ESCALATED_ROWS, result.escalated)
        if result.degraded:
            return Errored(f"a later stage could not answer ({result.degraded}); the job is retried")
        return Succeeded({"outputs": {k: v.tolist() for k, v in result.outputs.items()}, "stage": result.stage,
                          "escalated": result.escalated,
                          "versions": {s.name: s.version for s in self.runner.stages}})

    def run(self, inputs: Sequence[Any]) -> list[Outcome]:
        return [self._one(raw) for raw in inputs]

    def run_v2(self, requests: Sequence[Any]) -> list[Outcome]:
        return [Invalid(ValueError("a cascade's jobs take v1 inputs")) for _ in requests]
