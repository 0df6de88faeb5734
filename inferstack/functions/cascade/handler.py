"""Lambda entry point of one cascade: `POST /v1/cascades/{name}/predict`.

At import it loads the cascade's light stages (onnxruntime, in this process) and prepares a circuit breaker per
heavy stage's endpoint. A request is answered straight from the API Gateway event: the first stage validates
and answers every row, only the rows below `min_confidence` go on (`inferstack.cascade.runner`), within the
request's latency budget; the result cache, where the manifest gives the cascade one, answers repeats.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from inferstack import env
from inferstack.api import problems
from inferstack.api.errors import to_problem
from inferstack.api.predict import predict_inputs
from inferstack.api.problems import ProblemError
from inferstack.cache.wiring import cache_from_env
from inferstack.cascade.answers import cascade_answer
from inferstack.cascade.config import CascadeRuntime
from inferstack.cascade.wiring import build_runner
from inferstack.catalog import load_catalog
from inferstack.observability import registry
from inferstack.protocol.events import event_body

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

config = CascadeRuntime.from_env()
catalog, model_root = load_catalog()
body_limit = int(os.environ.get(env.MAX_BODY_BYTES) or 5 * 1024 * 1024)
#: The first stage's predictor validates every request (the stages share its input signature).
runner, validator = build_runner(config, catalog, model_root)
cache = cache_from_env(config.name)
predict_path = f"/v1/cascades/{config.name}/predict"


def _result(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    return {"statusCode": status, "headers": {**headers, "content-length": str(len(body))},
            "multiValueHeaders": {}, "body": body.decode(), "isBase64Encoded": False}


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        return answer(event, context)
    finally:
        registry.flush()  # the invocation's metrics (EMF), before the environment may be frozen


def answer(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        if event.get("httpMethod") != "POST" or event.get("path") != predict_path:
            raise ProblemError(problems.MISROUTED, f"The cascade {config.name!r} function answers POST "
                               f"{predict_path} only (check the API's routes)")
        raw = predict_inputs(event_body(event, body_limit), body_limit)
        result = cascade_answer(runner, validator, raw, cache=cache, headers=event.get("headers"),
                                default_budget_ms=config.budget_ms)
    except Exception as exc:
        problem = to_problem(exc, context={"path": event.get("path"), "cascade": config.name,
                                           "function_request_id": getattr(context, "aws_request_id", None)})
        return _result(problem.status, problem.response_headers(), problem.body())
    return _result(result.status, result.headers, result.body)
