"""The API function's Lambda adapter keeps working after anything in the process ran `asyncio.run`."""

from __future__ import annotations

import asyncio
import json

from tests.conftest import load_event
from tests.functional.conftest import Handler


def test_the_api_function_answers_after_an_asyncio_run_left_no_current_loop(api_handler: Handler) -> None:
    # GIVEN a process where something (the webhook sender, a handler's own code) ended an asyncio.run,
    # which leaves the main thread without a current event loop
    async def nothing() -> None:
        return None

    asyncio.run(nothing())
    # WHEN the API function is invoked (Mangum runs every call on asyncio.get_event_loop())
    response = api_handler(load_event("apiGatewayProxyEvent_health.json"))
    # THEN it answers as usual instead of raising "There is no current event loop"
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["status"] == "ok"
