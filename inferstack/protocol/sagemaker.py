"""How an Open Inference Protocol request travels through SageMaker's InvokeEndpoint, which carries a body and a
content type but no other header: the binary data extension's `Inference-Header-Content-Length` rides in the
content type, as SageMaker's Triton containers take it (`application/vnd.sagemaker-triton.binary+json;
json-header-size=N`), both ways."""

from __future__ import annotations

V2_CONTENT_TYPE = "application/vnd.sagemaker-triton.binary+json"


def v2_content_type(json_length: int) -> str:
    return f"{V2_CONTENT_TYPE};json-header-size={json_length}"


def is_v2(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() == V2_CONTENT_TYPE


def header_size(content_type: str | None) -> int | None:
    """`json-header-size` of a v2 content type, or None."""
    for param in (content_type or "").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "json-header-size" and value.strip().isdigit():
            return int(value.strip())
    return None
