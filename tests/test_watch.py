"""Following the schedule: a local file edited under the bot, a URL polled with ETag, the last good copy."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import web

from bot.core.schedule import ScheduleError
from bot.discord_ui.app import parse_ready
from bot.sources.watch import FetchError, LastGood, Outcome, ScheduleWatcher, fetch, fetch_at_start
from tests.conftest import TRACK28

GOOD = TRACK28.read_bytes()
MOVED = GOOD.replace(b"start: 2020-12-10T06:00:00-08:00", b"start: 2020-12-10T05:45:00-08:00").replace(
    b'end: 2020-12-10T06:15:00-08:00\n        title: "A shooting', b'end: 2020-12-10T06:00:00-08:00\n        title: "A shooting'
)
BROKEN = GOOD.replace(b"end: 2020-12-10T06:15:00-08:00", b"end: 2020-12-10T05:15:00-08:00", 1)


class Recorder:
    def __init__(self) -> None:
        self.accepted: list = []
        self.refused: list[str] = []

    async def accept(self, ready, source: str) -> None:
        self.accepted.append(ready)

    async def refuse(self, source: str, reason: str) -> None:
        self.refused.append(reason)


def watcher_for(source: str, recorder: Recorder, served: bytes | None, **options) -> ScheduleWatcher:
    return ScheduleWatcher(source, parse=parse_ready, accept=recorder.accept, refuse=recorder.refuse, served=served, **options)


def test_moved_fixture_really_moves_the_first_talk():
    schedule, _ = parse_ready(MOVED, "moved.yaml")
    assert schedule.talk("shooting-formulation").start.hour == 5


async def test_a_file_edited_under_the_bot_is_accepted_and_a_broken_one_refused_once(tmp_path):
    path = tmp_path / "schedule.yaml"
    path.write_bytes(GOOD)
    recorder = Recorder()
    watcher = watcher_for(str(path), recorder, GOOD)
    assert await watcher.check() is Outcome.UNCHANGED
    path.write_bytes(MOVED)
    assert await watcher.check() is Outcome.ACCEPTED
    ((schedule, index),) = recorder.accepted
    assert schedule.talk("shooting-formulation").start.hour == 5 and index.schedule is schedule
    path.write_bytes(BROKEN)
    assert await watcher.check() is Outcome.REFUSED
    assert await watcher.check(force=False) is Outcome.UNCHANGED  # the same broken bytes are not read again
    assert len(recorder.refused) == 1 and "schedule.yaml" in recorder.refused[0] and "end" in recorder.refused[0]
    path.write_bytes(GOOD)
    assert await watcher.check() is Outcome.ACCEPTED
    assert len(recorder.accepted) == 2


async def test_the_watch_loop_notices_an_edit_by_itself(tmp_path):
    path = tmp_path / "schedule.yaml"
    path.write_bytes(GOOD)
    recorder = Recorder()
    watcher = watcher_for(str(path), recorder, GOOD, file_poll_seconds=0.05)
    watcher.start()
    try:
        path.write_bytes(MOVED)
        for _ in range(200):
            if recorder.accepted:
                break
            await asyncio.sleep(0.02)
    finally:
        await watcher.close()
    assert len(recorder.accepted) == 1


@pytest.fixture
async def server():
    """A programme server on localhost: serves `state['body']` with an ETag, or fails on demand."""
    state = {"body": GOOD, "etag": '"v1"', "fail": False, "requests": []}

    async def handle(request: web.Request) -> web.Response:
        state["requests"].append(dict(request.headers))
        if state["fail"]:
            return web.Response(status=503)
        if request.headers.get("If-None-Match") == state["etag"]:
            return web.Response(status=304)
        return web.Response(body=state["body"], headers={"ETag": state["etag"]})

    app = web.Application()
    app.router.add_get("/schedule.yaml", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state["url"] = f"http://127.0.0.1:{port}/schedule.yaml"
    yield state
    await runner.cleanup()


async def test_a_url_is_polled_with_its_etag_and_its_last_good_copy_kept(server, tmp_path):
    url = server["url"]
    (schedule, _), data, how = await asyncio.to_thread(fetch_at_start, url, tmp_path, parse_ready)
    assert data == GOOD and how == "fetched" and schedule.talk("shooting-formulation") is not None
    assert LastGood(tmp_path, url).read()[0] == GOOD
    recorder = Recorder()
    watcher = watcher_for(url, recorder, data, state_dir=tmp_path, poll_seconds=300)
    assert await watcher.check() is Outcome.UNCHANGED  # 304: the validators of the copy kept at start were sent
    assert server["requests"][-1].get("If-None-Match") == '"v1"'
    server["body"], server["etag"] = MOVED, '"v2"'
    assert await watcher.check() is Outcome.ACCEPTED
    assert LastGood(tmp_path, url).read()[0] == MOVED
    server["body"], server["etag"] = BROKEN, '"v3"'
    assert await watcher.check() is Outcome.REFUSED
    assert LastGood(tmp_path, url).read()[0] == MOVED  # a refused version never becomes the last good copy
    server["fail"] = True
    assert await watcher.check() is Outcome.UNREACHABLE
    assert watcher._pause() == 600  # the pause doubles while the server fails
    # a restart while the server is down serves the last good copy
    (schedule, _), data, how = await asyncio.to_thread(fetch_at_start, url, tmp_path, parse_ready)
    assert data == MOVED and how == "last good copy" and schedule.talk("shooting-formulation").start.hour == 5


async def test_an_unreachable_url_with_no_copy_is_refused_with_a_message(tmp_path):
    with pytest.raises(ScheduleError, match="cannot fetch it"):
        await asyncio.to_thread(fetch_at_start, "http://127.0.0.1:9/none.yaml", tmp_path, parse_ready, 2.0)


async def test_only_http_is_fetched_and_sizes_are_capped(server):
    with pytest.raises(FetchError, match="only http"):
        fetch("file:///etc/passwd")
    with pytest.raises(FetchError, match="larger than"):
        await asyncio.to_thread(fetch, server["url"], limit=100)


def test_a_tampered_last_good_copy_is_not_served(tmp_path):
    from bot.sources.watch import Fetched

    last = LastGood(tmp_path, "http://example.invalid/s.yaml")
    last.write(GOOD, Fetched(GOOD, '"v1"'))
    assert last.read()[0] == GOOD
    Path(last.data_path).write_bytes(BROKEN)
    assert last.read() == (None, {})
