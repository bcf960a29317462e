"""Helpers the event sources share: settings checks, wall-clock stamps, task ending."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any

from ..limits import is_finite
from ..strategies.base import Setting, check_setting, shown

#: A check that replaces :func:`check_setting` for one setting: a message or None.
Validator = Callable[[Any], str | None]


def utc_now() -> str:
    """The wall-clock time as ISO-8601 UTC, to the millisecond (for payloads)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def is_number(value: Any) -> bool:
    """True for int and float, but not bool (JSON's true is not a number)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def positive_number(value: Any) -> str | None:
    """Validator: a number strictly above 0 (intervals, timeouts)."""
    if is_number(value) and is_finite(value) and value > 0:
        return None
    return f"must be a number above 0, not {shown(value)}"


def check_values(table: tuple[Setting, ...], metadata: Mapping[str, Any],
                 required: frozenset[str] = frozenset(),
                 validators: Mapping[str, Validator] | None = None) -> list[str]:
    """Messages about one source's settings in ``metadata`` ("metadata.port must …").

    A value of None counts as absent (the default applies). Keys not in ``table``
    belong to the event mode or to policies and are left alone.
    """
    problems = []
    for setting in table:
        value = metadata.get(setting.name)
        if value is None:
            if setting.name in required:
                problems.append(f"metadata.{setting.name} is required: {setting.description}")
            continue
        validator = (validators or {}).get(setting.name)
        message = validator(value) if validator else check_setting(setting, value, {})
        if message:
            problems.append(f"metadata.{setting.name} {message}")
    return problems


def resolve(table: tuple[Setting, ...], metadata: Mapping[str, Any],
            problems: list[str]) -> dict[str, Any]:
    """Every setting's value (the default where absent); raises ValueError on ``problems``.

    Sources call this in their constructor, so a source is never half-configured
    even when the caller skipped plan-time validation.
    """
    if problems:
        raise ValueError("; ".join(problems))
    values = {}
    for setting in table:
        value = metadata.get(setting.name)
        values[setting.name] = setting.default if value is None else value
    return values


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and wait until it has ended, without raising what it raised.

    Cancelling the caller still propagates: ``asyncio.wait`` only waits.
    """
    if task is None or task.done():
        return
    task.cancel()
    await asyncio.wait({task})


def failure_of(task: asyncio.Task[Any]) -> BaseException | None:
    """What a finished task raised (and mark it retrieved), None if it ended normally
    or was cancelled."""
    if task.cancelled():
        return None
    with contextlib.suppress(asyncio.InvalidStateError):
        return task.exception()
    return None


class OneTaskSource:
    """The life cycle of a source whose work is one task (timer, schedule).

    Subclasses set up ``_task``/``_finished``/``_failure`` with :meth:`_init_task_state`
    and start their task with :meth:`_start_task`.
    """

    _task: asyncio.Task[None] | None
    _finished: asyncio.Event
    _failure: BaseException | None

    def _init_task_state(self) -> None:
        self._task = None
        self._finished = asyncio.Event()
        self._failure = None

    def _start_task(self, work: Coroutine[Any, Any, None], name: str) -> None:
        self._task = asyncio.get_running_loop().create_task(work, name=name)
        self._task.add_done_callback(self._ended)

    async def wait_done(self) -> None:
        """Return after the last of ``count`` triggers (or once stopped); re-raises a failure."""
        await self._finished.wait()
        if self._failure is not None:
            raise self._failure

    async def stop_accepting(self) -> None:
        """Cancel the task and wait for it to end (triggers already made go on)."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        self._finished.set()

    async def aclose(self) -> None:
        """Same as :meth:`stop_accepting`: such a source holds nothing else."""
        await self.stop_accepting()

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._failure = failure_of(task)
        self._finished.set()
