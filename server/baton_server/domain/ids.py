"""Resource ids: what a valid one looks like, and how new ones are made."""

from __future__ import annotations

import re
import uuid

RESOURCE_ID = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
STEP_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}")
ROLE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
"""A caller's role, as BATON_AUTH_TOKENS and approval steps name it."""
# Full-match these (`fullmatch`): `$` would accept a trailing newline.


def new_id(kind: str) -> str:
    """A fresh id such as `agent-3f0c…` (kind, then 32 hex digits)."""
    return f"{kind}-{uuid.uuid4().hex}"


def is_resource_id(value: str) -> bool:
    """True for 1-63 characters of [a-z0-9-], starting with a letter, not ending with '-'."""
    return RESOURCE_ID.fullmatch(value) is not None
