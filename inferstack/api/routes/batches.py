"""`POST /v1/batches`, `GET /v1/batches/{batch_id}`, `DELETE /v1/batches/{batch_id}`,
`GET /v1/batches/{batch_id}/results` (presigned GETs of its files) and `POST /v1/batches/uploads` (a presigned
PUT for a local file)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import ValidationError

from inferstack.api import problems
from inferstack.api.deps import caller_key_id, read_body
from inferstack.api.predict import parse_json_body
from inferstack.api.problems import PROBLEM_JSON, ProblemError
from inferstack.api.routes.jobs import validation_problem
from inferstack.api.routes.models import ModelDirectory, request_body
from inferstack.api.schemas import Problem
from inferstack.batches.exceptions import BatchRequestError
from inferstack.batches.schemas import BatchAccepted, BatchRequest, BatchResults, BatchView, UploadAccepted

if TYPE_CHECKING:
    from inferstack.batches.service import BatchService

_CONFLICT: dict[int | str, dict[str, Any]] = {409: {"model": Problem, "content": {PROBLEM_JSON: {}}}}


def batches_router(directory: ModelDirectory, batches: BatchService | None, body_limit: int) -> APIRouter:
    router = APIRouter()

    def service() -> BatchService:
        if batches is None:
            raise ProblemError(problems.UNAVAILABLE, "Bulk scoring is not configured for this function")
        return batches

    def respond(view: BatchView, status: int = 200) -> Response:
        return Response(view.model_dump_json().encode(), status_code=status, media_type="application/json")

    @router.post("/v1/batches", tags=["batches"], status_code=202, response_model=BatchAccepted, responses=_CONFLICT,
                 openapi_extra=request_body("BatchRequest"))
    async def submit_batch(request: Request,
                           idempotency_key: Annotated[str | None, Header(max_length=255)] = None) -> Response:
        """Score a file in S3: one row per line (JSON Lines or CSV), in chunks, by the model's state machine."""
        raw = await read_body(request, body_limit)
        try:
            body = BatchRequest.model_validate(parse_json_body(raw))
        except ValidationError as exc:
            raise validation_problem(exc) from None
        info = directory.known(body.model)
        if info.tier == "heavy" and body.format != "jsonl":  # its Batch Transform job sends JSON lines
            raise BatchRequestError("format", f"model {body.model!r} (heavy tier) scores JSON Lines files only")
        batch, created = service().submit(body, owner=caller_key_id(request), version=info.version,
                                          idempotency_key=idempotency_key)
        link = f"/v1/batches/{batch.batch_id}"
        accepted = {"batch_id": batch.batch_id, "status": batch.status, "links": {"self": link}}
        headers = {"Location": link, **({} if created else {"Idempotent-Replayed": "true"})}
        return Response(json.dumps(accepted).encode(), status_code=202, media_type="application/json",
                        headers=headers)

    @router.post("/v1/batches/uploads", tags=["batches"], status_code=201, response_model=UploadAccepted)
    async def upload_batch_input(request: Request,
                                 format: Annotated[str, Query(pattern="^(jsonl|csv)$")] = "jsonl") -> Response:
        """A presigned URL to PUT a local file to the stack's batch bucket, then submit its `input` URI."""
        accepted = service().upload(owner=caller_key_id(request), suffix=format)
        return Response(accepted.model_dump_json().encode(), status_code=201, media_type="application/json")

    @router.get("/v1/batches/{batch_id}", tags=["batches"], response_model=BatchView)
    async def get_batch(batch_id: str, request: Request) -> Response:
        """Status, rows total/succeeded/failed, chunks, timestamps, model version, output location."""
        return respond(service().view(batch_id, owner=caller_key_id(request)))

    @router.get("/v1/batches/{batch_id}/results", tags=["batches"], response_model=BatchResults,
                responses=_CONFLICT)
    async def get_batch_results(batch_id: str, request: Request) -> Response:
        """An ended batch's manifest and presigned URLs of its output and errors files (409 while it runs)."""
        results = service().results(batch_id, owner=caller_key_id(request))
        return Response(results.model_dump_json().encode(), media_type="application/json")

    @router.delete("/v1/batches/{batch_id}", tags=["batches"], response_model=BatchView, responses=_CONFLICT)
    async def cancel_batch(batch_id: str, request: Request) -> Response:
        """Cancel a queued or running batch: chunks not yet scored are skipped (a heavy model's transform job is
        stopped); what was scored stays."""
        model = service().store.get(batch_id).model
        info = directory.infos.get(model)  # heavy: its Batch Transform job is stopped too
        return respond(service().cancel(batch_id, owner=caller_key_id(request),
                                        transform=info is not None and info.tier == "heavy"))

    return router
