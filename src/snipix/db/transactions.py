"""Several writes as one logical change: a transaction where the server has them.

Atlas, any replica set and the embedded engine support multi-document transactions; a
standalone `mongod` does not (it answers IllegalOperation, code 20). On such a server the
unit of work runs its writes without a transaction, in the order its author designed to
be repairable (see docs/architecture.md, "Change records"), and logs once that it does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import OperationFailure

from snipix.db.client import MongoClient

log = structlog.get_logger(__name__)

# "Transaction numbers are only allowed on a replica set member or mongos".
_ILLEGAL_OPERATION = 20

Work = Callable[[AsyncClientSession | None], Awaitable[object]]


class UnitOfWork:
    """Runs a callback inside a transaction (retried on transient errors by the driver)."""

    def __init__(self, client: MongoClient, *, transactions: bool = True) -> None:
        self._client = client
        self._transactions = transactions

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
