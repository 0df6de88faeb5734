"""`[alerts]`: who hears of the deployment's alarms.

```toml
[alerts]
emails = ["oncall@example.com"]                 # each confirms the subscription SNS mails it
https = ["https://events.example.com/alarms"]   # an incident tool's webhook (SNS confirms it too)
```

Every alarm of the stack notifies one SNS topic (KMS-encrypted) when it goes off and when it clears. The
subscribers above hear only the per-model composite alarms (and the API's): one incident pages once, however
many of a model's alarms it sets off.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError(f"{value!r} is not an email address (name@domain.tld)")
    return value


def _https(value: str) -> str:
    if not re.match(r"^https://[^/\s]+", value):
        raise ValueError(f"{value!r}: an HTTPS subscription needs an https:// URL")
    return value


class Alerts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    emails: list[Annotated[str, AfterValidator(_email)]] = Field(default_factory=list, max_length=20)
    https: list[Annotated[str, AfterValidator(_https)]] = Field(default_factory=list, max_length=20)
