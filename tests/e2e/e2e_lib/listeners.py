"""The listeners of the session Envoy: name -> plugin configuration (None = no filter, a control)."""

from __future__ import annotations

from typing import Any

SMALL_LIMIT = 512  # max_body_bytes of the `small_body` listener

# Routed to the recording upstream.
LISTENERS: dict[str, dict[str, Any] | None] = {
    "default": {},
    # Explicit defaults plus `_`-prefixed keys (Higress adds such keys); must behave like `default`.
    "explicit_defaults": {
        "precedence": "meta",
        "baggage": "meta",
        "max_body_bytes": 1048576,
        "_rules_": [{"_match_route_": ["r1"], "config": {"x": 1}}],
        "_comment": "ignored",
    },
    "precedence_header": {"precedence": "header"},
    "baggage_merge": {"baggage": "merge"},
    "baggage_header": {"baggage": "header"},
    "baggage_drop": {"baggage": "drop"},
    "small_body": {"max_body_bytes": SMALL_LIMIT},
    "plain": None,
}

# Routed to the `mcp_peer` cluster (a real MCP SDK server started by test_mcp_sdk.py).
MCP_LISTENERS: dict[str, dict[str, Any] | None] = {"mcp": {}, "mcp_plain": None}

# Routed to the recording upstream, with Envoy's default 1 MiB per-connection buffer limit (the
# other listeners raise it): proves that defaults never turn an oversize body into a 413.
DEFAULT_BUFFER_LISTENERS: dict[str, dict[str, Any] | None] = {"envoy_default_buffer": {}}
