"""Connection limits of the HTTP trigger: a cap, and timeouts for idle or half-sent sockets.

aiohttp on its own keeps a connection that never finishes its request head for an
hour, and accepts connections until the process runs out of file descriptors (one
client holding 20,000 silent sockets stopped the server accepting anyone). The
:class:`ConnectionGuard` sits between the listening socket and aiohttp's request
handler:

- past ``max_connections`` open connections, a new one gets a fixed 503 and is closed
  at once, before aiohttp builds anything for it;
- a connection that sends nothing for ``idle_timeout`` seconds (before its first
  request or between keep-alive requests) is closed;
- once a request has begun, its head (request line and headers) must be complete
  within ``header_timeout`` seconds, else 408 and close;
- the body must arrive within ``body_timeout`` seconds of the head; the source enforces
  this one when it reads the body (:data:`LIMIT_SETTINGS` lists all four);
- a connection whose request was refused for overload (503, ``Retry-After``) is not
  read for :data:`RETRY_AFTER` seconds (:meth:`_GuardedConnection.hold`): a client
  that retries at once instead of after the delay gets its next answer no sooner, so
  refusals cannot take the loop from the waves however fast clients retry.

Every timer runs on the loop (``call_at``); the guard starts no task and no thread.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from ..strategies.base import Setting
from ._common import positive_number

LIMIT_SETTINGS: tuple[Setting, ...] = (
    Setting("max_connections", "int", 256, "open connections at most; more are answered "
            "503 and closed at once", minimum=1),
    Setting("header_timeout", "float", 10.0, "seconds a client has to send a request's "
            "line and headers once it has begun (a number above 0)"),
    Setting("body_timeout", "float", 30.0, "seconds a client has to send a request's body "
            "after its headers (a number above 0)"),
    Setting("idle_timeout", "float", 15.0, "seconds a connection may stay silent before "
            "its first request or between requests (a number above 0)"),
)
LIMIT_VALIDATORS = {"header_timeout": positive_number, "body_timeout": positive_number,
                    "idle_timeout": positive_number}


@dataclass(frozen=True)
class Limits:
    """The four limits, from a source's resolved settings."""

    max_connections: int = 256
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    idle_timeout: float = 15.0

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Limits:
        """The limits from resolved settings (every key present)."""
        return cls(int(values["max_connections"]), float(values["header_timeout"]),
                   float(values["body_timeout"]), float(values["idle_timeout"]))


def raw_response(status: int, message: str) -> bytes:
    """A complete HTTP/1.1 answer with a JSON error that closes the connection; written
    straight to a socket where aiohttp has no request to answer."""
    body = json.dumps({"error": message}).encode()
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n")
    if status == 503:
        head += f"Retry-After: {RETRY_AFTER}\r\n"
    return head.encode() + b"\r\n" + body


#: seconds a refused client is told to wait (Retry-After), and its connection is not read
RETRY_AFTER = 1

_TOO_MANY = raw_response(503, "busy: too many open connections")
_HEAD_TOO_SLOW = raw_response(408, "request headers not received in time")


class JsonErrorHandler(RequestHandler):
    """aiohttp's request handler, but a request it cannot parse gets a JSON 400 that
    does not repeat the request (aiohttp's plain text echoes the bad line back)."""

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """A short JSON error for a request aiohttp could not parse or handle."""
        if request.writer.output_size > 0:
            # aiohttp's own rule: part of an answer went out, no other can follow
            raise ConnectionError("an answer was partly sent; cannot send an error")
        self.logger.debug("bad request from %s (%s): %s", request.remote, status, message)
        text = ("bad request: not a valid HTTP/1.1 request" if status == 400
                else HTTPStatus(status).phrase.lower())
        response = web.json_response({"error": text}, status=status)
        response.force_close()
        return response


class _GuardedConnection(asyncio.Protocol):
    """One accepted socket: aiohttp's handler inside, the guard's timer around it."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        #: "idle" (no request begun), "head" (a request's head is arriving), "busy"
        self.phase = "idle"
        self._held = False

    # -- asyncio.Protocol, forwarded to aiohttp's handler
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        guard = self._guard
        if len(guard.connections) >= guard.limits.max_connections:
            guard.refused += 1
            transport.write(_TOO_MANY)
            transport.close()
            return
        self._transport = transport
        guard.connections[transport] = self
        self._inner = guard.make_handler()
        self._inner.connection_made(transport)
        self._arm(guard.limits.idle_timeout)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if self.phase == "idle":
            self.phase = "head"
            self._arm(self._guard.limits.header_timeout)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._transport is not None:
            self._guard.connections.pop(self._transport, None)
            self._transport = None
        if self._inner is not None:
            self._inner.connection_lost(exc)

    # -- phases, told by the source's middleware
    def request_started(self) -> None:
        """The head is complete: no timer (the body's deadline is the source's)."""
        self.phase = "busy"
        self._disarm()

    def request_finished(self) -> None:
        """Answered: the connection may now stay idle for ``idle_timeout``."""
        self.phase = "idle"
        if self._transport is not None and not self._transport.is_closing():
            self._arm(self._guard.limits.idle_timeout)

    def hold(self) -> None:
        """Read nothing more from this client for :data:`RETRY_AFTER` seconds (it was
        refused for overload); its answer is still sent at once."""
        transport = self._transport
        if transport is None or transport.is_closing() or self._held:
            return
        self._held = True
        transport.pause_reading()
        asyncio.get_running_loop().call_later(RETRY_AFTER, self._release)

    def _release(self) -> None:
        self._held = False
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading()

    # -- the one timer
    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = asyncio.get_running_loop().call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        self._guard.timed_out += 1
        if self.phase == "head":
            transport.write(_HEAD_TOO_SLOW)
        transport.close()


class ConnectionGuard:
    """Caps and times the connections of one server (see the module docstring)."""

    def __init__(self, limits: Limits, make_handler: Callable[[], asyncio.Protocol]) -> None:
        self.limits = limits
        self.make_handler = make_handler
        self.connections: dict[asyncio.BaseTransport, _GuardedConnection] = {}
        #: connections answered 503 at the cap, and closed by a timeout
        self.refused = 0
        self.timed_out = 0

    def protocol(self) -> asyncio.Protocol:
        """The protocol factory for ``loop.create_server``."""
        return _GuardedConnection(self)

    def of(self, transport: asyncio.BaseTransport | None) -> _GuardedConnection | None:
        """The guarded connection a request came on (None once it is closed)."""
        return self.connections.get(transport) if transport is not None else None


class GuardedSite(web.TCPSite):
    """A TCP site whose connections go through a :class:`ConnectionGuard`."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, limits: Limits) -> None:
        super().__init__(runner, host, port)
        self.guard = ConnectionGuard(limits, self._make_handler)

    def _make_handler(self) -> asyncio.Protocol:
        server = self._runner.server
        assert server is not None
        # Server() builds its handler from these keyword arguments; build ours from them
        return JsonErrorHandler(server, loop=asyncio.get_running_loop(), **server._kwargs)

    async def start(self) -> None:
        """Listen (aiohttp's TCPSite.start, with the guard as the protocol)."""
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self.guard.protocol, self._host, self._port, backlog=self._backlog,
            reuse_address=self._reuse_address, reuse_port=self._reuse_port)
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
