"""Several infer requests run together (the job worker's v2 jobs): each prepared on its own, those whose tensors
stack run as one call (`inference.stacking`), each answered on its own. One request's fault stays its own."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from inferstack.inference.stacking import RunFn, group, run_stacked
from inferstack.protocol.codec import infer_request_from
from inferstack.protocol.inference import prepare, respond
from inferstack.protocol.tensors import encode_response

if TYPE_CHECKING:
    from inferstack.inference.session import Predictor, Prepared
    from inferstack.protocol.codec import InferRequest


def infer_many(predictor: Predictor, run: RunFn, documents: Sequence[Any]) -> list[dict[str, Any] | Exception]:
    """Each request's infer response (as a JSON object), or the exception that failed it."""
    results: list[dict[str, Any] | Exception | None] = [None] * len(documents)
    ready: list[tuple[int, InferRequest, Prepared]] = []
    for i, document in enumerate(documents):
        try:
            request = infer_request_from(document)
            ready.append((i, request, prepare(predictor, request)))
        except Exception as exc:
            results[i] = exc
    for members in group([p.arrays for _, _, p in ready], predictor.padding):
        outputs = run_stacked(run, [ready[m][2].arrays for m in members], predictor.padding)
        for m, out in zip(members, outputs, strict=True):
            i, request, prepared = ready[m]
            try:
                if isinstance(out, Exception):
                    raise out
                body, _ = encode_response(request, respond(predictor, prepared, out), model=predictor.name,
                                          version=predictor.version)
                results[i] = json.loads(body)
            except Exception as exc:
                results[i] = exc
    return [r if r is not None else RuntimeError("not run") for r in results]
