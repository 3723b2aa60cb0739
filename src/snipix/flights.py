"""One run per key at a time in this process; callers with the same key share its result.

Used by the cache (one database load per entry while many requests miss it at once) and by
renders (the web app sends the same trim from several tabs and on every page open, often
at once, and each identical request would otherwise start its own ffmpeg).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class SingleFlight[T]:
    def __init__(self) -> None:
        self._running: dict[str, asyncio.Future[T]] = {}
        # Callers waiting on another caller's run, by key.
        self._waiting: dict[str, int] = {}

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> T:
        """`work()`'s result, from the run already under way for `key` if there is one.

        A caller that joins a run gets its result or its error. If the caller that started
        the run goes away (its client disconnected), the run is cancelled with it and
        whoever waited starts again, so a render is never orphaned from every request.
        """
        while (running := self._running.get(key)) is not None:
            self._waiting[key] = self._waiting.get(key, 0) + 1
            try:
                return await asyncio.shield(running)
            except asyncio.CancelledError:
                if not running.cancelled():
                    raise
            finally:
                self._waiting[key] -= 1
                if not self._waiting[key]:
                    del self._waiting[key]
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            result = await work()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: waiters get it; nobody else needs a warning
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._running[key]

    def __len__(self) -> int:
        return len(self._running)

    def waiting(self, key: str) -> int:
        """How many callers wait on the run under way for `key`."""
        return self._waiting.get(key, 0)
