"""Reliability policies any node may carry in its metadata.

- ``timeout`` (seconds): each attempt of the node's call is cancelled after this long
  and fails with :class:`NodeTimeout`.
- ``max_retries`` (attempts in all, default 1 = no retry, as n8n's "Max Tries") with
  ``retry_wait`` (seconds before the first retry, doubling after each further one).
- ``rate_limit`` ``{"key": "...", "per_second": r}``: calls sharing a key, anywhere in the
  run (parallel branches, loop items and every wave of an event graph included), start
  at least ``1/r`` s apart, so no one-second window holds more than ``r`` of them.
  ``"key_from": "port"`` takes the key from that input's value instead (a limit per
  user or per item); with ``key`` too, the key is ``"<key>:<value>"``.
- ``on_error``: ``stop`` (the node fails, what depends on it is skipped, the run fails),
  ``continue`` (the node is marked failed but its outputs carry ``None`` and the run
  goes on), ``error_output`` (the error goes out of an extra ``error`` port as a dict;
  the other ports carry nothing). Blok's ``fail-fast`` and ``continue-partial`` are
  accepted for ``stop`` and ``continue``.

A strategy may interpret some of these keys itself (a loop's ``max_retries`` retries
a whole item, a parallel node's ``timeout`` bounds each branch); it lists them in
``owned_settings`` and the policy leaves them alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_none,
)

from .limits import Limiters, RateLimit, acquire, rate_problem
from .strategies.base import Setting, check_setting

T = TypeVar("T")

ON_ERROR = ("stop", "continue", "error_output")
#: Blok's names, accepted as written (and kept so in the file): what they mean here
ON_ERROR_ALIASES = {"fail-fast": "stop", "continue-partial": "continue"}
ERROR_PORT = "error"

SETTINGS: tuple[Setting, ...] = (
    Setting("timeout", "float", None, "seconds each attempt may take", minimum=0),
    Setting("max_retries", "int", 1, "attempts in all (1: no retry)", minimum=1),
    Setting("retry_wait", "float", 0.0, "seconds before the first retry; doubles after each",
            minimum=0),
    Setting("rate_limit", "object", None, 'shared limit: {"key": "api", "per_second": 5}'),
    Setting("on_error", "choice", "stop", "what a failure does (fail-fast, continue-partial: "
            "Blok's names for stop, continue)", choices=ON_ERROR + tuple(ON_ERROR_ALIASES)),
)


class NodeTimeout(TimeoutError):
    """A node's call took longer than its ``timeout``."""


@dataclass(frozen=True)
class Policy:
    """The policies of one node, parsed and checked once at plan time."""

    timeout: float | None = None
    attempts: int = 1
    retry_wait: float = 0.0
    rate_limit: RateLimit | None = None
    on_error: str = "stop"

    @property
    def wraps_call(self) -> bool:
        """True when calling the node needs more than calling its function."""
        return self.timeout is not None or self.attempts > 1 or self.rate_limit is not None


PLAIN = Policy()


def parse_policy(metadata: Mapping[str, Any], owned: frozenset[str] = frozenset()
                 ) -> tuple[Policy, list[str]]:
    """The node's policy and the problems with its settings (messages for validation)."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.name in owned or metadata.get(setting.name) is None:
            continue
        value = metadata[setting.name]
        message = check_setting(setting, value, {})
        if message:
            problems.append(f"metadata.{setting.name} {message}")
        else:
            values[setting.name] = value
    limit = values.pop("rate_limit", None)
    rate = None
    if limit is not None:
        rate, message = _parse_rate_limit(limit)
        if message:
            problems.append(f"metadata.rate_limit {message}")
    if not values and rate is None:
        return PLAIN, problems
    timeout = values.get("timeout")
    return Policy(timeout=None if timeout is None else float(timeout),
                  attempts=int(values.get("max_retries", 1)),
                  retry_wait=float(values.get("retry_wait", 0.0)),
                  rate_limit=rate, on_error=on_error_mode(values.get("on_error", "stop"))), problems


def on_error_mode(value: Any) -> str:
    """A node's ``on_error`` with Blok's aliases resolved (``fail-fast`` -> ``stop``)."""
    text = str(value)
    return ON_ERROR_ALIASES.get(text, text)


def _parse_rate_limit(value: Mapping[str, Any]) -> tuple[RateLimit | None, str | None]:
    key, per_second = value.get("key"), value.get("per_second")
    key_from = value.get("key_from")
    if key_from is not None and (not isinstance(key_from, str) or not key_from):
        return None, '"key_from" must name an input port'
    if key is None and key_from is not None:
        key = ""
    elif not isinstance(key, str) or not key:
        return None, 'needs a "key" string naming what is limited (or "key_from", an input)'
    message = rate_problem(per_second, 1)
    if message:
        return None, message
    return RateLimit(key, float(per_second or 0), 1, key_from), None


async def call_with_policy(policy: Policy, call: Callable[[], Awaitable[T]], limiters: Limiters,
                           on_retry: Callable[[int, BaseException, float], None],
                           inputs: Mapping[str, Any] | None = None,
                           stopping: asyncio.Event | None = None,
                           stopped: Callable[[], BaseException] = RuntimeError) -> T:
    """Run ``call`` under a policy: rate limit, then timeout, retried with backoff.

    ``inputs`` are the call's inputs (a ``key_from`` limit reads its key there); a
    wait for the limiter ends, raising ``stopped()``, once ``stopping`` is set.
    ``on_retry(next_attempt, error, wait)`` is told before each wait. Cancellation is
    never retried (tenacity retries ``Exception`` only).
    """
    limiter = (limiters.get(policy.rate_limit.resolve(inputs or {}))
               if policy.rate_limit else None)

    async def attempt() -> T:
        if limiter is not None and await acquire(limiter, stopping) is None:
            raise stopped()
        if policy.timeout is None:
            return await call()
        try:
            async with asyncio.timeout(policy.timeout):
                return await call()
        except TimeoutError as exc:
            raise NodeTimeout(f"timed out after {policy.timeout:g} s") from exc

    if policy.attempts <= 1:
        return await attempt()

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        if error is not None:
            on_retry(state.attempt_number + 1, error, wait)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts), reraise=True, before_sleep=before_sleep,
        # Once the run is stopping nothing is retried: a retry would only wait out its
        # backoff (or the limiter) before failing the same way.
        retry=retry_if_exception(lambda _: stopping is None or not stopping.is_set()),
        wait=wait_exponential(multiplier=policy.retry_wait, min=policy.retry_wait)
        if policy.retry_wait > 0 else wait_none())
    return await retrying(attempt)
