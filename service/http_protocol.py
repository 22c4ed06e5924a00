"""uvicorn's HTTP protocol (httptools) with two guards against clients that hold connections
without sending: a deadline for each request head, and a cap on open connections below the
file-descriptor limit, so that a flood of stalled clients cannot starve health checks; and one
against clients that resend at once what was refused: their connection is not read for between
half the refusal's Retry-After and all of it."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import resource
import time
from collections.abc import MutableMapping
from typing import Any, cast

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from service.connection_balance import ConnectionBalance

logger = logging.getLogger(__name__)

# File descriptors kept free of connections: model files, metrics files, logs, the event loop.
_RESERVED_DESCRIPTORS = 128
# The soft limit is raised to the hard one, but not past this (each connection costs memory).
_MAX_DESCRIPTORS = 65536
_WARN_EVERY_SECONDS = 10.0
# The scope key under which a request finds its connection's `hold_after_answer`.
HOLD_CONNECTION = "auscult.hold_connection"
# A held connection is read again after a random share of the hold, from this to all of it.
# Held for exactly their Retry-After, clients refused in one burst came back in one burst every
# second for as long as the overload lasted (256 clients: 33 to 48 % of the refusals within one
# tenth of each second, 13 to 17 % spread), and health checks then waited behind them (p99 13
# to 29 ms, 9 to 12 spread; docs/BENCHMARKS.md, "Event loop under overload"). Never past the
# Retry-After: a client that waits it out as told is never held.
HOLD_SHARE_MIN = 0.5


def raise_descriptor_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE towards its hard limit; the soft limit after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _MAX_DESCRIPTORS if hard == resource.RLIM_INFINITY else min(hard, _MAX_DESCRIPTORS)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        soft = wanted
    return soft


def connection_cap() -> int:
    """Open connections allowed under the current descriptor limit, keeping a reserve."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = _MAX_DESCRIPTORS
    return max(soft - _RESERVED_DESCRIPTORS, soft // 2)


class GuardedHttpProtocol(HttpToolsProtocol):
    """Closes a connection that has not sent a whole request head `header_timeout` seconds
    after it opened or after its last answer (slowloris). Past `max_connections`, a new
    connection evicts the one that has waited longest for its current request to arrive in
    full (a stalled client, or an idle keep-alive one); when every connection is busy being
    answered, the new one is closed instead. Request bodies have their own deadline (see
    service/api/body_limit.py)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        header_timeout: float,
        max_connections: int,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._header_timeout = header_timeout
        self._max_connections = max_connections
        self._header_timer: asyncio.TimerHandle | None = None
        # When the request now arriving began to be awaited; None while one is being answered.
        self.arriving_since: float | None = None
        # Counted until it closes or becomes a WebSocket stream.
        self._balance: ConnectionBalance | None = None
        # Seconds the connection is not read after the current answer; its timer while it runs.
        self._hold_seconds = 0.0
        self._hold_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_request()
        balance = getattr(self.app_state.get("runtime"), "connections", None)
        if isinstance(balance, ConnectionBalance):
            self._balance = balance
            balance.opened()
        if len(self.connections) > self._max_connections:
            self._shed()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        self.arriving_since = None
        self._stop_counting()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        self._stop_counting()
        super().handle_websocket_upgrade()

    def _stop_counting(self) -> None:
        if self._balance is not None:
            self._balance.closed()
            self._balance = None

    def on_headers_complete(self) -> None:
        self._stop_header_timer()
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle  # a new one unless the request is a WebSocket upgrade
        if cycle is None or cycle is previous or not cycle.keep_alive:
            return
        cycle.scope[HOLD_CONNECTION] = self.hold_after_answer  # type: ignore[literal-required]
        if self._balance is not None and self._balance.should_close():
            # uvicorn then answers with `Connection: close` and closes once the answer is sent.
            cycle.keep_alive = False

    def on_message_complete(self) -> None:
        self.arriving_since = None
        super().on_message_complete()

    def hold_after_answer(self, seconds: float) -> None:
        """Read nothing more from this connection for a random share of `seconds`, from
        HOLD_SHARE_MIN to all of it, once the current answer is sent: what a refusal's
        Retry-After asks of the client, enforced. A client that sends again at once waits in
        its socket instead of costing a refusal each time: under a storm of such clients the
        refusals would take the CPU from scoring (goodput fell to 0.38 of the peak at 256
        clients), and held they cost one per client per hold."""
        self._hold_seconds = seconds

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)
        hold, self._hold_seconds = self._hold_seconds, 0.0
        super().on_response_complete()
        if pipelined or self.transport.is_closing():
            return
        if hold > 0:
            self._hold(hold)
        else:
            self._await_request()

    def _hold(self, seconds: float) -> None:
        seconds *= random.uniform(HOLD_SHARE_MIN, 1.0)
        self.flow.pause_reading()
        # Neither the keep-alive timeout nor the head deadline runs while the client is held;
        # past the connection cap a held connection is one of those waiting, and may be shed.
        self._unset_keepalive_if_required()
        self.arriving_since = time.monotonic()
        self._hold_timer = self.loop.call_later(seconds, self._end_hold)

    def _end_hold(self) -> None:
        self._hold_timer = None
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )
        self._await_request()

    def send_400_response(self, msg: str) -> None:
        """A request uvicorn cannot parse (e.g. a header name with a ';') never reaches the app:
        answer it in JSON rather than uvicorn's plain text. Which API the client meant is not
        known yet, so the one sentence is given under both error shapes: `detail` (/v1) and
        `error` (the Open Inference Protocol's /v2)."""
        problem = f"malformed HTTP request: {msg}"
        body = json.dumps({"detail": problem, "error": problem}).encode("utf-8")
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n\r\n",
            ]
        )
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    def _await_request(self) -> None:
        self.arriving_since = time.monotonic()
        self._stop_header_timer()
        self._header_timer = self.loop.call_later(self._header_timeout, self._header_too_slow)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _shed(self) -> None:
        waiting = [
            c
            for c in self.connections
            if isinstance(c, GuardedHttpProtocol) and c.arriving_since is not None
        ]
        # Never empty: this new connection is waiting for its request too.
        oldest = min(waiting, key=lambda c: cast(float, c.arriving_since))
        _warn_over_cap(self._max_connections)
        oldest.transport.close()


_last_warned = -_WARN_EVERY_SECONDS


def _warn_over_cap(cap: int) -> None:
    """One line per interval, not one per connection, under a flood."""
    global _last_warned
    now = time.monotonic()
    if now - _last_warned >= _WARN_EVERY_SECONDS:
        _last_warned = now
        logger.warning(
            "%d connections open: closing the ones that wait longest for their request", cap
        )


def hold_connection(scope: MutableMapping[str, Any], seconds: float) -> None:
    """After this request's answer, read nothing more from its connection for `seconds`
    (served by GuardedHttpProtocol; elsewhere, e.g. behind Ray Serve's proxy, nothing)."""
    hold = scope.get(HOLD_CONNECTION)
    if callable(hold):
        hold(seconds)


def guarded_protocol(header_timeout: float, max_connections: int) -> type[asyncio.Protocol]:
    """What uvicorn's `http` option takes: a factory of GuardedHttpProtocol (a partial, so
    that it survives the pickling that hands the config to worker processes)."""
    factory = functools.partial(
        GuardedHttpProtocol, header_timeout=header_timeout, max_connections=max_connections
    )
    return cast(type[asyncio.Protocol], factory)
