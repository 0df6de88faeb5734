"""Model handlers: a model's own pre- and post-processing, in a Python file that the manifest names.

    [[models]]
    name = "minilm"
    path = "models/minilm/model.onnx"
    handler = "models/minilm/handler.py"

The handler module defines:

- `preprocess(body) -> {input name: array}` (required): turns a request's `inputs` into the model's tensors.
- `postprocess(outputs, body[, inputs]) -> response` (optional): turns the model's outputs (a dict of numpy
  arrays, the request's own rows) into the request's `outputs`; it may also take the tensors `preprocess`
  returned (`inputs`), e.g. an attention mask for pooling. Without it, the outputs are sent as nested lists.
- `Request`, `Response` (optional): pydantic models. `Request` validates `inputs` before `preprocess` sees it
  (`body` is then the `Request` instance) and a failure is a 422 naming each field (`inputs.text[3]`);
  `Response` checks what `postprocess` returns. Both appear in the OpenAPI document and in
  `GET /v1/models/{name}`, and the first of `Request`'s JSON-schema `examples` warms the model up.

The same handler runs in the light predict function, the job worker and the heavy container. Whose fault an
error is decides its status: a `Request` validation failure or an `InvalidInput` raised by the handler is
the client's (422, and a job fails at once); anything else raised inside the handler is a `HandlerError` (500
with the traceback logged, and a job retries).

The handler's directory is packaged with it (keep the files it reads beside it and open them relative to
`__file__`), and the packages listed in its `requirements.txt` are installed for each platform it runs on.
A `lib/` directory beside the handler, where the heavy tier's model archive carries those packages, is put on
`sys.path` before the handler is imported.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from inferstack.inference.exceptions import HandlerError, HandlerLoadError, InputProblem, InputValidationError

__all__ = ["HandlerError", "InvalidInput", "ModelHandler", "load_handler"]

Arrays = dict[str, np.ndarray]


class InvalidInput(InputValidationError):
    """Raise in a handler when the request is at fault: the client gets a 422 naming `field`.

    `field` is a path inside the request's `inputs` (`"text[3]"`); the error names it `inputs.text[3]`."""

    def __init__(self, detail: str, *, field: str | None = None, expected: str | None = None,
                 given: str | None = None) -> None:
        path = "inputs" if not field else "inputs" + (field if field.startswith("[") else "." + field)
        super().__init__([InputProblem(path, detail, expected=expected, given=given)])


def field_path(loc: tuple[int | str, ...], root: str = "inputs") -> str:
    """A pydantic error location as a path: `("text", 3)` -> `inputs.text[3]`."""
    out = root
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def validation_problems(exc: ValidationError, root: str = "inputs") -> list[InputProblem]:
    problems = []
    for error in exc.errors(include_url=False):
        given = error.get("input")
        problems.append(InputProblem(field_path(tuple(error["loc"]), root), str(error["msg"]),
                                     given=None if isinstance(given, dict | list) else repr(given)[:100]))
    return problems


def _schema_class(module: ModuleType, name: str, path: Path) -> type[BaseModel] | None:
    value = getattr(module, name, None)
    if value is None:
        return None
    if not (isinstance(value, type) and issubclass(value, BaseModel)):
        raise HandlerLoadError(f"{path}: {name} must be a pydantic BaseModel subclass, not {value!r}")
    return value


@dataclass
class ModelHandler:
    """A loaded handler module, with the framework's side of its contract: validation, error attribution."""

    path: Path
    module: ModuleType
    request: type[BaseModel] | None
    response: type[BaseModel] | None
    #: Does `postprocess` take the request's tensors as a third argument?
    wants_inputs: bool

    def parse(self, raw: Any) -> Any:
        """The request's `inputs`, validated by `Request` where the handler has one."""
        if self.request is None:
            return raw
        try:
            return self.request.model_validate(raw)
        except ValidationError as exc:
            raise InputValidationError(validation_problems(exc)) from None

    def preprocess(self, body: Any) -> Arrays:
        try:
            tensors = self.module.preprocess(body)
        except InputValidationError:
            raise
        except Exception as exc:
            raise HandlerError(f"{self.path.name}: preprocess failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(tensors, dict) or not all(isinstance(k, str) for k in tensors):
            raise HandlerError(f"{self.path.name}: preprocess must return a dict of input name to array, "
                               f"not {type(tensors).__name__}")
        try:
            return {name: np.asarray(value) for name, value in tensors.items()}
        except (ValueError, TypeError) as exc:
            raise HandlerError(f"{self.path.name}: preprocess returned a value that is not an array: {exc}") from exc

    def postprocess(self, outputs: Arrays, body: Any, inputs: Arrays) -> Any:
        """The request's `outputs` as JSON-ready data."""
        post = getattr(self.module, "postprocess", None)
        if post is None:
            return {name: value.tolist() for name, value in outputs.items()}
        try:
            result = post(outputs, body, inputs) if self.wants_inputs else post(outputs, body)
        except InputValidationError:
            raise
        except Exception as exc:
            raise HandlerError(f"{self.path.name}: postprocess failed: {type(exc).__name__}: {exc}") from exc
        if self.response is not None and not isinstance(result, self.response):
            try:
                result = self.response.model_validate(result)
            except ValidationError as exc:
                raise HandlerError(f"{self.path.name}: postprocess returned something that is not a valid "
                                   f"Response: {exc}") from None
        if isinstance(result, BaseModel):
            return result.model_dump(mode="json")
        if isinstance(result, np.ndarray):
            return result.tolist()
        return result

    def request_schema(self) -> dict[str, Any] | None:
        return self.request.model_json_schema() if self.request else None

    def response_schema(self) -> dict[str, Any] | None:
        return self.response.model_json_schema(mode="serialization") if self.response else None

    def example(self) -> Any:
        """The first example of `Request`'s JSON schema, if it declares one."""
        schema = self.request_schema() or {}
        examples = schema.get("examples") or []
        return examples[0] if examples else None


def _module_name(path: Path) -> str:
    return "inferstack_handler_" + re.sub(r"\W", "_", str(path.resolve()))


def load_handler(path: str | Path) -> ModelHandler:
    """Import a handler file (once per process) and check its shape."""
    path = Path(path)
    if not path.is_file():
        raise HandlerLoadError(f"handler {path} does not exist")
    name = _module_name(path)
    module = sys.modules.get(name)
    if module is None:
        lib = path.parent / "lib"
        if lib.is_dir() and str(lib) not in sys.path:
            sys.path.insert(0, str(lib))
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise HandlerLoadError(f"cannot import handler {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # pydantic resolves the module's annotations through sys.modules
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise HandlerLoadError(f"importing handler {path} failed: {type(exc).__name__}: {exc}") from exc
    if not callable(getattr(module, "preprocess", None)):
        raise HandlerLoadError(f"{path}: a handler must define preprocess(body) -> dict of input name to array")
    post = getattr(module, "postprocess", None)
    wants_inputs = False
    if post is not None:
        if not callable(post):
            raise HandlerLoadError(f"{path}: postprocess must be a function")
        positional = [p for p in inspect.signature(post).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(positional) not in (2, 3):
            raise HandlerLoadError(f"{path}: postprocess must take (outputs, body) or (outputs, body, inputs)")
        wants_inputs = len(positional) == 3
    return ModelHandler(path=path, module=module, request=_schema_class(module, "Request", path),
                        response=_schema_class(module, "Response", path), wants_inputs=wants_inputs)
