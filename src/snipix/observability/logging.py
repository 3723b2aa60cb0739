"""structlog configuration: one pipeline for our logs and the standard library's.

uvicorn, pymongo and the embedded engine log through `logging`; routing them through the
same processors means every line is JSON (or console) alike, carries the request id bound
in `contextvars`, and passes the secret redactor. The redactor is the last line of defence:
code should not log secrets in the first place, but a driver message that quotes a URI
must not leak a password either.

Our own events do not go through `logging`: a structlog call there cost 56 µs
(a LogRecord made twice, the handler's lock, the formatter) and a filtered DEBUG call 12 µs,
a sixth of a cached read. They run the same processors straight into a line written to the
same stream's bytes (structlog's `BytesLogger`), with orjson rendering; calls below the
level are no-ops.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, BinaryIO, TextIO, cast

import orjson
import structlog
from structlog.types import EventDict, Processor

from snipix.settings import MASK, Settings


class SecretRedactor:
    """Replace every configured secret value in any string of a log event."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret containing a shorter one is masked whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, MASK)
            return value
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._clean(v) for v in value)
        return value

    def __call__(self, _logger: Any, _method: str, event_dict: EventDict) -> EventDict:
        if not self._secrets:
            return event_dict
        cleaned: MutableMapping[str, Any] = event_dict
        for key, value in list(cleaned.items()):
            cleaned[key] = self._clean(value)
        return event_dict


def _render_exception_text(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """Format `exc_info` to text before redaction, so tracebacks are redacted too."""
    return structlog.processors.format_exc_info(_logger, _method, event_dict)


_LEADING_KEYS = ("timestamp", "level", "logger", "event", "request_id")


def _leading_keys_first(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """Put when/what/which-request first, so a JSON line reads left to right."""
    ordered = {key: event_dict.pop(key) for key in _LEADING_KEYS if key in event_dict}
    ordered.update(event_dict)
    return ordered


class _NeverFailingStream:
    """stderr's bytes, written as a `logging` handler would: a closed or broken stream (a
    pipe whose reader left) costs the line, never the code that logs.

    structlog's `BytesLogger` writes and flushes each line under a lock of its own; this is
    only the file it is given.
    """

    # structlog keeps one write lock per file, in a weak mapping.
    __slots__ = ("__weakref__", "_stream")

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def write(self, data: bytes) -> int:
        try:
            return self._stream.write(data)
        except (OSError, ValueError):
            return 0

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()


def _json_line(event_dict: Any, **_kwargs: Any) -> str:
    """The JSON line for the standard library's records (its formatter returns text)."""
    try:
        return orjson.dumps(event_dict, default=repr).decode()
    except TypeError:
        # Keys that are not strings, integers past 64 bits: the standard library copes.
        return json.dumps(event_dict, default=repr)


def _json_bytes(event_dict: Any, **_kwargs: Any) -> bytes:
    """The same line as bytes for our own events: orjson's output is written as is."""
    try:
        return orjson.dumps(event_dict, default=repr)
    except TypeError:
        return json.dumps(event_dict, default=repr).encode()


def _encoded(renderer: Processor, stream: TextIO) -> Processor:
    """`renderer`'s text as the bytes the text stream would have written for it."""
    encoding = stream.encoding or "utf-8"
    errors = stream.errors or "strict"

    def render(logger: Any, method: str, event_dict: EventDict) -> bytes:
        text = renderer(logger, method, event_dict)
        assert isinstance(text, str)
        return text.encode(encoding, errors)

    return render


def configure_logging(settings: Settings, *, cache_loggers: bool = False) -> None:
    """Configure structlog and the root logger; safe to call more than once.

    `cache_loggers`: structlog keeps each module's logger once it is first assembled, which
    saves assembling it on every call, but a kept logger never sees a later configuration.
    Only a process that configures logging once and for good passes True: the service's
    app factory (each worker). The CLI configures before `snipix serve` starts its worker
    (in the same process with one worker), and the test suite reconfigures per test (a new
    captured stream, another level), so both leave it off.
    """
    level = logging.getLevelNamesMapping()[settings.log_level]
    redactor = SecretRedactor(settings.secret_values())
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # Tracebacks become text before the redactor runs, in both formats, so they are redacted.
    tail: list[Processor] = [_render_exception_text, redactor]
    # The standard library's formatter returns text; our events are written as bytes.
    renderer: Processor
    line: Processor
    if settings.json_logs:
        tail.append(_leading_keys_first)
        renderer = structlog.processors.JSONRenderer(serializer=_json_line)
        line = structlog.processors.JSONRenderer(serializer=_json_bytes)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        line = _encoded(renderer, sys.stderr)

    stream = cast(BinaryIO, _NeverFailingStream(sys.stderr.buffer))
    structlog.configure(
        processors=[*shared, *tail, line],
        # One line per event straight to stderr's bytes, named like a stdlib logger (the
        # `logger` key) from the name given to `get_logger`.
        logger_factory=structlog.BytesLoggerFactory(stream),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=cache_loggers,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *tail,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn installs its own handlers unless told otherwise; ours format everything.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # The request middleware writes the access line (with request id and route template).
    logging.getLogger("uvicorn.access").disabled = True
    # pymongo logs every command at DEBUG with document contents: never below INFO.
    logging.getLogger("pymongo").setLevel(max(level, logging.INFO))
