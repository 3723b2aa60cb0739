"""The services of a `snipix` command that works on the database in its own process.

A command is not a replica: it has no rate limits to share and no request to defer a
write for, and it names its own metrics. What it passes is the cache: one that tells the
running service's cache what changed, or none when nothing it writes is cached.
Imported only by the commands that need it (building the services imports every domain).
"""

from __future__ import annotations

from snipix.cache.service import Cache
from snipix.db.client import MongoClient
from snipix.db.deferred import DeferredWrites
from snipix.db.transactions import UnitOfWork
from snipix.observability.metrics import Metrics
from snipix.security.limiter import Limiter
from snipix.services import Services, build_services
from snipix.settings import Settings


async def command_services(
    settings: Settings, client: MongoClient, *, cache: Cache, name: str
) -> Services:
    """Every service on `settings`' database through `client`, as command `name`."""
    return build_services(
        settings,
        client[settings.database_name],
        await UnitOfWork.for_server(client),
        cache=cache,
        deferred=DeferredWrites(),
        limiter=Limiter.in_process(),
        metrics=Metrics(name),
    )
