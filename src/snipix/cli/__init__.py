"""The `snipix` command line (`snipix.cli:main`, `python -m snipix`)."""

from snipix.cli.main import app, main

__all__ = ["app", "main"]
