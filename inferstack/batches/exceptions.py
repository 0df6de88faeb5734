"""Errors of bulk scoring."""

from __future__ import annotations


class BatchesError(Exception):
    """Base class of bulk scoring's errors."""


class BatchNotFoundError(BatchesError):
    """No such batch, or not visible to this API key."""

    def __init__(self, batch_id: str) -> None:
        self.batch_id = batch_id
        super().__init__(batch_id)


class BatchRequestError(BatchesError):
    """A submission that cannot run (input missing or unreadable or not the declared format, an output the
    stack may not write): refused at submit, naming the field."""

    def __init__(self, field: str, detail: str) -> None:
        self.field, self.detail = field, detail
        super().__init__(f"{field}: {detail}")


class BatchFinishedError(BatchesError):
    """The batch already ended: it cannot be cancelled."""

    def __init__(self, batch_id: str, status: str) -> None:
        self.batch_id, self.status = batch_id, status
        super().__init__(f"batch {batch_id} already {status}: only a queued or running batch can be cancelled")


class BatchCancelledError(BatchesError):
    """The batch was cancelled: its remaining chunks are skipped."""


class BatchNotFinishedError(BatchesError):
    """The batch has not ended: it has no results yet."""

    def __init__(self, batch_id: str, status: str) -> None:
        self.batch_id, self.status = batch_id, status
        super().__init__(f"batch {batch_id} is {status}: its results are listed once it ends")
