"""structlog configuration: one pipeline for our logs and the standard library's.

uvicorn, pymongo and the embedded engine log through `logging`; routing them through the
same processors means every line is JSON (or console) alike, carries the request id bound
in `contextvars`, and passes the secret redactor. The redactor is the last line of defence:
code should not log secrets in the first place, but a driver message that quotes a URI
must not leak a password either.

Our own events do not go through `logging`: a structlog call there cost 56 µs
(a LogRecord made twice, the handler's lock, the formatter) and a filtered DEBUG call 12 µs,
a sixth of a cached read. They run the same processors straight into a line written to the
same stream (`NamedLineLogger`), with orjson rendering; calls below the level are no-ops.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

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


class NamedLineLogger:
    """A structlog logger writing each rendered event as one line; knows its name (the
    `logger` key) as a stdlib logger would."""

    __slots__ = ("_file", "_lock", "name")

    def __init__(self, name: str, file: TextIO, lock: threading.Lock) -> None:
        self.name = name
        self._file = file
        self._lock = lock

    def msg(self, message: str) -> None:
        # Like a `logging` handler, never fail the code that logs: a closed or broken
        # stream (a pipe whose reader left) costs the line, not the request.
        with self._lock:
            try:
                self._file.write(message + "\n")
                self._file.flush()
            except (OSError, ValueError):
                pass

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


class _LineLoggerFactory:
    def __init__(self, file: TextIO) -> None:
        self._file = file
        self._lock = threading.Lock()

    def __call__(self, *args: Any) -> NamedLineLogger:
        name = str(args[0]) if args and args[0] is not None else "snipix"
        return NamedLineLogger(name, self._file, self._lock)


def _json_line(event_dict: Any, **_kwargs: Any) -> str:
    try:
        return orjson.dumps(event_dict, default=repr).decode()
    except TypeError:
        # Keys that are not strings, integers past 64 bits: the standard library copes.
        return json.dumps(event_dict, default=repr)


def configure_logging(settings: Settings) -> None:
    """Configure structlog and the root logger; safe to call more than once."""
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
    renderer: Processor
    if settings.json_logs:
        tail.append(_leading_keys_first)
        renderer = structlog.processors.JSONRenderer(serializer=_json_line)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())

    structlog.configure(
        processors=[*shared, *tail, renderer],
        logger_factory=_LineLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # Not cached: tests (and `snipix` commands) configure more than once per process.
        cache_logger_on_first_use=False,
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
