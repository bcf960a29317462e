"""``http_request``: an aiohttp server whose requests trigger waves and get their results.

One route, ``method path``; anything else gets 404 or 405. Every answer of the
server is JSON ``{"error": "…"}`` unless it is a wave's value: errors never show
aiohttp's HTML pages or a traceback (a middleware turns every exception into a
short JSON error and logs the details).

Security defaults: the server binds 127.0.0.1 only, and with ``auth`` ``token``
(the default) each request must carry ``Authorization: Bearer <token>`` or
``X-Loom-Token: <token>``; the token is ``$LOOM_HTTP_TOKEN`` when set, otherwise
fresh per source (``secrets.token_urlsafe(24)``), and ``start()`` reports it.
Tokens are compared with :func:`hmac.compare_digest`, before routing: a client
without the token gets 401 for every path, never a 404 naming the real route. Bodies
over ``max_body_bytes`` get 413; a request aiohttp cannot parse gets a JSON 400 that
does not repeat it.

Limits (:mod:`.http_guard`): at most ``max_connections`` open connections (more get
503 and are closed at once), ``idle_timeout`` for a silent connection,
``header_timeout`` for a request's head once begun (408), ``body_timeout`` for its
body after the head (408).

Bodies are parsed strictly by Content-Type: ``application/json`` (and
``*/*+json``) → the parsed value (NaN and Infinity are refused); ``text/*`` → a
string decoded by its charset (UTF-8 if none); ``application/x-www-form-urlencoded``
→ a dict (a name given several times maps to a list); an empty body → None;
anything else → 415. The query string becomes a dict the same way.

Payload: ``{"type": "http_request", "method", "path", "query", "headers"
(lower-case names, without authorization and x-loom-token), "body", "remote",
"time": ISO-8601 UTC}``.

Overload: when the engine would drop the trigger (every wave slot busy and the
queue full, see :class:`~.base.Admission`), the request gets 503 with
``Retry-After: 1`` before its body is read, so refusing stays cheap and the waves
keep their pace.

Response. ``trigger(payload)`` returning None (the wave was dropped) → 503. Else
the wave's future is awaited, shielded (a client that goes away or a timeout
never cancels the wave), for up to ``response_timeout`` seconds → 504 after
that. A successful wave's value: ``str`` → ``text/plain; charset=utf-8``;
``bytes`` → ``application/octet-stream``; anything else → JSON (values JSON
cannot hold go through :func:`~loom.engine.values.to_jsonable`). A failed wave
→ 500 with a generic message and its ``error_id`` (the run's ``wave_failed`` event
has the full error: a message may hold secrets); with ``expose_errors`` true, the
first line of the error instead. A wave future that was cancelled (the
run stopped) → 503.

With ``response`` ``stream`` the answer is ``text/event-stream`` (Server-Sent Events),
sent at once: each ``branch_completed`` / ``item_completed`` event of the request's own
wave as it happens (the trigger's :class:`~.base.WaveWatch`; other waves' events never
come), then ``event: result`` with the value as strict JSON, or ``event: error`` with the
same body as the 500 (or the timeout's message), then the end. A client that hangs up
only ends its stream: the wave is never awaited by the handler, so it runs on.

Stopping: ``stop_accepting()`` closes the listening socket, so new connections
are refused, while requests already in progress still get their answer (a new
request on an open keep-alive connection gets 503). ``aclose()`` then closes the
connections; in-flight handlers get :data:`SHUTDOWN_TIMEOUT` seconds, and aclose()
ends within twice that (under a second). The waves themselves are never cancelled
by the server: they belong to the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import secrets
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import hdrs, web
from multidict import MultiMapping

from ..strategies.base import Setting, shown
from ..values import dumps, to_jsonable
from ._common import check_values, positive_number, resolve, utc_now
from .base import Admission, SourceServices, Trigger, WaveResult, WaveWatch
from .http_guard import (
    LIMIT_SETTINGS,
    LIMIT_VALIDATORS,
    RETRY_AFTER,
    ConnectionGuard,
    GuardedSite,
    Limits,
)

log = logging.getLogger("loom.sources.http")

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
TOKEN_ENV = "LOOM_HTTP_TOKEN"
#: aiohttp's shutdown timeout: aclose() gives in-flight requests this long to finish,
#: then as long again after cancelling them, so it ends within twice this
SHUTDOWN_TIMEOUT = 0.4
#: longest error message sent to a client (a wave's error is cut there)
MAX_ERROR_CHARS = 500

HTTP_REQUEST_SETTINGS: tuple[Setting, ...] = (
    Setting("host", "str", "127.0.0.1", "address to listen on (127.0.0.1: this machine only)"),
    Setting("port", "int", 0, "port to listen on (0: any free port, reported at start)",
            minimum=0),
    Setting("path", "str", "/", "the URL path served (starts with /)"),
    Setting("method", "choice", "POST", "the HTTP method served", choices=METHODS),
    Setting("auth", "choice", "token", "token: requests need the run's token "
            f"(${TOKEN_ENV}, or a fresh one reported at start); none: no check",
            choices=("token", "none")),
    Setting("max_body_bytes", "int", 1024 * 1024, "largest request body accepted", minimum=1),
    Setting("response_timeout", "float", 30.0, "seconds to wait for the wave before "
            "answering 504 (a number above 0)"),
    Setting("response", "choice", "single", "single: one answer with the wave's value; "
            "stream: Server-Sent Events of the wave's branch and item results, then its "
            "value", choices=("single", "stream")),
    Setting("expose_errors", "bool", False, "a failed wave's 500 carries its error "
            "message (default: a generic message and the error id the run's log has)"),
    *LIMIT_SETTINGS,
)


def _check_port(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535:
        return None
    return f"must be a port number from 0 to 65535, not {shown(value)}"


def _check_path(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith("/"):
        return None
    return f"must be a URL path starting with '/', not {shown(value)}"


def _check_host(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return None
    return f"must be a host name or address, not {shown(value)}"


_VALIDATORS = {"port": _check_port, "path": _check_path, "host": _check_host,
               "response_timeout": positive_number, **LIMIT_VALIDATORS}


def check_http_request(metadata: Mapping[str, Any]) -> list[str]:
    """Messages about an http_request source's settings."""
    return check_values(HTTP_REQUEST_SETTINGS, metadata, validators=_VALIDATORS)


