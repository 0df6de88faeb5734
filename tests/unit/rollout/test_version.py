"""The version a heavy model's container names in SageMaker's custom attributes."""

from __future__ import annotations

from inferstack.rollout import answered_version, version_attribute


def test_version_from_custom_attributes() -> None:
    assert answered_version(version_attribute("abc")) == "abc"
    assert answered_version("trace=1; version=xyz") == "xyz"
    assert answered_version(None) is None and answered_version("version=") is None
