"""The `snipix` command: serve, the embedded engine, and the command groups.

Each group is a module of this package (db, retention, logs, backup, users, legacy); what
they share (settings, one-line failures, stop signals, progress bars) is `frame`.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Annotated

import structlog
import typer
import uvicorn

from snipix.auth.token_verifier import TokenVerifier
from snipix.cli.backup import backup_app
from snipix.cli.db import db_app
from snipix.cli.frame import command, fail, load_settings
from snipix.cli.legacy import legacy_app
from snipix.cli.logs import logs_app
from snipix.cli.retention import retention_app
from snipix.cli.users import users_app
from snipix.db.client import connected
from snipix.db.launcher import database_endpoint
from snipix.settings import Settings

log = structlog.get_logger(__name__)

app = typer.Typer(
    name="snipix",
    help="Snipix backend: the API service, its embedded database engine and tools.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(db_app, name="db", no_args_is_help=True)
app.add_typer(retention_app, name="retention", no_args_is_help=True)
app.add_typer(logs_app, name="logs", no_args_is_help=True)
app.add_typer(backup_app)  # `snipix backup`, `snipix restore`
app.add_typer(users_app, name="users", no_args_is_help=True)  # accounts
app.add_typer(legacy_app)  # `snipix import-legacy`, `snipix export-legacy`


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind [SNIPIX_HOST].")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="[SNIPIX_PORT]")] = None,
    workers: Annotated[int | None, typer.Option(min=1, max=64, help="[SNIPIX_WORKERS]")] = None,
) -> None:
    """Run the API (with the embedded engine when MONGODB_URI is not set)."""
    settings = load_settings()
    host = host or settings.host
    port = settings.port if port is None else port
    try:
        # An unusable JWT key: one line now, not a lifespan traceback in every worker.
        TokenVerifier.from_settings(settings)
    except ValueError as error:
        fail(f"invalid setting {error}", code=2)
    _ensure_can_listen(host, port)
    with command(settings), database_endpoint(settings, keep_engine=True) as effective:
        log.info("starting", settings=settings.describe())
        # Fail here, in one line, rather than as a lifespan traceback in every worker.
        asyncio.run(_check_database(effective))
        assert effective.mongodb_uri is not None
        os.environ["MONGODB_URI"] = effective.mongodb_uri.get_secret_value()
        uvicorn.run(
            "snipix.app:create_app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers or settings.workers,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=settings.shutdown_grace_s,
            server_header=False,
            # Hardening: the client address (rate limits, login limits) comes
            # from X-Forwarded-For only when a trusted proxy sent it.
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
        )


def _ensure_can_listen(host: str, port: int) -> None:
    """Fail in one line, before any engine starts, if the address cannot be bound.

    uvicorn would find out only after the whole start-up, and say it in a log record.
    """
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as error:
        reason = error.strerror.lower() if error.strerror else str(error)
        fail(f"cannot listen on {host}:{port}: {reason}")


async def _check_database(settings: Settings) -> None:
    async with connected(settings):
        pass


@app.command()
def engine(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Data directory (default: SNIPIX_DATA_DIR, ./.snipix/data)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="0 picks a free port.")] = 27017,
    parent_pid: Annotated[int | None, typer.Option(hidden=True)] = None,
) -> None:
    """Run the embedded MongoDB-compatible engine in the foreground, like mongod."""
    # Imported here: only this command runs the engine in process (its imports are slow).
    from snipix.db.engine import serve_engine

    settings = load_settings()
    with command(settings):
        asyncio.run(
            serve_engine(
                (data_dir or settings.data_dir).resolve(),
                host=host,
                port=port,
                parent_pid=parent_pid,
            )
        )


@app.command("config")
def show_config() -> None:
    """Print the effective settings, secrets masked."""
    settings = load_settings()
    for name, value in settings.describe().items():
        typer.echo(f"{name}={value}")


def main() -> None:
    app()
