"""Event sources on their own: timer, file_change, http_request, and the run's services.

A fake trigger records payloads and answers with a WaveResult the test chooses.
Every source and RunServices is closed in a ``finally`` (the ``running`` helper),
so the suite's leak check sees no thread, descriptor, socket or task left over.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import itertools
import os
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from loom.engine.sources import (
    SOURCES,
    FileChangeSource,
    HttpRequestSource,
    RunServices,
    ScheduleSource,
    TimerSource,
    WaveResult,
    check_settings,
)
from loom.engine.sources import files as files_module
from loom.engine.sources import schedule as schedule_module
from loom.engine.sources.files import PathMatcher


class Recorder:
    """A fake trigger: records payloads (and loop times); answers per ``mode``.

    ``done``: a finished future holding ``result``; ``pending``: a future the test
    completes; ``drop``: None (the engine dropped the trigger); ``raise``: raises.
    """

    def __init__(self, result: WaveResult | None = None, mode: str = "done") -> None:
        self.result = result or WaveResult(ok=True, value={"ok": True})
        self.mode = mode
        self.payloads: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.futures: list[asyncio.Future[WaveResult]] = []

    def __call__(self, payload: dict[str, Any]) -> asyncio.Future[WaveResult] | None:
        loop = asyncio.get_running_loop()
        self.payloads.append(payload)
        self.times.append(loop.time())
        if self.mode == "drop":
            return None
        if self.mode == "raise":
            raise RuntimeError("engine bug\nTraceback (most recent call last): ...")
        future: asyncio.Future[WaveResult] = loop.create_future()
        if self.mode == "done":
            future.set_result(self.result)
        self.futures.append(future)
        return future

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        """Until ``count`` payloads have arrived (fails after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while len(self.payloads) < count:
            assert time.monotonic() < deadline, f"{len(self.payloads)} of {count} triggers"
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(cls: Any, settings: dict[str, Any], trigger: Recorder,
                  services: Any = None) -> AsyncIterator[tuple[Any, dict[str, Any]]]:
    """A started source, closed (with its RunServices) however the test ends."""
    own = services is None
    services = RunServices() if own else services
    source = cls(settings, trigger, "node1", services)
    try:
        yield source, await source.start()
    finally:
        await source.aclose()
        if own:
            assert await services.aclose()


def is_iso_utc(text: str) -> bool:
    stamp = datetime.fromisoformat(text)
    return stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0


# --- settings -----------------------------------------------------------------------


def test_sources_table() -> None:
    assert dict(SOURCES) == {"timer": TimerSource, "file_change": FileChangeSource,
                             "http_request": HttpRequestSource,
                             "schedule": ScheduleSource}


def test_check_settings_messages() -> None:
    assert check_settings("timer", {"interval": "x"}) == [
        "metadata.interval must be a number above 0, not 'x'"]
    assert check_settings("timer", {"interval": 0}) == [
        "metadata.interval must be a number above 0, not 0"]
    assert check_settings("timer", {"interval": True}) == [
        "metadata.interval must be a number above 0, not True"]
    assert check_settings("timer", {})[0].startswith("metadata.interval is required")
    assert check_settings("timer", {"interval": 1, "count": 0, "immediate": "yes"}) == [
        "metadata.count must be at least 1, not 0",
        "metadata.immediate must be true or false, not 'yes'"]
    assert check_settings("timer", {"interval": 0.5, "count": 3, "execution_mode": "event",
                                    "overflow": "queue"}) == []
    assert check_settings("clock", {}) == [
        "metadata.event_type must be one of timer, file_change, http_request, schedule, "
        "not 'clock'"]
    assert check_settings(None, {})[0].endswith("not None")

    assert check_settings("file_change", {})[0].startswith("metadata.watch_path is required")
    assert check_settings("file_change", {"watch_path": "/x", "patterns": "*.txt, *.md",
                                          "events": ["created"], "debounce_ms": 0}) == []
    assert check_settings("file_change", {"watch_path": "/x", "patterns": 5,
                                          "events": ["opened"], "debounce_ms": -1,
                                          "recursive": 1}) == [
        "metadata.patterns must be a list of globs or one comma-separated string, not 5",
        "metadata.recursive must be true or false, not 1",
        "metadata.events must be a non-empty list of created, modified, deleted, moved, "
        "not ['opened']",
        "metadata.debounce_ms must be at least 0, not -1"]

    assert check_settings("http_request", {}) == []
    assert check_settings("http_request", {"port": 70000, "path": "hook", "method": "post",
                                           "auth": "basic", "max_body_bytes": 0,
                                           "response_timeout": -1}) == [
        "metadata.port must be a port number from 0 to 65535, not 70000",
        "metadata.path must be a URL path starting with '/', not 'hook'",
        "metadata.method must be one of GET, POST, PUT, PATCH, DELETE, not 'post'",
        "metadata.auth must be one of token, none, not 'basic'",
        "metadata.max_body_bytes must be at least 1, not 0",
        "metadata.response_timeout must be a number above 0, not -1"]


def test_bad_settings_refused_by_constructor() -> None:
    with pytest.raises(ValueError, match=r"metadata\.interval must be a number above 0"):
        TimerSource({"interval": -1}, Recorder(), "n", RunServices())


def test_path_matcher(tmp_path: Path) -> None:
    match = PathMatcher(tmp_path, ["*.txt", "**/*.md", "src/*.py", "/abs/*.log"])
    assert match(str(tmp_path / "a.txt"))
    assert match(str(tmp_path / "deep" / "er" / "a.txt"))  # no '/': the name, any depth
    assert match(str(tmp_path / "x" / "b.md"))
    assert match(str(tmp_path / "b.md"))  # a leading **/ also matches at the top
    assert match(str(tmp_path / "src" / "m.py"))
    assert not match(str(tmp_path / "m.py"))
    assert not match(str(tmp_path / "a.log"))
    assert not match("/elsewhere/a.txt")  # outside the watched folder
    assert PathMatcher(Path("/abs"), ["/abs/*.log"])("/abs/x.log")


# --- timer --------------------------------------------------------------------------


async def test_timer_count_and_spacing_without_drift() -> None:
    rec = Recorder()
    loop = asyncio.get_running_loop()
    async with running(TimerSource, {"interval": 0.1, "count": 5}, rec) as (source, info):
        started = loop.time()
        assert info == {"interval": 0.1, "count": 5, "immediate": True}
        await asyncio.wait_for(source.wait_done(), 2)
    assert [p["count"] for p in rec.payloads] == [1, 2, 3, 4, 5]
    assert all(p["type"] == "timer" and p["missed"] == 0 for p in rec.payloads)
    assert all(is_iso_utc(p["time"]) for p in rec.payloads)
    assert rec.times[0] - started < 0.05  # immediate
    # each trigger sits on its slot start + k*interval: errors do not add up
    for k, t in enumerate(rec.times):
        assert abs(t - rec.times[0] - k * 0.1) < 0.04, (k, t - rec.times[0])
    assert 0.4 - 0.01 <= rec.times[-1] - rec.times[0] < 0.44


async def test_timer_not_immediate() -> None:
    rec = Recorder()
    loop = asyncio.get_running_loop()
    async with running(TimerSource, {"interval": 0.1, "count": 2, "immediate": False},
                       rec) as (source, _):
        started = loop.time()
        await asyncio.wait_for(source.wait_done(), 2)
    assert len(rec.payloads) == 2
    assert 0.09 <= rec.times[0] - started < 0.15
    assert 0.19 <= rec.times[1] - started < 0.25


async def test_timer_skips_missed_ticks_instead_of_bursting() -> None:
    rec = Recorder()
    loop = asyncio.get_running_loop()
    async with running(TimerSource, {"interval": 0.05}, rec) as (source, _):
        await rec.wait_for(1)
        loop.call_soon(time.sleep, 0.3)  # a node that blocks the loop
        await asyncio.sleep(0.45)
        await source.stop_accepting()
        await asyncio.wait_for(source.wait_done(), 1)  # a stopped timer is done
        count = len(rec.payloads)
        await asyncio.sleep(0.1)
        assert len(rec.payloads) == count  # nothing after stop
    missed = [p["missed"] for p in rec.payloads]
    assert max(missed) >= 4  # about 0.3 / 0.05 ticks were skipped at once
    gaps = [b - a for a, b in itertools.pairwise(rec.times)]
    assert min(gaps) >= 0.024  # never two triggers within half an interval
    assert count <= 1 + 0.45 / 0.05 - max(missed) + 2


# --- schedule -----------------------------------------------------------------------


def test_schedule_settings_name_the_field() -> None:
    assert check_settings("schedule", {})[0].startswith("metadata.cron is required")
    assert check_settings("schedule", {"cron": "61 * * * *", "timezone": "Mars/Olympus"}) == [
        "metadata.cron is not a valid cron expression (Bad minute): '61 * * * *'",
        "metadata.timezone is not a known IANA time zone (e.g. Europe/Berlin, UTC), "
        "not 'Mars/Olympus'"]
    assert check_settings("schedule", {"cron": "* * *"}) == [
        "metadata.cron is not a valid cron expression (Wrong number of fields): '* * *'"]
    assert check_settings("schedule", {"cron": 5, "timezone": 1, "count": 0}) == [
        "metadata.cron must be a cron expression (text), not 5",
        "metadata.timezone must be an IANA time zone name (text), not 1",
        "metadata.count must be at least 1, not 0"]
    # a path is not a zone name, even one that leads to a zone file
    assert check_settings("schedule", {"cron": "* * * * *",
                                       "timezone": "/usr/share/zoneinfo/UTC"})
    assert check_settings("schedule", {"cron": "*/5 * * * * *", "timezone": "Europe/Berlin",
                                       "count": 3, "execution_mode": "event"}) == []
    with pytest.raises(ValueError, match=r"metadata\.cron"):  # even without validation
        ScheduleSource({"cron": "nope"}, Recorder(), "n", None)  # type: ignore[arg-type]


def test_fire_times_follow_the_schedule_not_the_start_time() -> None:
    start = datetime(2026, 7, 1, 12, 0, 7, 900_000, tzinfo=UTC)
    times = schedule_module.fire_times("*/15 * * * * *", UTC, start)
    assert [next(times).isoformat() for _ in range(4)] == [
        "2026-07-01T12:00:15+00:00", "2026-07-01T12:00:30+00:00",
        "2026-07-01T12:00:45+00:00", "2026-07-01T12:01:00+00:00"]
    # the zone's wall clock, not UTC's: 09:00 in Tokyo is 00:00 UTC
    tokyo = schedule_module.fire_times("0 9 * * *", ZoneInfo("Asia/Tokyo"), start)
    first = next(tokyo)
    assert first.isoformat() == "2026-07-02T09:00:00+09:00"
    assert first.astimezone(UTC).isoformat() == "2026-07-02T00:00:00+00:00"


def test_fire_times_across_dst_changes() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    day = schedule_module.fire_times("30 2 * * *", berlin,
                                     datetime(2026, 3, 28, 12, tzinfo=berlin))
    # 02:30 does not exist on 29 March (02:00 -> 03:00): it fires once, right after the gap
    assert [next(day).isoformat() for _ in range(2)] == [
        "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]
    day = schedule_module.fire_times("30 2 * * *", berlin,
                                     datetime(2026, 10, 24, 12, tzinfo=berlin))
    # 02:30 happens twice on 25 October (03:00 -> 02:00): it fires once, not twice
    assert [next(day).isoformat() for _ in range(2)] == [
        "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
    hourly = schedule_module.fire_times("0 * * * *", berlin,
                                        datetime(2026, 10, 25, 0, 30, tzinfo=berlin))
    fires = [next(hourly) for _ in range(4)]
    # an hourly schedule fires on every real hour, also the repeated one
    assert [f.isoformat() for f in fires] == [
        "2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"]
    assert [schedule_module._seconds(a, b) for a, b in itertools.pairwise(fires)] == [3600] * 3


class FakeClock:
    """A wall clock that only moves when the test says so (and counts its readings)."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.reads = 0

    def __call__(self) -> datetime:
        self.reads += 1
        return self.now


async def test_schedule_fires_on_the_schedule_and_skips_missed_times(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schedule_module, "MAX_NAP", 0.005)  # re-read the fake clock often
    clock = FakeClock(datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC))
    rec = Recorder()
    source_cls = functools.partial(ScheduleSource, clock=clock)
    settings = {"cron": "* * * * * *", "timezone": "Asia/Kolkata"}
    async with running(source_cls, settings, rec) as (source, info):
        assert info == {"cron": "* * * * * *", "timezone": "Asia/Kolkata", "count": None,
                        "next": "2026-07-01T17:30:01+05:30"}
        await asyncio.sleep(0.05)
        assert rec.payloads == []  # not due yet on its clock
        clock.now = datetime(2026, 7, 1, 12, 0, 1, 100_000, tzinfo=UTC)
        await rec.wait_for(1)
        # a clock jump (a suspended laptop): one trigger for the latest due time, not a burst
        clock.now = datetime(2026, 7, 1, 12, 0, 10, 200_000, tzinfo=UTC)
        await rec.wait_for(2)
        # more than half a gap late: skipped, the next one fires on time
        clock.now = datetime(2026, 7, 1, 12, 0, 11, 700_000, tzinfo=UTC)
        await asyncio.sleep(0.05)
        assert len(rec.payloads) == 2
        clock.now = datetime(2026, 7, 1, 12, 0, 12, tzinfo=UTC)
        await rec.wait_for(3)
        await source.stop_accepting()
    assert [(p["count"], p["time"], p["missed"]) for p in rec.payloads] == [
        (1, "2026-07-01T17:30:01+05:30", 0),
        (2, "2026-07-01T17:30:10+05:30", 8),
        (3, "2026-07-01T17:30:12+05:30", 1)]
    assert {(p["type"], p["timezone"]) for p in rec.payloads} == {("schedule", "Asia/Kolkata")}


async def test_a_long_catch_up_yields_to_the_loop_and_counts_every_missed_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schedule_module, "MAX_NAP", 0.005)
    monkeypatch.setattr(schedule_module, "CATCH_UP_CHUNK", 100)
    clock = FakeClock(datetime(2026, 7, 1, 12, 0, 0, 500_000, tzinfo=UTC))
    rec = Recorder()
    reads: list[int] = []

    def trigger(payload: dict[str, Any]) -> Any:
        reads.append(clock.reads)
        return rec(payload)

    services = RunServices()
    source = ScheduleSource({"cron": "* * * * * *", "count": 2}, trigger, "n", services,
                            clock=clock)
    try:
        await source.start()
        clock.now = datetime(2026, 7, 1, 12, 0, 1, tzinfo=UTC)
        await rec.wait_for(1)
        before = clock.reads
        clock.now = datetime(2026, 7, 1, 12, 16, 41, 200_000, tzinfo=UTC)  # 1000 s later
        await asyncio.wait_for(source.wait_done(), 5)
    finally:
        await source.aclose()
        assert await services.aclose()
    assert [(p["time"], p["missed"]) for p in rec.payloads] == [
        ("2026-07-01T12:00:01+00:00", 0), ("2026-07-01T12:16:41+00:00", 999)]
    # 999 steps in chunks of 100: it gave the loop a turn (and re-read the clock) 9 times
    assert reads[1] - before >= 1 + 9


async def test_schedule_fires_a_minute_expression_without_waiting_a_minute() -> None:
    # The clock reads 09:59:59.7 in Berlin (real time running on from there)
    fake_start = datetime(2026, 7, 1, 9, 59, 59, 700_000, tzinfo=ZoneInfo("Europe/Berlin"))
    offset = fake_start - datetime.now(UTC)
    rec = Recorder()
    loop = asyncio.get_running_loop()
    source_cls = functools.partial(ScheduleSource, clock=lambda: datetime.now(UTC) + offset)
    settings = {"cron": "0 10 * * *", "timezone": "Europe/Berlin", "count": 1}
    async with running(source_cls, settings, rec) as (source, _):
        started = loop.time()
        await asyncio.wait_for(source.wait_done(), 5)  # done after its count
    assert [(p["count"], p["time"]) for p in rec.payloads] == [(1, "2026-07-01T10:00:00+02:00")]
    assert rec.times[0] - started >= 0.2, "not before its time"


async def test_schedule_per_second_expression_on_the_real_clock() -> None:
    rec = Recorder()
    async with running(ScheduleSource, {"cron": "* * * * * *", "count": 2}, rec) as (source, _):
        await asyncio.wait_for(source.wait_done(), 5)
    first, second = (datetime.fromisoformat(p["time"]) for p in rec.payloads)
    assert first.microsecond == 0 and (second - first).total_seconds() == 1
    assert [p["count"] for p in rec.payloads] == [1, 2] and is_iso_utc(rec.payloads[0]["time"])


async def test_schedule_stops_at_once_while_waiting_for_a_far_fire_time() -> None:
    rec = Recorder()
    async with running(ScheduleSource, {"cron": "0 0 1 1 *"}, rec) as (source, info):
        assert info["next"].endswith("-01-01T00:00:00+00:00")
        await asyncio.sleep(0.05)
        await asyncio.wait_for(source.stop_accepting(), 1)
        await asyncio.wait_for(source.wait_done(), 1)
    assert rec.payloads == []


# --- file_change --------------------------------------------------------------------


async def test_file_burst_is_debounced_to_one_trigger(tmp_path: Path) -> None:
    target = tmp_path / "data.txt"
    target.write_text("0")
    rec = Recorder()
    async with running(FileChangeSource, {"watch_path": str(tmp_path), "debounce_ms": 150},
                       rec) as (_, info):
        assert info["backend"] == "native"
        assert info["watch_path"] == str(tmp_path.resolve())
        for i in range(20):
            target.write_text(str(i))
        await rec.wait_for(1)
        await asyncio.sleep(0.4)
    assert len(rec.payloads) == 1
    payload = rec.payloads[0]
    assert payload["type"] == "file_change"
    assert payload["path"] == str(target.resolve())
    assert payload["kind"] == "modified" and payload["kinds"] == ["modified"]
    assert payload["dropped"] == 0 and "dest_path" not in payload
    assert is_iso_utc(payload["time"])


async def test_file_patterns_filter(tmp_path: Path) -> None:
    rec_list, rec_str = Recorder(), Recorder()
    async with (
        running(FileChangeSource, {"watch_path": str(tmp_path), "patterns": ["*.txt"],
                                   "debounce_ms": 50}, rec_list) as (a, _),
        running(FileChangeSource, {"watch_path": str(tmp_path), "patterns": "*.md, *.log",
                                   "debounce_ms": 50}, rec_str, a._services) as _,
    ):
        (tmp_path / "a.log").write_text("x")
        (tmp_path / "b.txt").write_text("x")
        await rec_list.wait_for(1)
        await rec_str.wait_for(1)
        await asyncio.sleep(0.25)
    assert [Path(p["path"]).name for p in rec_list.payloads] == ["b.txt"]
    assert [Path(p["path"]).name for p in rec_str.payloads] == ["a.log"]
    assert rec_list.payloads[0]["kinds"] == ["created", "modified"]


async def test_file_recursive_on_and_off(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    flat, deep = Recorder(), Recorder()
    services = RunServices()
    try:
        async with (
            running(FileChangeSource, {"watch_path": str(tmp_path), "debounce_ms": 50},
                    flat, services),
            running(FileChangeSource, {"watch_path": str(tmp_path), "recursive": True,
                                       "debounce_ms": 50}, deep, services),
        ):
            (tmp_path / "sub" / "x.txt").write_text("x")
            await deep.wait_for(1)
            await asyncio.sleep(0.25)
    finally:
        assert await services.aclose()
    assert deep.payloads[0]["path"] == str((tmp_path / "sub" / "x.txt").resolve())
    assert flat.payloads == []


async def test_file_deleted_and_moved(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "c.txt").write_text("c")
    rec = Recorder()
    async with running(FileChangeSource, {"watch_path": str(tmp_path), "debounce_ms": 50},
                       rec):
        os.rename(tmp_path / "a.txt", tmp_path / "b.txt")
        os.remove(tmp_path / "c.txt")
        await rec.wait_for(2)
        await asyncio.sleep(0.2)
    by_name = {Path(p["path"]).name: p for p in rec.payloads}
    assert set(by_name) == {"a.txt", "c.txt"}
    assert by_name["a.txt"]["kind"] == "moved"
    assert by_name["a.txt"]["dest_path"] == str((tmp_path / "b.txt").resolve())
    assert by_name["c.txt"]["kind"] == "deleted" and "dest_path" not in by_name["c.txt"]


async def test_file_events_setting_limits_kinds(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("x")
    rec = Recorder()
    async with running(FileChangeSource, {"watch_path": str(tmp_path), "debounce_ms": 50,
                                          "events": ["deleted"]}, rec):
        (tmp_path / "new.txt").write_text("x")
        (tmp_path / "old.txt").unlink()
        await rec.wait_for(1)
        await asyncio.sleep(0.2)
    assert [(Path(p["path"]).name, p["kinds"]) for p in rec.payloads] == [
        ("old.txt", ["deleted"])]


async def test_file_watch_one_file(tmp_path: Path) -> None:
    target = tmp_path / "one.txt"
    target.write_text("x")
    rec = Recorder()
    async with running(FileChangeSource, {"watch_path": str(target), "debounce_ms": 50},
                       rec):
        (tmp_path / "other.txt").write_text("x")
        target.write_text("y")
        await rec.wait_for(1)
        await asyncio.sleep(0.2)
    assert [p["path"] for p in rec.payloads] == [str(target.resolve())]


async def test_file_missing_watch_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="watch_path does not exist") as caught:
        async with running(FileChangeSource, {"watch_path": str(missing)}, Recorder()):
            pass
    assert str(missing) in str(caught.value)


async def test_file_stop_accepting_stops_triggers(tmp_path: Path) -> None:
    rec = Recorder()
    async with running(FileChangeSource, {"watch_path": str(tmp_path), "debounce_ms": 50},
                       rec) as (source, _):
        (tmp_path / "a.txt").write_text("x")
        await rec.wait_for(1)
        await source.stop_accepting()
        await asyncio.wait_for(source.wait_done(), 1)
        (tmp_path / "b.txt").write_text("x")
        await asyncio.sleep(0.3)
    assert len(rec.payloads) == 1


async def test_file_sources_sharing_a_watch_stop_independently(tmp_path: Path) -> None:
    first, second = Recorder(), Recorder()
    settings = {"watch_path": str(tmp_path), "debounce_ms": 50}
    services = RunServices()
    try:
        async with running(FileChangeSource, settings, second, services):
            async with running(FileChangeSource, settings, first, services):
                pass  # same folder and options: watchdog gives both the same watch
            (tmp_path / "a.txt").write_text("x")
            await second.wait_for(1)
            await asyncio.sleep(0.1)
    finally:
        assert await services.aclose()
    assert first.payloads == []


async def test_file_pending_paths_are_bounded(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files_module, "MAX_PENDING", 2)
    rec = Recorder()
    async with running(FileChangeSource, {"watch_path": str(tmp_path), "debounce_ms": 300},
                       rec):
        for name in "abcd":
            (tmp_path / f"{name}.txt").write_text("x")
        await rec.wait_for(2)
        await asyncio.sleep(0.2)
    assert len(rec.payloads) == 2
    assert rec.payloads[0]["dropped"] >= 2 and rec.payloads[1]["dropped"] == 0


class LimitedServices:
    """Services whose Observer hits the inotify watch limit."""

    def observer(self) -> Any:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")


async def test_file_falls_back_to_polling_at_the_watch_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FileChangeSource, "poll_interval", 0.1)
    rec = Recorder()
    async with running(FileChangeSource, {"watch_path": str(tmp_path), "debounce_ms": 50},
                       rec, LimitedServices()) as (_, info):
        assert info["backend"] == "polling"
        (tmp_path / "a.txt").write_text("x")
        await rec.wait_for(1)
    assert rec.payloads[0]["path"] == str((tmp_path / "a.txt").resolve())


async def test_run_services_one_observer() -> None:
    services = RunServices()
    try:
        observer = services.observer()
        assert services.observer() is observer and observer.is_alive()
    finally:
        assert await services.aclose() is True
    assert await services.aclose() is True  # idempotent
    with pytest.raises(RuntimeError):
        services.observer()


# --- http_request -------------------------------------------------------------------


def bearer(info: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {info['token']}"}


async def test_http_answers_with_the_wave_value_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOOM_HTTP_TOKEN", raising=False)
    rec = Recorder(WaveResult(ok=True, value={"n": 1, "odd": {3}}))
    async with (
        running(HttpRequestSource, {"path": "/hook"}, rec) as (_, info),
        aiohttp.ClientSession() as http,
    ):
        assert info["host"] == "127.0.0.1" and info["port"] > 0
        assert info["url"] == f"http://127.0.0.1:{info['port']}/hook"
        assert info["method"] == "POST" and len(info["token"]) >= 24
        async with http.post(info["url"] + "?q=1&m=a&m=b", json={"a": [1, 2]},
                             headers={**bearer(info), "X-Extra": "yes"}) as resp:
            assert resp.status == 200
            assert resp.content_type == "application/json"
            assert await resp.json() == {"n": 1, "odd": "{3}"}
    payload = rec.payloads[0]
    assert payload["type"] == "http_request" and payload["method"] == "POST"
    assert payload["path"] == "/hook"
    assert payload["query"] == {"q": "1", "m": ["a", "b"]}
    assert payload["body"] == {"a": [1, 2]}
    assert payload["headers"]["x-extra"] == "yes"
    assert "authorization" not in payload["headers"]
    assert all(name == name.lower() for name in payload["headers"])
    assert payload["remote"] == "127.0.0.1" and is_iso_utc(payload["time"])


@pytest.mark.parametrize(("value", "content_type", "body"), [
    ("héllo", "text/plain", "héllo".encode()),
    (b"\x00\x01", "application/octet-stream", b"\x00\x01"),
    (None, "application/json", b"null"),
    ([1, 2.5, True], "application/json", b"[1, 2.5, true]"),
])
async def test_http_response_types(value: Any, content_type: str, body: bytes) -> None:
    rec = Recorder(WaveResult(ok=True, value=value))
    async with (
        running(HttpRequestSource, {"auth": "none"}, rec) as (_, info),
        aiohttp.ClientSession() as http,
        http.post(info["url"]) as resp,
    ):
        assert resp.status == 200 and resp.content_type == content_type
        assert await resp.read() == body
        if content_type == "text/plain":
            assert resp.charset == "utf-8"
    assert "token" not in info
    assert rec.payloads[0]["body"] is None  # empty body


async def test_http_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOM_HTTP_TOKEN", "s3cret-token")
    rec = Recorder()
    async with (
        running(HttpRequestSource, {}, rec) as (_, info),
        aiohttp.ClientSession() as http,
    ):
        assert info["token"] == "s3cret-token"
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-Loom-Token": "wrong"},
                        {"Authorization": "Basic s3cret-token"}, {"X-Loom-Token": "s3crét"}):
            async with http.post(info["url"], headers=headers) as resp:
                assert resp.status == 401, headers
                assert "token" in (await resp.json())["error"]
        for headers in ({"Authorization": "Bearer s3cret-token"},
                        {"authorization": "bearer s3cret-token"},
                        {"X-Loom-Token": "s3cret-token"}):
            async with http.post(info["url"], headers=headers) as resp:
                assert resp.status == 200, headers
    assert len(rec.payloads) == 3
    assert all("x-loom-token" not in p["headers"] for p in rec.payloads)


async def test_http_fresh_token_per_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOOM_HTTP_TOKEN", raising=False)
    async with (
        running(HttpRequestSource, {}, Recorder()) as (_, one),
        running(HttpRequestSource, {}, Recorder()) as (_, two),
    ):
        assert one["token"] != two["token"] and one["port"] != two["port"]


def other_local_address() -> str | None:
    """An address of this machine that is not loopback, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.123", 9))  # no packet is sent for UDP connect
            address: str = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


async def test_http_binds_loopback_only() -> None:
    async with running(HttpRequestSource, {"auth": "none"}, Recorder()) as (_, info):
        assert info["host"] == "127.0.0.1"
        address = other_local_address()
        if address is not None:
            with pytest.raises(OSError):
                _, writer = await asyncio.open_connection(address, info["port"])
                writer.close()
                await writer.wait_closed()
        _, writer = await asyncio.open_connection("127.0.0.1", info["port"])
        writer.close()
        await writer.wait_closed()


async def test_http_client_errors() -> None:
    rec = Recorder()
    settings = {"auth": "none", "path": "/in", "max_body_bytes": 100}
    async with (
        running(HttpRequestSource, settings, rec) as (_, info),
        aiohttp.ClientSession() as http,
    ):
        base = f"http://127.0.0.1:{info['port']}"
        cases: list[tuple[str, str, dict[str, Any], int, str]] = [
            ("POST", "/other", {}, 404, "POST /in"),
            ("GET", "/in", {}, 405, "answers POST"),
            ("POST", "/in", {"data": b"x" * 1000, "headers": {"Content-Type": "text/plain"}},
             413, "100 bytes"),
            ("POST", "/in", {"data": b"<a/>", "headers": {"Content-Type": "application/xml"}},
             415, "application/xml"),
            ("POST", "/in", {"data": b"{bad", "headers": {"Content-Type": "application/json"}},
             400, "invalid JSON: "),
            ("POST", "/in", {"data": b"[NaN]", "headers": {"Content-Type": "application/json"}},
             400, "NaN is not allowed"),
            ("POST", "/in", {"data": b"\xff", "headers": {
                "Content-Type": "text/plain; charset=utf-8"}}, 400, "not valid utf-8"),
        ]
        for method, path, kwargs, status, words in cases:
            async with http.request(method, base + path, **kwargs) as resp:
                assert resp.status == status, (method, path, kwargs)
                assert resp.content_type == "application/json"
                assert words in (await resp.json())["error"]
        async with http.get(base + "/in") as resp:
            assert resp.headers["Allow"] == "POST"
        async with http.post(base + "/in", data={"a": "1", "b": "2"}) as resp:
            assert resp.status == 200
        async with http.post(base + "/in", data="héllo".encode("latin-1"),
                             headers={"Content-Type": "text/plain; charset=latin-1"}) as resp:
            assert resp.status == 200
    assert [p["body"] for p in rec.payloads] == [{"a": "1", "b": "2"}, "héllo"]


async def test_http_busy_failed_and_crashed_waves() -> None:
    failed = WaveResult(ok=False, error="node 'parse' failed: ValueError: bad input\n"
                                        "Traceback (most recent call last):\n  File ...")
    async with aiohttp.ClientSession() as http:
        async with (running(HttpRequestSource, {"auth": "none"}, Recorder(mode="drop"))
                    as (_, info), http.post(info["url"]) as resp):
            assert resp.status == 503
            assert await resp.json() == {"error": "busy: the request was dropped"}
        async with (running(HttpRequestSource, {"auth": "none", "expose_errors": True},
                            Recorder(failed)) as (_, info), http.post(info["url"]) as resp):
            assert resp.status == 500
            text = await resp.text()
            assert "Traceback" not in text
            assert await resp.json() == {"error": "node 'parse' failed: ValueError: bad input"}
        async with (running(HttpRequestSource, {"auth": "none"}, Recorder(mode="raise"))
                    as (_, info), http.post(info["url"]) as resp):
            assert resp.status == 500 and resp.content_type == "application/json"
            assert "Traceback" not in await resp.text()


async def test_http_response_timeout() -> None:
    rec = Recorder(mode="pending")
    async with (
        running(HttpRequestSource, {"auth": "none", "response_timeout": 0.1}, rec) as (_, info),
        aiohttp.ClientSession() as http,
        http.post(info["url"]) as resp,
    ):
        assert resp.status == 504
        assert "did not finish within 0.1 s" in (await resp.json())["error"]
        assert not rec.futures[0].cancelled()  # the wave itself goes on


async def test_http_in_flight_request_answered_after_stop_accepting() -> None:
    rec = Recorder(mode="pending")
    async with (
        running(HttpRequestSource, {"auth": "none"}, rec) as (source, info),
        aiohttp.ClientSession() as http,
    ):
        async def call() -> tuple[int, str]:
            async with http.post(info["url"]) as resp:
                return resp.status, await resp.text()

        in_flight = asyncio.create_task(call())
        await rec.wait_for(1)
        await source.stop_accepting()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", info["port"])
        rec.futures[0].set_result(WaveResult(ok=True, value="late but answered"))
        assert await asyncio.wait_for(in_flight, 2) == (200, "late but answered")


async def test_http_port_is_free_after_aclose() -> None:
    async with running(HttpRequestSource, {"auth": "none", "port": 0}, Recorder()) as (_, info):
        port = info["port"]
        assert port > 0
        async with aiohttp.ClientSession() as http, http.post(info["url"]) as resp:
            assert resp.status == 200
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as any server would
        again.bind(("127.0.0.1", port))
        again.listen()


async def test_http_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            async with running(HttpRequestSource, {"port": port}, Recorder()):
                pass


async def test_http_aclose_is_bounded_with_a_request_in_flight() -> None:
    rec = Recorder(mode="pending")
    loop = asyncio.get_running_loop()
    source = HttpRequestSource({"auth": "none"}, rec, "node1", RunServices())
    try:
        info = await source.start()
        async with aiohttp.ClientSession() as http:
            async def call() -> int:
                async with http.post(info["url"]) as resp:
                    return resp.status

            in_flight = asyncio.create_task(call())
            await rec.wait_for(1)
            started = loop.time()
            await source.aclose()
            assert loop.time() - started < 1.0
            with pytest.raises(aiohttp.ClientError):
                await asyncio.wait_for(in_flight, 2)
    finally:
        await source.aclose()
    assert not rec.futures[0].cancelled()  # closing the server never cancels a wave


async def test_http_wave_cancelled_by_the_run_answers_503() -> None:
    rec = Recorder(mode="pending")
    async with (
        running(HttpRequestSource, {"auth": "none"}, rec) as (_, info),
        aiohttp.ClientSession() as http,
    ):
        async def call() -> tuple[int, Any]:
            async with http.post(info["url"]) as resp:
                return resp.status, await resp.json()

        in_flight = asyncio.create_task(call())
        await rec.wait_for(1)
        rec.futures[0].cancel()
        assert await asyncio.wait_for(in_flight, 2) == (
            503, {"error": "the run stopped before the wave finished"})
