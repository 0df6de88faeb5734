"""One infer request through a `Predictor`: the same validation, handler and inference as `/v1`.

A plain ONNX model takes the request's tensors as they are (checked by `validate_arrays`, the rules of `/v1`); a
model with a handler gets them as its `inputs` (nested lists, BYTES as strings), so its `Request` validates them
with the same 422 details as on `/v1`, and its response's fields go back as tensors of the datatypes its
`Response` declares. `prepare` and `respond` are apart so that the heavy container's dynamic batcher runs the
arrays in between, stacked with `/v1` requests alike.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from inferstack.inference.exceptions import HandlerError
from inferstack.inference.validation import validate_arrays
from inferstack.protocol.codec import InferRequest
from inferstack.protocol.metadata import TensorMeta, from_schema, model_metadata, model_tensors
from inferstack.protocol.tensors import Arrays, as_handler_inputs, decode_all, encode_response, from_handler_outputs

if TYPE_CHECKING:
    from inferstack.inference.session import Predictor, Prepared


@functools.cache
def _handler_tensors(predictor: Predictor) -> tuple[list[TensorMeta] | None, list[TensorMeta] | None]:
    assert predictor.handler is not None
    return from_schema(predictor.handler.request_schema()), from_schema(predictor.handler.response_schema())


def metadata(predictor: Predictor) -> dict[str, Any]:
    handler = predictor.handler
    inputs, outputs = model_tensors(predictor.inputs, predictor.outputs,
                                    handler.request_schema() if handler else None,
                                    handler.response_schema() if handler else None)
    return model_metadata(predictor.name, predictor.version, inputs, outputs)


def prepare(predictor: Predictor, request: InferRequest) -> Prepared:
    """The request's tensors ready to run; `InputValidationError` (422) when they do not fit the model."""
    from inferstack.inference.session import Prepared

    arrays = decode_all(request)
    if predictor.handler is None:
        return Prepared(request, validate_arrays(arrays, predictor.inputs,
                                                 allow_non_finite=predictor.entry.allow_non_finite))
    request_metas, _ = _handler_tensors(predictor)
    return predictor.prepare(as_handler_inputs(arrays, request_metas))


def respond(predictor: Predictor, prepared: Prepared, outputs: Arrays) -> Arrays:
    """The request's outputs as tensors: the model's own, or its handler's response as arrays."""
    if predictor.handler is None:
        return outputs
    answer = predictor.respond(prepared, outputs)
    _, response_metas = _handler_tensors(predictor)
    try:
        return from_handler_outputs(answer, response_metas)
    except (ValueError, TypeError) as exc:
        raise HandlerError(f"{predictor.handler.path.name}: postprocess returned fields that are not "
                           f"rectangular tensors: {exc}") from exc


def infer(predictor: Predictor, request: InferRequest) -> tuple[bytes, dict[str, str]]:
    """The whole request in one call: the response body and its headers."""
    prepared = prepare(predictor, request)
    outputs = respond(predictor, prepared, predictor.run(prepared.arrays))
    return encode_response(request, outputs, model=predictor.name, version=predictor.version)
