"""The command line: `safellm` (see `safellm.cli.main`)."""

from safellm.cli.main import app, main

__all__ = ["app", "main"]
