"""`[[models]] optimize = { quantize = "int8-dynamic", graph = "extended", max_drift = 0.01, reference = "..." }`

- `quantize = "int8-dynamic"`: onnxruntime's dynamic quantization (`quantize_dynamic`): weights stored as INT8,
  activations quantized on the fly. About 4x smaller, and faster on CPUs (Lambda, the job worker, `inferstack
  dev`); a GPU endpoint gains little from it.
- `graph = "basic" | "extended"`: onnxruntime's graph optimizations applied once at build time and saved, so
  that a cold start loads a graph that needs no more rewriting. `basic` is portable across execution providers;
  `extended` adds fusions (attention, layer norm, GELU) made for the CPU provider.
- `max_drift`: the accuracy gate. The optimized model and the float model answer the same reference inputs; for
  each output, floating-point outputs drift by 1 - their mean cosine similarity row by row (embeddings,
  probabilities), integer and string outputs by the share of rows that disagree (labels). The build is refused
  when any output drifts more than this.
- `reference`: a JSON file holding a list of request `inputs` (what a predict body's `inputs` holds), the
  inputs the gate compares on; the examples of the model's handler `Request` are added to them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_MAX_DRIFT = 0.01


class Optimize(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    quantize: Literal["none", "int8-dynamic"] = "none"
    graph: Literal["none", "basic", "extended"] = "none"
    max_drift: Annotated[float, Field(gt=0, le=1)] = DEFAULT_MAX_DRIFT
    reference: Path | None = None

    @model_validator(mode="after")
    def _something_to_do(self) -> Optimize:
        if self.quantize == "none" and self.graph == "none":
            raise ValueError("optimize needs quantize = 'int8-dynamic' and/or graph = 'basic' | 'extended'; "
                             "remove optimize to ship the model as it is")
        return self

    def describe(self) -> str:
        steps = (["INT8 dynamic quantization"] if self.quantize != "none" else []) + \
            ([f"{self.graph} graph optimization"] if self.graph != "none" else [])
        return " + ".join(steps)
