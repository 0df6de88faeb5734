"""Triton's own Python client against inferstack: the Open Inference Protocol with binary tensors and gzip.

    make dev                          # in one terminal
    .venv/bin/python examples/triton_client.py
    .venv/bin/python examples/triton_client.py --url <api>.execute-api.<region>.amazonaws.com/prod --ssl \\
        --api-key "$KEY"              # a deployed stack: the stage is the base path
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import tritonclient.http as triton

parser = argparse.ArgumentParser()
parser.add_argument("--url", default="127.0.0.1:8000/prod", help="host:port/base-path, without the scheme")
parser.add_argument("--api-key", default=os.environ.get("INFERSTACK_API_KEY", "local-dev-key"))
parser.add_argument("--ssl", action="store_true")
args = parser.parse_args()
headers = {"x-api-key": args.api_key}

client = triton.InferenceServerClient(args.url, ssl=args.ssl)
print("live:", client.is_server_live())
print("iris:", client.get_model_metadata("iris", headers=headers)["inputs"])

features = triton.InferInput("features", [2, 4], "FP32")
features.set_data_from_numpy(np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32),
                             binary_data=True)
result = client.infer("iris", [features], headers=headers)  # binary tensors both ways
print("labels:", result.as_numpy("label").tolist())

text = triton.InferInput("text", [2], "BYTES")
text.set_data_from_numpy(np.array(["A man is eating food.", "A man is riding a horse."], dtype=object))
result = client.infer("minilm", [text], outputs=[triton.InferRequestedOutput("embeddings")], headers=headers,
                      request_compression_algorithm="gzip", response_compression_algorithm="gzip")
embeddings = result.as_numpy("embeddings")
print("embeddings:", embeddings.shape, embeddings.dtype, "similarity:", round(float(embeddings[0] @ embeddings[1]), 3))
