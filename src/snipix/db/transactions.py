"""Several writes as one logical change: a transaction where the server runs them side by
side with other work, ordered writes elsewhere.

Replica sets and sharded clusters (Atlas is always one of them) run multi-document
transactions concurrently with everything else, so a change's writes commit together or
not at all. A standalone `mongod` refuses transactions (IllegalOperation, code 20), and the
embedded engine runs one at a time while refusing every other operation, reads included,
until it ends — under two concurrent requests that is an error for one of them. On those
servers a unit of work runs its writes without a transaction, in the order its author
designed to be repairable (see `ProjectService` and docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import OperationFailure

from snipix.db.client import MongoClient

log = structlog.get_logger(__name__)

# "Transaction numbers are only allowed on a replica set member or mongos".
_ILLEGAL_OPERATION = 20


def runs_concurrent_transactions(hello: dict[str, Any]) -> bool:
    """A replica set member or a mongos (what `hello` says), not a standalone server."""
    return "setName" in hello or hello.get("msg") == "isdbgrid"


class UnitOfWork:
    """Runs a callback inside a transaction (retried on transient errors by the driver),
    or, where transactions do not fit, directly with `session=None`."""

    def __init__(self, client: MongoClient, *, transactions: bool = True) -> None:
        self._client = client
        self._transactions = transactions

    @classmethod
    async def for_server(cls, client: MongoClient) -> UnitOfWork:
        hello: dict[str, Any] = await client.admin.command("hello")
        transactions = runs_concurrent_transactions(hello)
        log.info(
            "write mode",
            transactions=transactions,
            reason="replica set or sharded cluster"
            if transactions
            else "standalone server or embedded engine: ordered writes",
        )
        return cls(client, transactions=transactions)

    @property
    def transactional(self) -> bool:
        return self._transactions

    async def run[T](self, work: Callable[[AsyncClientSession | None], Awaitable[T]]) -> T:
        if self._transactions:
            try:
                async with self._client.start_session() as session:
                    return await session.with_transaction(lambda s: work(s))
            except OperationFailure as error:
                if error.code != _ILLEGAL_OPERATION:
                    raise
                self._transactions = False
                log.warning(
                    "transactions unsupported; ordered writes instead",
                    reason="the server is a standalone mongod, not a replica set",
                )
        return await work(None)
