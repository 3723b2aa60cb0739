"""`snipix logs`: read the service's own JSON logs without a log platform.

Kept apart from `cli.py`: it needs no settings, database or engine, so it works on a
laptop with a log file copied from production. Errors follow the rest of the command: one
`error: ...` line on stderr, exit 1 (2 for a bad option, which typer reports).
"""

from __future__ import annotations

import gzip
import io
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, TextIO

import typer

from snipix.observability.log_summary import LogSummary, render_text

logs_app = typer.Typer(help="Read the service's JSON log lines (LOG_FORMAT=json).")


@contextmanager
def _open_lines(source: str) -> Iterator[TextIO]:
    """The file (plain or .gz), or stdin for `-`, decoded leniently.

    A log cut mid-character (a rotated or truncated file) must not stop the summary, so
    undecodable bytes are replaced rather than raised.
    """
    if source == "-":
        stream = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
        try:
            yield stream
        finally:
            stream.detach()  # leave the process's stdin open
        return
    if source.endswith(".gz"):
        with gzip.open(source, "rt", encoding="utf-8", errors="replace") as compressed:
            yield compressed
        return
    with open(source, encoding="utf-8", errors="replace") as plain:
        yield plain


@logs_app.command("summarize")
def summarize(
    source: Annotated[str, typer.Argument(metavar="FILE|-", help="A log file, or - for stdin.")],
    top: Annotated[
        int, typer.Option(min=1, max=1000, help="How many routes, query shapes, codes to list.")
    ] = 10,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of tables.")
    ] = False,
) -> None:
    """Requests, error rates, latency percentiles by route, slow queries and error codes."""
    summary = LogSummary()
    try:
        with _open_lines(source) as lines:
            summary.feed_all(lines)  # one line at a time: memory does not grow with the file
    except (OSError, EOFError) as error:  # EOFError: a truncated .gz
        reason = getattr(error, "strerror", None) or str(error)
        typer.echo(f"error: cannot read {source}: {reason}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    report = summary.as_dict(top=top)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        typer.echo(render_text(report))
