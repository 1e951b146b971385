"""Every bound Baton puts on caller input, in one place: each is checked before the input
reaches a parser (CEL, JSON Schema, expressions) or storage. The README lists them."""

from __future__ import annotations

# Conditions (`when`, handoff trigger conditions): CEL source.
MAX_CONDITION_CHARS = 4096
"""Longest condition, in characters."""
MAX_CONDITION_NESTING = 32
"""Deepest nesting of brackets ( [ { in a condition."""
MAX_CONDITION_OPERATORS = 512
"""Most operators (. [ ( + - * / % ! < > = & | ? :) in a condition; bounds the depth of its
syntax tree, which the CEL parser walks recursively."""

# Workflows.
MAX_STEPS = 1000
"""Most steps in one workflow."""
MAX_DEPENDENCIES = 1000
"""Most `depends_on` entries of one step."""
MAX_FALLBACK_AGENTS = 16
"""Most fallback agents of one step."""
MAX_EXPRESSION_CHARS = 4096
"""Longest string in a mapping (input_mapping, output_mapping, data_mapping)."""
MAX_PATH_SEGMENTS = 64
"""Most segments in one `${...}` path."""
MAX_LIST_INDEX_DIGITS = 9
"""Longest list index in a path, in digits."""
MAX_SCHEMA_PATTERN_CHARS = 1024
"""Longest regular expression (`pattern`, `patternProperties`) in an input schema; patterns
run on RE2, which never backtracks, and must be valid RE2 syntax."""

# Short fields.
MAX_DISPLAY_NAME = 200
MAX_DESCRIPTION = 4096
MAX_WORD = 63
"""Capabilities, tools, tags and label values."""
MAX_LIST_ITEMS = 100
"""Most capabilities, tools, tags, labels, trigger conditions or filter values."""
MAX_ENTRY_POINT = 256
MAX_URL = 2048
MAX_MODEL = 256
MAX_INSTRUCTIONS = 64 * 1024
MAX_TURNS = 100
"""The most model calls an LLM agent's attempt may be allowed (`max_turns`)."""
MAX_REASON = 1024
"""A cancel reason."""
MAX_ERROR_TYPE = 256
MAX_ERROR_MESSAGE = 16 * 1024

# Payloads (google.protobuf.Struct).
MAX_PAYLOAD_DEPTH = 32
"""Deepest nesting of objects and lists in a payload."""

# What endpoints answer (models, `http` tools).
MAX_ANSWER_BYTES = 16 * 1024 * 1024
"""The most of an answer read: past it the attempt (or tool call) fails with
ANSWER_TOO_LARGE. Far above what a step output may be (BATON_MAX_OUTPUT_BYTES)."""

# Durations and times.
MAX_DURATION_SECONDS = 315_576_000_000
"""google.protobuf.Duration's own range: about 10,000 years either way."""
MIN_TIMESTAMP_SECONDS = -62_135_596_800
"""0001-01-01T00:00:00Z, google.protobuf.Timestamp's first second."""
MAX_TIMESTAMP_SECONDS = 253_402_300_799
"""9999-12-31T23:59:59Z, google.protobuf.Timestamp's last second."""
MAX_STEP_DURATION_SECONDS = 366 * 24 * 3600.0
"""Longest step timeout or retry interval: a year."""

# What errors echo back.
MAX_ECHO_CHARS = 80
"""Caller values quoted in error messages are cut to this many characters."""
MAX_STATUS_MESSAGE_CHARS = 1024
MAX_STATUS_METADATA_CHARS = 256
MAX_STATUS_VIOLATIONS = 20


def shorten(value: str, limit: int = MAX_ECHO_CHARS) -> str:
    """`value` cut to `limit` characters, saying how much was cut: for echoing input."""
    if len(value) <= limit:
        return value
    return f"{value[:limit]}…(+{len(value) - limit} characters)"
