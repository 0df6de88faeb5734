"""`[[models]] optimize = { quantize = "int8-dynamic", graph = "extended", max_drift = 0.01, reference = "..." }`

- `quantize = "int8-dynamic"`: onnxruntime's dynamic quantization (`quantize_dynamic`): weights stored as 8-bit
  integers per output channel, activations quantized to unsigned 8 bits on the fly. About 4x smaller, and faster
  on CPUs (Lambda, the job worker, `inferstack dev`); a GPU endpoint gains little from it.
- `weights = "int8" | "uint8"`: the quantized weights' type (with `quantize` only). `int8` (the default) runs
  onnxruntime's U8S8 kernels, the fast ones on CPUs with 8-bit dot-product instructions: x86 with VNNI
  (AVX512-VNNI, AVX-VNNI) and ARM with SDOT/I8MM (Lambda's Graviton). `uint8` runs its U8U8 kernels: choose it
  for x86 hosts without VNNI (AVX2 or AVX-512 alone), where U8S8 uses VPMADDUBSW, whose 16-bit pair sums can
  saturate and lose accuracy; elsewhere it is slower (on an AVX-512 VNNI machine 1.5x slower than `int8`).
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
    weights: Literal["int8", "uint8"] = "int8"
    graph: Literal["none", "basic", "extended"] = "none"
    max_drift: Annotated[float, Field(gt=0, le=1)] = DEFAULT_MAX_DRIFT
    reference: Path | None = None

    @model_validator(mode="after")
    def _something_to_do(self) -> Optimize:
        if self.quantize == "none" and self.graph == "none":
            raise ValueError("optimize needs quantize = 'int8-dynamic' and/or graph = 'basic' | 'extended'; "
                             "remove optimize to ship the model as it is")
        if "weights" in self.model_fields_set and self.quantize == "none":
            raise ValueError("optimize.weights sets the quantized weights' type: it needs quantize = 'int8-dynamic'")
        return self

    def describe(self) -> str:
        quantize = "INT8 dynamic quantization" + (" (uint8 weights)" if self.weights == "uint8" else "")
        steps = ([quantize] if self.quantize != "none" else []) + \
            ([f"{self.graph} graph optimization"] if self.graph != "none" else [])
        return " + ".join(steps)
