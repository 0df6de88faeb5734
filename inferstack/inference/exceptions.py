"""Errors raised by the inference runtime."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InputProblem:
    """One thing wrong with one input: `input` is the field path (`inputs.float_input`)."""

    input: str
    detail: str
    expected: str | None = None
    given: str | None = None

    def as_dict(self) -> dict[str, str]:
        out = {"input": self.input, "detail": self.detail}
        if self.expected is not None:
            out["expected"] = self.expected
        if self.given is not None:
            out["given"] = self.given
        return out


class InferenceError(Exception):
    """Base class of the inference runtime's errors."""


class InputValidationError(InferenceError):
    """The request's inputs do not match the model's signature (an HTTP 422)."""

    def __init__(self, problems: list[InputProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.input}: {p.detail}" for p in problems))


class ModelLoadError(InferenceError):
    """The model file could not be loaded."""


class HandlerLoadError(ModelLoadError):
    """A model's handler module could not be imported, or does not have the shape of a handler."""


class HandlerError(InferenceError):
    """A model's handler failed on a request for a reason of its own, not the input's (an HTTP 500)."""
