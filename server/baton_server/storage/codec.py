"""How JSON documents are stored: compact JSON (orjson: this runs on every state change),
zstd-compressed above a size threshold."""

from __future__ import annotations

from typing import Any

import orjson
import zstandard

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class Codec:
    """Encodes documents to bytes and back. A zstd frame announces itself by its magic
    number, and JSON never starts with it, so no extra marker is stored."""

    def __init__(self, compress_threshold: int = 1024, level: int = 3) -> None:
        self.compress_threshold = compress_threshold
        self._level = level

    def encode(self, doc: Any) -> bytes:
        """Serialises `doc` to JSON, compressing it when it is larger than the threshold."""
        raw = orjson.dumps(doc)
        if len(raw) > self.compress_threshold:
            # A compressor is cheap to make and not safe to share across threads.
            return zstandard.ZstdCompressor(level=self._level).compress(raw)
        return raw

    @staticmethod
    def decode(blob: bytes) -> Any:
        """Reverses `encode`."""
        if blob[:4] == _ZSTD_MAGIC:
            blob = zstandard.ZstdDecompressor().decompress(blob)
        return orjson.loads(blob)
