from __future__ import annotations

from inferstack.jobs.webhooks import MAX_SQS_DELAY_S, backoff_s, parse_retry_after, signing_secret


def test_backoff_doubles_with_jitter_within_bounds() -> None:
    lows = [backoff_s(n, 10, rand=lambda: 0.0) for n in range(1, 6)]
    highs = [backoff_s(n, 10, rand=lambda: 1.0) for n in range(1, 6)]
    assert lows == [5, 10, 20, 40, 80]
    assert highs == [10, 20, 40, 80, 160]


def test_backoff_is_capped_at_the_sqs_maximum_delay() -> None:
    assert backoff_s(30, 10, rand=lambda: 1.0) == MAX_SQS_DELAY_S


def test_retry_after_is_honoured_but_capped() -> None:
    assert backoff_s(1, 1, retry_after_s=120, rand=lambda: 0.0) == 120
    assert backoff_s(1, 1, retry_after_s=5000, rand=lambda: 0.0) == MAX_SQS_DELAY_S


def test_retry_after_parsing() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
    assert parse_retry_after("soon") is None


def test_signing_secret_from_generated_json_or_as_given() -> None:
    assert signing_secret("whsec_abc") == "whsec_abc"
    assert signing_secret('{"key": "hello"}') == "whsec_aGVsbG8="
