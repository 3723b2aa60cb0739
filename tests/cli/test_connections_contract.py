"""What `cli/connections.py` takes from uvicorn's protocol internals: fails loudly when an
uvicorn release renames or drops any of it."""

from __future__ import annotations

import asyncio
import inspect
from importlib.metadata import version

from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from snipix.cli.connections import ConnectionLimits, GuardedHttpToolsProtocol

OVERRIDDEN = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_headers_complete",
    "on_message_complete",
)


def test_uvicorn_is_the_tested_minor() -> None:
    assert version("uvicorn").startswith("0.55."), "re-check cli/connections.py, then pin"


def test_the_overridden_callbacks_exist_with_their_signatures() -> None:
    for name in OVERRIDDEN:
        stock = getattr(HttpToolsProtocol, name)
        ours = getattr(GuardedHttpToolsProtocol, name)
        assert ours is not stock
        assert list(inspect.signature(ours).parameters) == list(
            inspect.signature(stock).parameters
        ), name


async def _app(scope: object, receive: object, send: object) -> None:
    raise AssertionError("not called")


async def test_the_state_the_protocol_reads_is_there() -> None:
    GuardedHttpToolsProtocol._limits = ConnectionLimits(1.0, 1, 1.0, 1, 4096, 10)
    try:
        config = Config(app=_app, http="httptools")
        protocol = GuardedHttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
        assert protocol.transport is None
        assert isinstance(protocol.connections, set)
        assert protocol.cycle is None
        assert isinstance(protocol.loop, asyncio.AbstractEventLoop)
        flow = FlowControl.__new__(FlowControl)
        FlowControl.__init__(flow, _FakeTransport())
        assert flow.read_paused is False
        assert "self.more_body = " in inspect.getsource(RequestResponseCycle.__init__)
    finally:
        GuardedHttpToolsProtocol._limits = None


class _FakeTransport:
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
