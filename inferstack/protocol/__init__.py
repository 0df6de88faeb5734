"""The Open Inference Protocol (KServe "v2", also spoken by Triton, MLServer and Seldon) beside `/v1`.

- `datatypes`: the protocol's datatypes and shapes against ours (numpy dtype names, symbolic dims).
- `codec`: the infer request envelope, JSON and the binary data extension (`Inference-Header-Content-Length`,
  `binary_data_size`), parsed and checked without numpy (a malformed request costs no allocation).
- `tensors`: tensors to arrays and back (numpy), checked before anything is allocated.
- `inference`: one infer request through a `Predictor` (a plain ONNX model or a model with a handler).
- `metadata`: server and model metadata in the protocol's terms.
- `compression`: gzip/deflate request bodies (decompressed incrementally under a cap) and response encodings.

Errors go through `inferstack.api.errors.to_problem` like every other front door's, and are rendered in the
protocol's shape, `{"error": "..."}`, with the status `/v1` would answer.
"""
