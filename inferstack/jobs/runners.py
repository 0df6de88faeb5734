"""How a batch's jobs run, behind one seam (`Runner`): light models in-process (`InProcessRunner`, with A/B
variants `VariantsRunner`), heavy models on their SageMaker endpoint (`EndpointRunner`). Each gives one outcome
per job: `Succeeded`, `Invalid` (the input's fault: fails at once), `Errored` (transient: retried), `Deferred`
(the model is scaling out from zero). An `Errored` message is what a client may read (`public_reason`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from inferstack.inference.exceptions import InputValidationError
from inferstack.jobs.exceptions import public_reason
from inferstack.observability import logger

if TYPE_CHECKING:
    import numpy as np

    from inferstack.heavy.endpoint import EndpointPredictor
    from inferstack.heavy.exceptions import EndpointError
    from inferstack.inference.session import Predictor, Prepared
    from inferstack.rollout.variants import Variants


@dataclass(frozen=True)
class Succeeded:
    outputs: dict[str, Any]


@dataclass(frozen=True)
class Invalid:
    """The job's input was at fault: it fails at once, without retries."""

    error: Exception


@dataclass(frozen=True)
class Errored:
    message: str


@dataclass(frozen=True)
class Deferred:
    """The model cannot run the job yet (scaled to zero, starting): the job waits `retry_after_s` in its queue."""

    retry_after_s: int


Outcome = Succeeded | Invalid | Errored | Deferred


class Runner(Protocol):
    """Runs the jobs of one batch; returns one outcome per input, in order. Light models run in-process
    (`InProcessRunner`); heavy models run on their SageMaker endpoint behind the same seam (`EndpointRunner`).
    `run_v2` takes Open Inference Protocol infer requests and gives their infer responses."""

    def run(self, inputs: Sequence[Any]) -> list[Outcome]: ...

    def run_v2(self, requests: Sequence[Any]) -> list[Outcome]: ...


def _v2_outcome(result: dict[str, Any] | Exception) -> Outcome:
    from inferstack.protocol.exceptions import BinaryDataError, InferRequestError

    if not isinstance(result, Exception):
        return Succeeded(result)
    if isinstance(result, InputValidationError | InferRequestError | BinaryDataError):
        return Invalid(result)
    logger.error("a v2 job failed", exc_info=result)
    return Errored(public_reason(result))


