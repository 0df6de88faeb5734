"""Row-wise escalation: the first stage answers every row; only the rows whose confidence falls below the
threshold go to the next stage, and so on. When the budget runs out or a later stage is unavailable, the rows
keep the earlier stage's answer and the answer is marked degraded."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from inferstack.cascade.budget import Budget
from inferstack.cascade.config import Accept
from inferstack.cascade.exceptions import BudgetExceededError, CircuitOpenError
from inferstack.cascade.guard import GuardedPredictor
from inferstack.heavy.exceptions import EndpointError
from inferstack.observability import logger

Arrays = dict[str, np.ndarray]
#: A custom acceptance rule: a stage's outputs in, one verdict per row out (True: the answer stands).
Rule = Callable[[Arrays], Any]


class Stage(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    def run(self, arrays: Arrays, budget: Budget | None) -> Arrays: ...


class LocalStage:
    """A light model run in this process (`inference.session.Predictor`)."""

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor

    @property
    def name(self) -> str:
        return str(self.predictor.name)

    @property
    def version(self) -> str:
        return str(self.predictor.version)

    def run(self, arrays: Arrays, budget: Budget | None) -> Arrays:
        if budget is not None and budget.spent:
            raise BudgetExceededError(budget.total_ms)
        result: Arrays = self.predictor.run(arrays)
        return result


class EndpointStage:
    """A heavy model on its endpoint, behind its circuit breaker, within the budget."""

    def __init__(self, name: str, version: str, guarded: GuardedPredictor) -> None:
        self._name, self._version, self.guarded = name, version, guarded

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return self._version

    def run(self, arrays: Arrays, budget: Budget | None) -> Arrays:
        outputs = self.guarded.predict({k: v.tolist() for k, v in arrays.items()}, budget)
        return {k: np.asarray(v) for k, v in outputs.items()}


def confidence(output: np.ndarray) -> np.ndarray:
    """Per row: the top value of a row of scores (probabilities), or the value itself for one score per row."""
    values = np.asarray(output, dtype=np.float64)
    return values.reshape(len(values), -1).max(axis=1) if values.ndim > 1 else values


@dataclass
class CascadeResult:
    outputs: Arrays
    #: The stage that answered each row.
    stage: list[str]
    #: Rows sent past the first stage.
    escalated: int
    #: Why some rows kept an earlier stage's answer: "budget", "circuit-open", "unavailable"; None if none did.
    degraded: str | None = None


class CascadeRunner:
    def __init__(self, name: str, stages: Sequence[Stage], accept: Accept, outputs: Sequence[str], *,
                 rule: Rule | None = None) -> None:
        """`rule`: the manifest's custom acceptance rule, loaded (`inferstack.cascade.rules`); without one, the
        threshold."""
        self.name, self.stages, self.accept, self.outputs = name, list(stages), accept, list(outputs)
        self.rule = rule

    def accepted(self, answer: Arrays) -> np.ndarray:
        """Per row: does this stage's answer stand?"""
        if self.rule is not None:
            verdict = np.asarray(self.rule(answer), dtype=bool).reshape(-1)
            rows = len(next(iter(answer.values())))
            if verdict.shape != (rows,):
                raise RuntimeError(f"cascade {self.name!r}: the acceptance rule returned {verdict.shape[0]} verdicts "
                                   f"for {rows} rows")
            return verdict
        assert self.accept.min_confidence is not None
        return confidence(answer[self.accept.output]) >= self.accept.min_confidence

    @property
    def version(self) -> str:
        return "+".join(f"{s.name}@{s.version}" for s in self.stages) + f"|{self.accept.model_dump_json()}"

    def run(self, arrays: Arrays, budget: Budget | None = None) -> CascadeResult:
        first = self.stages[0].run(arrays, None)  # the first stage always answers: it is the floor
        outputs = {k: np.array(first[k]) for k in self.outputs}
        rows = len(outputs[self.outputs[0]])
        stage = [self.stages[0].name] * rows
        pending = np.flatnonzero(~self.accepted(first))
        escalated, degraded = len(pending), None
        for position, current in enumerate(self.stages[1:], start=1):
            if len(pending) == 0:
                break
            try:
                answer = current.run({k: v[pending] for k, v in arrays.items()}, budget)
            except (BudgetExceededError, CircuitOpenError) as exc:
                degraded = exc.degraded
            except EndpointError as exc:
                if exc.is_client_error:
                    raise
                degraded = "unavailable"
            if degraded:
                logger.info("cascade degraded", extra={"cascade": self.name, "stage": current.name,
                                                       "reason": degraded, "rows": len(pending)})
                break
            for k in self.outputs:
                outputs[k][pending] = np.asarray(answer[k]).astype(outputs[k].dtype, copy=False)
            for i in pending:
                stage[int(i)] = current.name
            if position < len(self.stages) - 1:
                pending = pending[~self.accepted(answer)]
        return CascadeResult(outputs, stage, escalated, degraded)
