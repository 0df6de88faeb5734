"""The KServe Python SDK's REST client (protocol v2) against a running inferstack, as a user would call it.

    .venv-kserve/bin/python tests/clients/kserve_v2.py BASE_URL API_KEY

Runs in the KServe SDK's own environment (tests/clients/requirements-kserve.txt) and prints one JSON object with
what each call returned, for tests/e2e/test_v2_clients.py to check.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import httpx
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig


async def main(base_url: str, key: str) -> dict[str, Any]:
    headers = {"x-api-key": key}
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
    out: dict[str, Any] = {
        "live": await client.is_server_live(base_url),
        "ready": await client.is_server_ready(base_url),
        "iris_ready": await client.is_model_ready(base_url, "iris", headers=headers),
    }
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
    for binary in (False, True):
        features = InferInput("features", list(rows.shape), "FP32")
        features.set_data_from_numpy(rows, binary_data=binary)
        result = await client.infer(base_url, InferRequest("iris", infer_inputs=[features], request_id="k1"),
                                    model_name="iris", headers=dict(headers))
        out[f"iris_binary_{binary}"] = {o.name: o.as_numpy().tolist() for o in result.outputs}
        out[f"iris_binary_{binary}_id"] = result.id
    text = InferInput("text", [2], "BYTES")
    text.set_data_from_numpy(np.array(["A man is eating food.", "A man is riding a horse."], dtype=object),
                             binary_data=True)
    result = await client.infer(base_url, InferRequest("minilm", infer_inputs=[text]), model_name="minilm",
                                headers=dict(headers))
    out["minilm"] = {o.name: o.as_numpy().tolist() for o in result.outputs}
    bad = InferInput("features", [1, 3], "FP32")
    bad.set_data_from_numpy(rows[:1, :3], binary_data=False)
    try:
        await client.infer(base_url, InferRequest("iris", infer_inputs=[bad]), model_name="iris",
                           headers=dict(headers))
    except httpx.HTTPStatusError as exc:
        out["bad"] = {"status": exc.response.status_code, "message": str(exc)}
    await client.close()
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))))
