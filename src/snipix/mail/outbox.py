"""The outbox: messages are accepted at once and sent in the background.

`submit` never waits on the network: it takes the message if the outbox has room (at most
`capacity` messages waiting or being sent) and answers whether it did. Each message is then
delivered by its own task, at most `concurrency` at once, retried with exponential
backoff and full jitter (`base_s` doubling to `cap_s`) up to `attempts` times. So a mail
server that is slow, down or refusing connections costs requests nothing; the messages
wait (bounded) and go out when it is back. A message given up (attempts used up, a
permanent refusal, the outbox full, shutdown) is logged with its kind and the recipient's
domain only: its body holds a single-use token.
"""

from __future__ import annotations

import asyncio
import random
from typing import Final

import structlog

from snipix.mail.message import Message
from snipix.mail.transport import DeliveryFailed, Transport
from snipix.observability.metrics import Metrics
from snipix.settings import Settings

log = structlog.get_logger(__name__)

DEFAULT_CONCURRENCY: Final = 4


class MailMetrics:
    """`snipix_mail_total{kind,outcome}`: sent, retried, failed, dropped."""

    def __init__(self, metrics: Metrics) -> None:
        self._total = metrics.counter(
            "snipix_mail_total",
            "Outgoing mail by template and outcome (sent, retried, failed, dropped).",
            ["kind", "outcome"],
        )

    def count(self, kind: str, outcome: str) -> None:
        self._total.labels(kind=kind, outcome=outcome).inc()


class Outbox:
    def __init__(
        self,
        transport: Transport,
        *,
        capacity: int,
        attempts: int,
        base_s: float,
        cap_s: float,
        metrics: MailMetrics | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self._transport = transport
        self._capacity = capacity
        self._attempts = attempts
        self._base_s = base_s
        self._cap_s = cap_s
        self._metrics = metrics
        self._sending = asyncio.Semaphore(concurrency)
        # Each message's delivery task (a task cancelled at shutdown, even one that never
        # ran, is reported as given up by `_done`).
        self._tasks: dict[asyncio.Task[None], Message] = {}
        self._closed = False

    @classmethod
    def from_settings(
        cls, settings: Settings, transport: Transport, metrics: MailMetrics | None = None
    ) -> Outbox:
        return cls(
            transport,
            capacity=settings.mail_outbox_size,
            attempts=settings.mail_retry_attempts,
            base_s=settings.mail_retry_base_ms / 1000,
            cap_s=settings.mail_retry_cap_ms / 1000,
            metrics=metrics,
        )

    @property
    def pending(self) -> int:
        """Messages accepted and not yet delivered or given up."""
        return len(self._tasks)

    def submit(self, message: Message) -> bool:
        """Take `message` for delivery; False (logged, nothing queued) when the outbox is
        full or closed. Never blocks."""
        if self._closed or len(self._tasks) >= self._capacity:
            self._count(message.kind, "dropped")
            log.warning(
                "mail dropped: outbox full" if not self._closed else "mail dropped: shutting down",
                kind=message.kind,
                to_domain=message.recipient_domain,
                pending=len(self._tasks),
            )
            return False
        task = asyncio.get_running_loop().create_task(
            self._deliver(message), name=f"mail-{message.kind}"
        )
        self._tasks[task] = message
        task.add_done_callback(self._done)
        return True

    def _done(self, task: asyncio.Task[None]) -> None:
        message = self._tasks.pop(task)
        if task.cancelled():
            self._give_up(message, "shut down before delivery")

    async def _deliver(self, message: Message) -> None:
        reason, attempt = "not attempted", 0
        for attempt in range(1, self._attempts + 1):
            try:
                async with self._sending:
                    await self._transport.deliver(message)
            except DeliveryFailed as error:
                reason = str(error)
                if error.permanent or attempt == self._attempts:
                    break
                backoff = min(self._cap_s, self._base_s * 2 ** (attempt - 1))
                wait_s = random.uniform(0, backoff)  # noqa: S311 (jitter, not a secret)
                self._count(message.kind, "retried")
                log.info(
                    "mail not sent yet; retrying",
                    kind=message.kind,
                    to_domain=message.recipient_domain,
                    attempt=attempt,
                    reason=reason,
                    wait_s=round(wait_s, 3),
                )
                await asyncio.sleep(wait_s)
            else:
                self._count(message.kind, "sent")
                log.info("mail sent", kind=message.kind, to_domain=message.recipient_domain)
                return
        self._give_up(message, reason, attempt)

    def _give_up(self, message: Message, reason: str, attempts: int = 0) -> None:
        self._count(message.kind, "failed")
        log.error(
            "mail undeliverable",
            kind=message.kind,
            to_domain=message.recipient_domain,
            reason=reason,
            attempts=attempts,
        )

    def _count(self, kind: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.count(kind, outcome)

    async def close(self, grace_s: float = 0.0) -> None:
        """Stop taking messages; wait up to `grace_s` for those in flight, then cancel the
        rest (each logged as undeliverable)."""
        self._closed = True
        tasks = set(self._tasks)
        if not tasks:
            return
        if grace_s > 0:
            await asyncio.wait(tasks, timeout=grace_s)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
