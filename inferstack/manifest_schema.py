"""The manifest's schema version (`schema = 1` at the top of `inferstack.toml`).

A project made by `inferstack init` with one release keeps working after an upgrade: every release reads the
schema versions it lists here. A manifest of a newer schema than this release reads is refused with the
advice to upgrade; one of an older schema is refused with what changed since, so that its author can edit it
(and set the new number). A manifest without `schema` predates the versioning: it is schema 1.
"""

from __future__ import annotations

from typing import Any

#: The schema this release writes (`inferstack init`) and reads.
SCHEMA_VERSION = 1
#: The first schema.
FIRST_SCHEMA = 1
#: What changed in each schema after the first: {version: what a manifest of the version before must change}.
#: A release that changes the manifest incompatibly raises SCHEMA_VERSION and says here what to edit.
CHANGES: dict[int, str] = {}


def check_schema(raw: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The manifest without its `schema` key, and the problems with that key (none when this release reads it)."""
    rest = {k: v for k, v in raw.items() if k != "schema"}
    version = raw.get("schema", FIRST_SCHEMA)
    if isinstance(version, bool) or not isinstance(version, int):
        return rest, [("schema", f"expected an integer schema version, e.g. `schema = {SCHEMA_VERSION}`, "
                                 f"got {version!r}")]
    if version > SCHEMA_VERSION:
        return rest, [("schema", f"this manifest is schema {version}, newer than this release of inferstack reads "
                                 f"(schema {SCHEMA_VERSION}): upgrade it (`pip install -U inferstack`)")]
    if version < FIRST_SCHEMA:
        return rest, [("schema", f"unknown schema version {version}: this release of inferstack reads schema "
                                 f"{SCHEMA_VERSION}")]
    if version < SCHEMA_VERSION:
        changes = [f"schema {v}: {CHANGES.get(v, 'see the changelog')}" for v in range(version + 1,
                                                                                       SCHEMA_VERSION + 1)]
        return rest, [("schema", f"this manifest is schema {version}; this release of inferstack reads schema "
                                 f"{SCHEMA_VERSION}. Update it, then set `schema = {SCHEMA_VERSION}`: "
                                 + "; ".join(changes))]
    return rest, []