class InProcessRunner:
    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self._names = [s.name for s in predictor.inputs]
        self._name_set = set(self._names)
        #: Inference calls made; the benchmarks and tests read it to see vectorisation happen.
        self.calls = 0

    def _run(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        return self.predictor.run(arrays)

    def run_v2(self, requests: Sequence[Any]) -> list[Outcome]:
        from inferstack.protocol.batch import infer_many

        return [_v2_outcome(r) for r in infer_many(self.predictor, self._run, requests)]

    def run(self, inputs: Sequence[Any]) -> list[Outcome]:
        fast = self._run_stacked(inputs) if self.predictor.handler is None else None
        return fast if fast is not None else self._run_grouped(inputs)

    def _normalised(self, raw: Any) -> dict[str, list[Any]] | None:
        """The job's inputs as {name: rows} when they are well-formed for the fast path, else None. Runs once
        per job per batch: kept to plain type checks."""
        if type(raw) is list:
            if len(self._names) != 1:
                return None
            raw = {self._names[0]: raw}
        elif type(raw) is not dict or raw.keys() != self._name_set:
            return None
        rows = -1
        for name in self._names:
            value = raw[name]
            if type(value) is not list or not value or (rows >= 0 and len(value) != rows):
                return None
            rows = len(value)
        well_formed: dict[str, list[Any]] = raw
        return well_formed

    def _run_stacked(self, inputs: Sequence[Any]) -> list[Outcome] | None:
        """The fast path: every job well-formed, so the whole batch is validated and run as one array per
        input. None when any job needs individual treatment (then `_run_grouped` pins each problem on its
        job)."""
        from inferstack.inference.validation import to_jsonable

        jobs = [self._normalised(raw) for raw in inputs]
        if not jobs or any(j is None for j in jobs):
            return None
        names = self._names
        stacked_raw = {n: [row for j in jobs if j for row in j[n]] for n in names}
        try:
            arrays = self.predictor.validate(stacked_raw)
        except InputValidationError:
            return None
        try:
            results = self._run(arrays)
        except Exception:
            return None
        as_lists = {k: to_jsonable(v) for k, v in results.items()}  # once for the batch, then sliced per job
        outcomes: list[Outcome] = []
        start = 0
        for job in jobs:
            assert job is not None
            rows = len(job[names[0]])
            outcomes.append(Succeeded({k: v[start:start + rows] for k, v in as_lists.items()}))
            start += rows
        return outcomes

    def _run_grouped(self, inputs: Sequence[Any]) -> list[Outcome]:
        """Each job prepared on its own (validated, or through the model's handler), then the jobs whose
        tensors stack run together; each job's problem stays its own."""
        from inferstack.inference.exceptions import HandlerError
        from inferstack.inference.stacking import group, run_stacked

        outcomes: list[Outcome | None] = [None] * len(inputs)
        ready: list[tuple[int, Prepared]] = []
        for i, raw in enumerate(inputs):
            try:
                ready.append((i, self.predictor.prepare(raw)))
            except InputValidationError as exc:
                outcomes[i] = Invalid(exc)
            except HandlerError:
                logger.exception("the model's handler failed", extra={"model": self.predictor.name})
                outcomes[i] = Errored("the model's handler failed on the job (its log has the details)")
        padding = self.predictor.padding
        for members in group([p.arrays for _, p in ready], padding):
            results = run_stacked(self._run, [ready[m][1].arrays for m in members], padding)
            for m, result in zip(members, results, strict=True):
                i, prepared = ready[m]
                outcomes[i] = self._respond(prepared, result)
        return [o if o is not None else Errored("not run") for o in outcomes]

    def _respond(self, prepared: Prepared, outputs: dict[str, np.ndarray] | Exception) -> Outcome:
        """One job's outcome from its rows of a run's outputs (or the exception its run raised)."""
        from inferstack.inference.validation import to_jsonable

        try:
            if isinstance(outputs, Exception):
                raise outputs
            if self.predictor.handler is None:
                return Succeeded({k: to_jsonable(v) for k, v in outputs.items()})
            return Succeeded(self.predictor.respond(prepared, outputs))
        except InputValidationError as exc:
            return Invalid(exc)
        except Exception as exc:
            logger.exception("a job failed", extra={"model": self.predictor.name})
            return Errored(public_reason(exc))


class VariantsRunner(InProcessRunner):
    """A light model with A/B variants: each call (a batch of jobs) runs on one variant, picked by weight;
    `predictor` is the one that ran the last call."""

    def __init__(self, variants: Variants) -> None:
        self.variants = variants
        self.runners = [InProcessRunner(a.predictor) for a in variants.arms]
        super().__init__(variants.arms[0].predictor)

    def _pick(self) -> InProcessRunner:
        runner = self.runners[self.variants.pick_index()]
        self.predictor = runner.predictor
        return runner

    def run(self, inputs: Sequence[Any]) -> list[Outcome]:
        return self._pick().run(inputs)

    def run_v2(self, requests: Sequence[Any]) -> list[Outcome]:
        return self._pick().run_v2(requests)


class EndpointRunner:
    """A heavy model's jobs: one invocation per job, concurrently, so that the endpoint's dynamic batcher
    stacks them. The container validates; its 4xx answers fail the job, anything else retries."""

    def __init__(self, predictor: EndpointPredictor) -> None:
        self.predictor = predictor

    def run_v2(self, requests: Sequence[Any]) -> list[Outcome]:
        return self._outcomes(self.predictor.infer_many(list(requests)))

    def run(self, inputs: Sequence[Any]) -> list[Outcome]:
        return self._outcomes(self.predictor.predict_many(list(inputs)))

    @staticmethod
    def _outcomes(results: Sequence[dict[str, Any] | EndpointError]) -> list[Outcome]:
        from inferstack.heavy.exceptions import NoCapacityError

        outcomes: list[Outcome] = []
        for result in results:
            if not isinstance(result, Exception):
                outcomes.append(Succeeded(result))
            elif isinstance(result, NoCapacityError):
                outcomes.append(Deferred(result.retry_after or 60))
            elif result.is_client_error:
                outcomes.append(Invalid(result))
            else:
                outcomes.append(Errored(f"{result.problem.title}: {result.detail}"))
        return outcomes
