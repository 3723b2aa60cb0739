"""`snipix transcribe worker`: run transcription jobs in a process of their own.

For deployments that keep recognition off the API replicas (SNIPIX_TRANSCRIBE_WORKERS=0
there): this process claims the jobs any replica queued, SNIPIX_TRANSCRIBE_WORKERS at a
time (at least one), until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import signal

import typer

from snipix.cache.service import Cache
from snipix.cli.frame import command, load_settings
from snipix.cli.services import command_services
from snipix.db.client import connected
from snipix.db.indexes import ensure_catalogue
from snipix.db.launcher import database_endpoint
from snipix.settings import Settings
from snipix.transcription.service import JobRunner

transcribe_app = typer.Typer(help="Speech recognition jobs.")


@transcribe_app.command("worker")
def transcribe_worker() -> None:
    """Claim and run transcription jobs until stopped (SIGTERM, SIGINT)."""
    settings = load_settings()
    with command(settings), database_endpoint(settings) as effective:
        asyncio.run(run_worker(effective))


async def run_worker(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with connected(settings) as client:
        db = client[settings.database_name]
        await ensure_catalogue(db, settings)
        # A job reads the project and writes only the transcript, which no cache holds:
        # there is nothing for this process to invalidate.
        services = await command_services(
            settings, client, cache=Cache.disabled(), name="transcribe-worker"
        )
        runner = JobRunner(services.transcription, max(1, settings.transcribe_workers))
        typer.echo(f"transcription worker {runner.owner} ready", err=True)
        await runner.run(stop)
