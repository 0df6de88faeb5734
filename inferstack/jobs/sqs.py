"""SQS event handling shared by the tier's functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord


def partial_batch_response(event: dict[str, Any], record_handler: Callable[[SQSRecord], Any],
                           context: Any = None) -> dict[str, Any]:
    """Powertools' batch processing: `{"batchItemFailures": [...]}` naming the records whose handler raised,
    so that the event source mapping deletes the rest (`ReportBatchItemFailures`)."""
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                         context=context))
