"""The `snipix` command: serve, the embedded engine, and the command groups.

Each group is a module of this package (db, retention, logs, backup, users, legacy,
timeline); what they share (settings, one-line failures, stop signals, progress bars) is
`frame`. A group's
module is imported when its command runs, not for every command: `snipix engine` (started
by `serve` and by every tool without MONGODB_URI) loads neither the web stack nor the
import/export code, and a tool starts in about half the time.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import socket
from pathlib import Path
from typing import Annotated, Any

import structlog
import typer
from typer.core import TyperGroup

from snipix.cli.frame import command, fail, load_settings
from snipix.db.client import connected
from snipix.db.launcher import database_endpoint
from snipix.settings import Settings

log = structlog.get_logger(__name__)

# Command name -> (module, its Typer). The name is a group (`snipix db ...`: the Typer
# itself) unless that Typer has a command of the name (`snipix backup`).
_LAZY: dict[str, tuple[str, str]] = {
    "db": ("snipix.cli.db", "db_app"),
    "retention": ("snipix.cli.retention", "retention_app"),
    "transcribe": ("snipix.cli.transcription", "transcribe_app"),
    "logs": ("snipix.cli.logs", "logs_app"),
    "backup": ("snipix.cli.backup", "backup_app"),
    "restore": ("snipix.cli.backup", "backup_app"),
    "users": ("snipix.cli.users", "users_app"),
    "import-legacy": ("snipix.cli.legacy", "legacy_app"),
    "export-legacy": ("snipix.cli.legacy", "legacy_app"),
    "timeline": ("snipix.cli.timeline", "timeline_app"),
}


class _LazyCommands(TyperGroup):
    """The root group: `serve`, `engine` and `config` defined here, the rest imported on
    first use (click's documented pattern for lazily loaded subcommands)."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *_LAZY]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        found = super().get_command(ctx, cmd_name)
        if found is not None or cmd_name not in _LAZY:
            return found
        module, attribute = _LAZY[cmd_name]
        loaded = typer.main.get_group(getattr(importlib.import_module(module), attribute))
        command = loaded.get_command(ctx, cmd_name)
        if command is not None:
            return command
        loaded.name = cmd_name
        loaded.no_args_is_help = True
        return loaded


app = typer.Typer(
    name="snipix",
    help="Snipix backend: the API service, its embedded database engine and tools.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_LazyCommands,
)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind [SNIPIX_HOST].")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="[SNIPIX_PORT]")] = None,
    workers: Annotated[int | None, typer.Option(min=1, max=64, help="[SNIPIX_WORKERS]")] = None,
) -> None:
    """Run the API (with the embedded engine when MONGODB_URI is not set)."""
    # Imported here: the web stack is this command's alone.
    import uvicorn

    from snipix.auth.token_verifier import TokenVerifier
    from snipix.cli.connections import GuardedHttpToolsProtocol

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
            # Header, body and idle timeouts, the head size limit and the connection
            # bound (cli/connections.py; docs/operations.md, "Security model").
            http=GuardedHttpToolsProtocol,
            timeout_keep_alive=settings.http_keepalive_s,
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
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Threads running the engine's writes; reads have one of their own (default 1; "
            "docs/engine.md).",
        ),
    ] = None,
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
                threads=threads,
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
