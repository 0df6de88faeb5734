"""The baseline: the obvious single-file FastAPI + Mangum + onnxruntime Lambda app for one model.

This is what a team writes on day one; the benchmarks compare inferstack's predict function with it.
"""

import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from mangum import Mangum
from pydantic import BaseModel

session = ort.InferenceSession(os.environ["NAIVE_MODEL_PATH"])
app = FastAPI()


class Request(BaseModel):
    inputs: dict[str, list]


@app.post("/v1/models/{name}/predict")
def predict(name: str, request: Request) -> dict:
    feeds = {k: np.array(v, dtype=np.float32) for k, v in request.inputs.items()}
    outputs = session.run(None, feeds)
    names = [o.name for o in session.get_outputs()]
    return {"model": name, "outputs": {n: o.tolist() for n, o in zip(names, outputs, strict=True)}}


handler = Mangum(app, lifespan="off")
