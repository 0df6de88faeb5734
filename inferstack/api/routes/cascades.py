"""`/v1/cascades`, `/v1/cascades/{name}`; `POST /v1/cascades/{name}/predict` is answered by the cascade's own
function (API Gateway routes it there), so here it only tells an unknown cascade apart (404)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from inferstack.api import problems
from inferstack.api.problems import ProblemError
from inferstack.catalog import CascadeInfo


class CascadeList(BaseModel):
    cascades: list[CascadeInfo]


def cascades_router(cascades: list[CascadeInfo]) -> APIRouter:
    router = APIRouter(tags=["cascades"])
    by_name = {c.name: c for c in cascades}

    def known(name: str) -> CascadeInfo:
        info = by_name.get(name)
        if info is None:
            raise ProblemError(problems.NOT_FOUND, f"No cascade named {name!r}; GET /v1/cascades lists them",
                               cascade=name)
        return info

    @router.get("/v1/cascades")
    async def list_cascades() -> CascadeList:
        return CascadeList(cascades=cascades)

    @router.get("/v1/cascades/{name}")
    async def get_cascade(name: str) -> CascadeInfo:
        return known(name)

    @router.post("/v1/cascades/{name}/predict", openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}}}})
    async def predict(name: str) -> None:
        """Rows answered by the first stage that reaches `min_confidence`: `{"cascade", "outputs", "stage": [per
        row], "escalated", "versions"}`, with `"degraded": true` and `x-degraded` when the budget ran out or a
        later stage was unavailable."""
        known(name)
        raise ProblemError(problems.MISROUTED, f"Cascade {name!r} is served by its own function; this request "
                           "reached one that does not serve it (check the API's routes)")

    return router
