"""The `baton-server` command: starts the server when it is installed, and otherwise says
which extra installs it (a client-only install ships the command but not the server's
dependencies)."""

from __future__ import annotations

import sys

SERVER_EXTRA = "pip install 'baton-workflows[server]'"


def main() -> None:
    """Entry point of `baton-server`."""
    try:
        from baton_server.__main__ import main as serve
    except ModuleNotFoundError as missing:
        sys.exit(
            f"baton-server: the server is not installed ({missing.name} is missing); "
            f"install it with: {SERVER_EXTRA}"
        )
    serve()
