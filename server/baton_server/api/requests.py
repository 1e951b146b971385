"""Request plumbing shared by the servicers: page sizes and opaque page tokens, FieldMask
paths, and the idempotency fingerprint of a mutating request."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from google.protobuf import field_mask_pb2
from google.protobuf.message import Message

from baton_server.domain.paging import Page
from baton_server.errors import invalid_field, raise_if_invalid
from baton_server.idempotency import RequestInfo
from baton_server.language.validation import check_words

T = TypeVar("T")
M = TypeVar("M", bound=Message)
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(value: int) -> int:
    """AIP-158: 0 means the default, more than the maximum is lowered to it."""
    if value < 0:
        raise invalid_field("page_size", "must not be negative")
    return min(value or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


class PageTokens:
    """Opaque, signed page tokens binding a cursor to the list method and filters that made
    it: a token that was altered, or sent with other filters, is refused."""

    def __init__(self, secret: bytes, max_page_bytes: int = 2 * 1024 * 1024) -> None:
        self._secret = secret
        self._max_page_bytes = max_page_bytes

    def encode(self, cursor: int, scope: str, filters: Mapping[str, Any]) -> str:
        """A token for the page after `cursor`."""
        body = json.dumps({"c": cursor, "f": _digest(scope, filters)}, separators=(",", ":"))
        raw = body.encode()
        mac = hmac.new(self._secret, raw, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(mac + raw).decode().rstrip("=")

    def decode(self, token: str, scope: str, filters: Mapping[str, Any]) -> int:
        """The cursor in `token` ('' gives 0); raises INVALID_ARGUMENT if it is not ours."""
        if not token:
            return 0
        try:
            blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            mac, raw = blob[:16], blob[16:]
            valid = hmac.compare_digest(
                mac, hmac.new(self._secret, raw, hashlib.sha256).digest()[:16]
            )
            body = json.loads(raw) if valid else None
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("c"), int):
            raise invalid_field(
                "page_token", "is not a page token issued by this service", "INVALID_PAGE_TOKEN"
            )
        if body.get("f") != _digest(scope, filters):
            raise invalid_field(
                "page_token",
                "was issued for a different list or different "
                "filters; repeat the filters of the first request",
                "INVALID_PAGE_TOKEN",
            )
        return int(body["c"])

    async def page(
        self,
        scope: str,
        request: Any,
        filters: Mapping[str, Any],
        fetch: Callable[[int, int], Awaitable[Page[T]]],
        convert: Callable[[T], M],
    ) -> tuple[list[M], str]:
        """Serves one page of a List request: checks `page_size` and `page_token` (which
        must come from the same `scope` and `filters`), calls `fetch(after, limit)`, and
        returns the items as messages with the next page's token ('' on the last page).
        A page stops early, with a token, when more items would not fit in a message."""
        limit = page_size(request.page_size)
        after = self.decode(request.page_token, scope, filters)
        page = await fetch(after, limit)
        messages: list[M] = []
        size = 0
        for item in page.items:
            message = convert(item)
            size += message.ByteSize() + 8  # + the field's tag and length
            if messages and size > self._max_page_bytes:
                break
            messages.append(message)
        page = page.cut(len(messages))
        token = "" if page.next_after is None else self.encode(page.next_after, scope, filters)
        return messages, token


def _digest(scope: str, filters: Mapping[str, Any]) -> str:
    canonical = json.dumps([scope, filters], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def filter_words(field: str, values: Sequence[str]) -> list[str]:
    """A list filter's values (capabilities, tags), bounded like the fields they match."""
    raise_if_invalid(check_words(field, list(values)))
    return sorted(set(values))


def request_info(method: str, request: Message) -> RequestInfo:
    """The request id of a mutating request and a fingerprint of everything else in it
    (none without a request id: nothing is remembered then)."""
    request_id = getattr(request, "request_id", "")
    if len(request_id) > 128:
        raise invalid_field("request_id", "is longer than 128 characters")
    if not request_id:
        return RequestInfo(method=method)
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField("request_id")
    fingerprint = hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()
    return RequestInfo(method=method, request_id=request_id, fingerprint=fingerprint)


def update_fields(
    mask: field_mask_pb2.FieldMask,
    writable: frozenset[str],
    aliases: Mapping[str, str] | None = None,
    resource: str = "resource",
) -> set[str]:
    """The domain fields an update replaces: every writable field for an empty mask or `*`,
    otherwise the named top-level fields (after `aliases`, e.g. oneof members -> `runtime`)."""
    paths = list(mask.paths)
    if not paths or paths == ["*"]:
        return set(writable)
    fields = set()
    for i, path in enumerate(paths):
        name = (aliases or {}).get(path, path)
        if name not in writable:
            known = ", ".join(sorted(writable | set(aliases or {})))
            raise invalid_field(
                f"update_mask.paths[{i}]",
                f"{path!r} is not a field of {resource} that can be updated (top-level "
                f"fields only: {known})",
                "INVALID_UPDATE_MASK",
            )
        fields.add(name)
    return fields
