"""The `jobrun` command: thin typer commands over App, Service and the store.

Exit codes: 0 done, 1 not found or refused, 2 usage error, 78 configuration error.
Errors are one line on stderr (a traceback only with --debug).
"""

from . import jobs, service, store  # noqa: F401 - registers the commands
from .base import cli, main

__all__ = ["cli", "main"]
