"""`python -m baton_server`: start the server with settings from the environment and flags."""

from __future__ import annotations

import sys

import uvloop

from baton_server.app import serve
from baton_server.config import Settings
from baton_server.logs import configure


def main() -> None:
    """Entry point of `python -m baton_server` and the `baton-server` command."""
    settings = Settings.load(sys.argv[1:])
    configure(settings.log_level, settings.log_format)
    uvloop.run(serve(settings))


if __name__ == "__main__":
    main()