class _Reject(Exception):
    """Answer the request with this status and JSON error message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str, headers: Mapping[str, str] | None = None, *,
           close: bool = False) -> web.Response:
    """A JSON error answer; ``close`` ends the connection after it (aiohttp would
    otherwise linger, reading a body nobody will look at)."""
    response = web.json_response({"error": message}, status=status, headers=headers)
    if close:
        response.force_close()
    return response


def _to_dict(pairs: MultiMapping[str] | list[tuple[str, str]]) -> dict[str, Any]:
    """A dict from name/value pairs; a name given several times maps to a list."""
    items = pairs.items() if isinstance(pairs, MultiMapping) else pairs
    result: dict[str, Any] = {}
    for name, value in items:
        if name not in result:
            result[name] = value
        elif isinstance(result[name], list):
            result[name].append(value)
        else:
            result[name] = [result[name], value]
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _decode(body: bytes, charset: str) -> str:
    try:
        return body.decode(charset)
    except LookupError:
        raise _Reject(400, f"unknown charset {charset!r}") from None
    except UnicodeDecodeError as exc:
        raise _Reject(400, f"the body is not valid {charset}: {exc.reason} at byte "
                           f"{exc.start}") from None


def parse_body(body: bytes, content_type: str | None, charset: str | None) -> Any:
    """The request body as a value, by its Content-Type; raises _Reject (400, 415)."""
    if not body:
        return None
    if content_type is None:
        raise _Reject(415, "a request with a body needs a Content-Type")
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            # json.loads detects UTF-8/16/32 in bytes itself when no charset is given
            text: str | bytes = _decode(body, charset) if charset else body
            return json.loads(text, parse_constant=_reject_constant)
        except RecursionError:
            raise _Reject(400, "invalid JSON: nested too deeply") from None
        except ValueError as exc:
            raise _Reject(400, f"invalid JSON: {exc}") from None
    if content_type.startswith("text/"):
        return _decode(body, charset or "utf-8")
    if content_type == "application/x-www-form-urlencoded":
        encoding = charset or "utf-8"
        try:
            return _to_dict(parse_qsl(_decode(body, encoding), keep_blank_values=True,
                                      encoding=encoding, errors="strict"))
        except UnicodeDecodeError as exc:
            raise _Reject(400, f"invalid form data: {exc.reason}") from None
    raise _Reject(415, f"unsupported Content-Type {content_type!r}: send application/json, "
                       "text/*, application/x-www-form-urlencoded or no body")


def failure_answer(result: WaveResult, expose_errors: bool = False) -> dict[str, Any]:
    """What a client learns of a failed wave: a generic message and its error id, or
    with ``expose_errors`` the first line of the error."""
    if not expose_errors:
        reference = f" (error id {result.error_id})" if result.error_id else ""
        return {"error": f"the wave failed{reference}: the run's log has the details",
                "error_id": result.error_id}
    message = (result.error or "the wave failed").strip().splitlines()
    return {"error": (message[0] if message else "the wave failed")[:MAX_ERROR_CHARS]}


def wave_response(result: WaveResult, expose_errors: bool = False) -> web.Response:
    """The HTTP answer for a finished wave; a failure's message only if ``expose_errors``."""
    if not result.ok:
        return web.json_response(failure_answer(result, expose_errors), status=500)
    value = result.value
    if isinstance(value, str):
        return web.Response(text=value, content_type="text/plain", charset="utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return web.Response(body=bytes(value), content_type="application/octet-stream")
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        # sets, objects, NaN, cycles: the engine's reporting form, without its
        # preview limits (this is the answer itself, not a preview)
        text = json.dumps(to_jsonable(value, max_items=sys.maxsize), ensure_ascii=False)
    return web.Response(text=text, content_type="application/json", charset="utf-8")


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpRequestSource:
    """Serves one route; each request triggers a wave and is answered with its result."""

    def __init__(self, settings: Mapping[str, Any], trigger: Trigger, node_id: str,
                 services: SourceServices) -> None:
        values = resolve(HTTP_REQUEST_SETTINGS, settings, check_http_request(settings))
        self._host: str = values["host"]
        self._port: int = values["port"]
        self._path: str = values["path"]
        self._method: str = values["method"]
        self._max_body: int = values["max_body_bytes"]
        self._timeout = float(values["response_timeout"])
        self._expose_errors = bool(values["expose_errors"])
        self._stream = values["response"] == "stream"
        self._limits = Limits.of(values)
        self._token: bytes | None = None
        if values["auth"] == "token":
            token = os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(24)
            self._token = token.encode()
        self._trigger = trigger
        #: the trigger's Admission check, if it has one (the engine's does)
        self._refuse_if_full: Callable[[], str | None] | None = getattr(
            trigger, Admission.refuse_if_full.__name__, None)
        #: the trigger's per-wave event feed, if it has one (the engine's does)
        self._watch: Callable[..., Callable[[], None]] | None = (
            trigger.watch if isinstance(trigger, WaveWatch) else None)
        self._node_id = node_id
        self._runner: web.AppRunner | None = None
        self._site: GuardedSite | None = None
        #: the site's guard, kept after stop_accepting() (open connections still use it)
        self._guard: ConnectionGuard | None = None
        self._accepting = False
        self._finished = asyncio.Event()

    async def start(self) -> dict[str, Any]:
        """Listen; returns host, the real port, path, method, url and the token (if any)."""
        if self._runner is not None or self._finished.is_set():
            raise RuntimeError("an http_request source starts only once")
        app = web.Application(client_max_size=self._max_body,
                              middlewares=[self._answer_errors])
        app.router.add_route(self._method, self._path, self._handle)
        # access_log=None: no log line per request; shutdown_timeout bounds aclose();
        # aiohttp's own keep-alive close comes after the guard's idle and head timeouts
        limits = self._limits
        # handler_cancellation: a client that hangs up cancels its handler at once (a
        # stream's handler then unsubscribes; a wave is shielded from it either way)
        runner = web.AppRunner(app, access_log=None, handle_signals=False,
                               handler_cancellation=True,
                               shutdown_timeout=SHUTDOWN_TIMEOUT,
                               keepalive_timeout=limits.idle_timeout + limits.header_timeout)
        self._runner = runner
        await runner.setup()
        site = GuardedSite(runner, self._host, self._port, limits)
        try:
            await site.start()
        except OSError as exc:
            await self.aclose()
            raise OSError(exc.errno, f"cannot listen on {self._host}:{self._port}: "
                                     f"{exc.strerror or exc}") from exc
        self._site = site
        self._guard = site.guard
        self._accepting = True
        port = site.port
        host = f"[{self._host}]" if ":" in self._host else self._host
        info: dict[str, Any] = {"host": self._host, "port": port, "path": self._path,
                                "method": self._method,
                                "url": f"http://{host}:{port}{self._path}"}
        if self._token is not None:
            info["token"] = self._token.decode()
        return info

    async def wait_done(self) -> None:
        """Return once stopped: a server never ends on its own."""
        await self._finished.wait()

    async def stop_accepting(self) -> None:
        """Close the listening socket; requests in progress still get their answer."""
        self._accepting = False
        site, self._site = self._site, None
        if site is not None:
            await site.stop()
        self._finished.set()

    async def aclose(self) -> None:
        """Stop, then close every connection; bounded (see SHUTDOWN_TIMEOUT)."""
        await self.stop_accepting()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @web.middleware
    async def _answer_errors(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Middleware: the token first (before routing), then the handler; every error
        becomes a short JSON answer, never an HTML page. Tells the connection guard when
        a request has begun and ended."""
        connection = self._guard.of(request.transport) if self._guard is not None else None
        if connection is not None:
            connection.request_started()
        try:
            response = await self._answer(request, handler)
        finally:
            if connection is not None:
                connection.request_finished()
        if response.keep_alive is False and not request.content.is_eof():
            # The client has not sent all of its body and will not be read: answer, then
            # close at once. aiohttp would otherwise linger up to 10 s reading the rest,
            # and a client that hangs up meanwhile would leave that read pending.
            await response.prepare(request)
            await response.write_eof()
            request.protocol.force_close()
        return response

    async def _answer(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """The token check, then the handler, with every error as a JSON answer."""
        try:
            if not self._accepting:
                return _error(503, "the trigger is stopping", close=True)
            if not self._authorized(request):
                return _error(401, "missing or wrong token: send 'Authorization: Bearer "
                                   "<token>' or 'X-Loom-Token: <token>'",
                              {hdrs.WWW_AUTHENTICATE: "Bearer"})
            return await handler(request)
        except _Reject as exc:
            return _error(exc.status, exc.message)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return self._http_error(exc)
        except Exception:
            log.exception("http_request %s: the request handler failed", self._node_id)
            return _error(500, "internal error while handling the request")

    def _http_error(self, exc: web.HTTPException) -> web.Response:
        if exc.status == 404:
            message = f"not found: this server answers {self._method} {self._path}"
        elif exc.status == 405:
            return _error(405, f"method not allowed: {self._path} answers {self._method}",
                          {hdrs.ALLOW: self._method})
        elif exc.status == 413:
            message = f"request body too large: the limit is {self._max_body} bytes"
        else:
            message = exc.reason.lower()
        return _error(exc.status, message)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        why = self._refuse_if_full() if self._refuse_if_full is not None else None
        if why is not None:
            return self._refuse(request, why)
        try:
            body = await asyncio.wait_for(request.read(), self._limits.body_timeout)
        except TimeoutError:
            return _error(408, f"request body not received within "
                               f"{self._limits.body_timeout:g} s", close=True)
        content_type = request.content_type if hdrs.CONTENT_TYPE in request.headers else None
        payload = {
            "type": "http_request", "method": request.method, "path": request.path,
            "query": _to_dict(request.query),
            "headers": _headers(request),
            "body": parse_body(body, content_type, request.charset),
            "remote": request.remote, "time": utc_now(),
        }
        future = self._trigger(payload)
        if future is None:
            return _error(503, "busy: the request was dropped",
                          {hdrs.RETRY_AFTER: str(RETRY_AFTER)})
        if self._stream:
            return await self._stream_wave(request, future)
        try:
            result = await asyncio.wait_for(asyncio.shield(future), self._timeout)
        except TimeoutError:
            return _error(504, f"the wave did not finish within {self._timeout:g} s")
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if future.cancelled() and not (task is not None and task.cancelling()):
                return _error(503, "the run stopped before the wave finished")
            raise
        return wave_response(result, self._expose_errors)

    async def _stream_wave(self, request: web.Request,
                           future: asyncio.Future[WaveResult]) -> web.StreamResponse:
        """Answer with Server-Sent Events: this wave's ``branch_completed`` and
        ``item_completed`` events as they happen, then ``result`` (or ``error``), then
        close. The wave is never awaited directly, so a client that hangs up (a failed
        write) only ends this answer: the wave runs on and nothing is left behind."""
        inbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        unwatch = self._watch(future, inbox.put_nowait) if self._watch is not None else None

        def wave_done(_: asyncio.Future[WaveResult]) -> None:
            inbox.put_nowait(None)  # after the wave's last events (see _Waves.watch)

        future.add_done_callback(wave_done)
        response = web.StreamResponse(headers={hdrs.CACHE_CONTROL: "no-cache"})
        response.content_type = "text/event-stream"
        response.charset = "utf-8"
        try:
            await response.prepare(request)
            async with asyncio.timeout(self._timeout):
                while (event := await inbox.get()) is not None:
                    await _send(response, event["type"], event)
            if future.cancelled():
                await _send(response, "error", {"error": "the run stopped before the "
                                                          "wave finished"})
            elif (result := future.result()).ok:
                await _send(response, "result", result.value)
            else:
                await _send(response, "error", failure_answer(result, self._expose_errors))
            await response.write_eof()
        except TimeoutError:
            with contextlib.suppress(ConnectionError):
                await _send(response, "error", {"error": f"the wave did not finish "
                                                          f"within {self._timeout:g} s"})
                await response.write_eof()
        except ConnectionError:
            # the client went away mid-stream: nothing more to send; the wave goes on
            log.debug("http_request %s: the client left a stream", self._node_id)
        finally:
            future.remove_done_callback(wave_done)
            if unwatch is not None:
                unwatch()
        request.protocol.force_close()
        return response

    def _refuse(self, request: web.Request, why: str) -> web.Response:
        """503 for overload, before the body is read: a refusal costs a header check and
        a counter. The connection stays open only if the body has already arrived in
        full, and is then not read for Retry-After seconds (see http_guard)."""
        complete = request.content.is_eof()
        if complete and self._guard is not None:
            connection = self._guard.of(request.transport)
            if connection is not None:
                connection.hold()
        return _error(503, f"busy: {why}",
                      {hdrs.RETRY_AFTER: str(RETRY_AFTER)}, close=not complete)

    def _authorized(self, request: web.Request) -> bool:
        if self._token is None:
            return True
        given = request.headers.get("X-Loom-Token")
        if given is None:
            scheme, _, credentials = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
            if scheme.lower() != "bearer":
                return False
            given = credentials.strip()
        # bytes: compare_digest refuses non-ASCII str, and a header may hold anything
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self._token)


async def _send(response: web.StreamResponse, name: str, data: Any) -> None:
    """One Server-Sent Event; strict JSON on one line (no raw newline can end it early)."""
    await response.write(f"event: {name}\ndata: {dumps(data)}\n\n".encode())


_HIDDEN_HEADERS = frozenset({"authorization", "x-loom-token"})


def _headers(request: web.Request) -> dict[str, str]:
    """Request headers with lower-case names, repeated ones joined; secrets left out."""
    result: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        if key in _HIDDEN_HEADERS:
            continue
        result[key] = f"{result[key]}, {value}" if key in result else value
    return result
