"""ONNX inference: signatures, request validation and batched runs.

`validation` needs only numpy; `session` imports onnxruntime. Import the submodule you need.
"""
