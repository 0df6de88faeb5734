"""`POST /v1/jobs` and `GET /v1/jobs/{job_id}`."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Header, Request, Response
from pydantic import ValidationError

from inferstack.api import problems
from inferstack.api.deps import caller_key_id, read_body
from inferstack.api.predict import MAX_REPORTED, parse_json_body
from inferstack.api.problems import PROBLEM_JSON, ProblemError
from inferstack.api.routes.models import ModelDirectory, request_body
from inferstack.api.schemas import Problem
from inferstack.jobs.schemas import JobAccepted, JobRequest, JobView
from inferstack.observability import emf, registry

if TYPE_CHECKING:
    from inferstack.jobs.service import JobService


def validation_problem(exc: ValidationError) -> ProblemError:
    """A body that does not match its pydantic model: 422 naming each field."""
    errors = [{"input": ".".join(str(p) for p in e["loc"])[:200], "detail": e["msg"]}
              for e in exc.errors(include_url=False, include_input=False)[:MAX_REPORTED]]
    more = exc.error_count() - len(errors)
    detail = "; ".join(f"{e['input']}: {e['detail']}" for e in errors) + (f"; and {more} more" if more else "")
    return ProblemError(problems.INVALID_REQUEST, detail, errors=errors)


def jobs_router(directory: ModelDirectory, jobs: JobService | None, body_limit: int,
                cascades: Collection[str] = ()) -> APIRouter:
    router = APIRouter()

    def service() -> JobService:
        if jobs is None:
            raise ProblemError(problems.UNAVAILABLE, "The jobs tier is not configured for this function")
        return jobs

    @router.post("/v1/jobs", tags=["jobs"], status_code=202, response_model=JobAccepted,
                 responses={409: {"model": Problem, "content": {PROBLEM_JSON: {}}}},
                 openapi_extra=request_body("JobRequest"))
    async def submit_job(request: Request,
                         idempotency_key: Annotated[str | None, Header(max_length=255)] = None) -> Response:
        raw = await read_body(request, body_limit)
        parsed = parse_json_body(raw)
        if isinstance(parsed, dict) and len(unknown := [k for k in parsed if k not in JobRequest.model_fields]) > 1:
            raise ProblemError(problems.INVALID_REQUEST, f"{len(unknown)} unknown fields, e.g. "
                               f"{', '.join(k[:100] for k in unknown[:MAX_REPORTED])}",
                               errors=[{"input": k[:100], "detail": "Extra inputs are not permitted"}
                                       for k in unknown[:MAX_REPORTED]])
        try:
            body = JobRequest.model_validate(parsed)
        except ValidationError as exc:
            raise validation_problem(exc) from None
        if body.cascade is not None:
            if body.cascade not in cascades:
                raise ProblemError(problems.NOT_FOUND, f"No cascade named {body.cascade[:100]!r}; GET /v1/cascades "
                                   "lists them", cascade=body.cascade[:100])
            if body.protocol != "v1":
                raise ProblemError(problems.INVALID_REQUEST, "a cascade's jobs take v1 inputs",
                                   errors=[{"input": "protocol", "detail": "must be v1 with cascade"}])
        else:
            directory.known(body.model)
        owner = caller_key_id(request)
        job, created = service().submit(body, owner=owner, idempotency_key=idempotency_key)
        if created:
            registry.model(body.model).add(emf.JOBS_SUBMITTED)
        link = f"/v1/jobs/{job.job_id}"
        accepted = {"job_id": job.job_id, "status": job.status, "links": {"self": link}}
        headers = {"Location": link, **({} if created else {"Idempotent-Replayed": "true"})}
        return Response(json.dumps(accepted).encode(), status_code=202, media_type="application/json",
                        headers=headers)

    @router.get("/v1/jobs/{job_id}", tags=["jobs"], response_model=JobView)
    async def get_job(job_id: str, request: Request) -> Response:
        view = service().view(job_id, owner=caller_key_id(request))
        return Response(view.model_dump_json().encode(), media_type="application/json")

    return router
