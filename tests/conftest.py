"""Shared fixtures: the real Track 28 schedule and its index, built once per test session."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.core.schedule import Schedule
from bot.core.search import SearchIndex
from bot.sources import load_schedule

ROOT = Path(__file__).resolve().parent.parent
TRACK28 = ROOT / "data" / "track28.yaml"
PST = ZoneInfo("America/Los_Angeles")


def pst(hour: int, minute: int = 0, day: int = 10) -> dt.datetime:
    """An instant on the session's day, in its zone."""
    return dt.datetime(2020, 12, day, hour, minute, tzinfo=PST)


@pytest.fixture(scope="session")
def schedule() -> Schedule:
    return load_schedule(TRACK28)


@pytest.fixture(scope="session")
def index(schedule: Schedule) -> SearchIndex:
    return SearchIndex(schedule)


def moved(schedule: Schedule, talk_id: str, start: dt.datetime) -> Schedule:
    """The same schedule with one talk moved to `start` (same id, same length): a postponement."""
    import dataclasses

    def move(talk):
        return dataclasses.replace(talk, start=start, end=start + (talk.end - talk.start)) if talk.id == talk_id else talk

    sessions = tuple(dataclasses.replace(s, items=tuple(sorted((move(t) for t in s.items), key=lambda t: t.start))) for s in schedule.sessions)
    return Schedule(sessions, schedule.conference, schedule.source)


async def wait_for(predicate, timeout: float) -> None:
    """Poll `predicate` until it is true; TimeoutError after `timeout` seconds."""
    import asyncio

    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.01)


# --- state backends: every store test runs on SQLite and on a real PostgreSQL -------------------


def _system_postgres(folder: Path) -> tuple[str, object] | None:
    """A throw-away server from the PostgreSQL on PATH (initdb, pg_ctl), when pgserver cannot run; None if there is none."""
    import os
    import shutil
    import subprocess

    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None or os.geteuid() == 0:  # the server refuses to run as root
        return None
    data, sockets = folder / "data", folder / "sock"
    sockets.mkdir(parents=True)
    subprocess.run([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"], check=True, capture_output=True, timeout=120)
    options = f"-k {sockets} -c listen_addresses='' -c fsync=off"
    subprocess.run([pg_ctl, "-D", str(data), "-o", options, "-w", "start"], check=True, capture_output=True, timeout=120)
    return f"postgresql://postgres@/postgres?host={sockets}", lambda: subprocess.run([pg_ctl, "-D", str(data), "-m", "immediate", "stop"], check=False)


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory) -> str:
    """The URL of a PostgreSQL server for this test session: TEST_POSTGRES_URL, else pgserver's, else the system's."""
    import os
    import time

    given = os.environ.get("TEST_POSTGRES_URL", "").strip()
    if given:
        yield given
        return
    reasons = []
    started = time.perf_counter()
    try:
        import pgserver

        server = pgserver.get_server(tmp_path_factory.mktemp("pgserver"), cleanup_mode="stop")
    except Exception as err:  # no wheel for this platform, or it cannot start here
        reasons.append(f"pgserver: {err!s:.200}")
    else:
        print(f"\npgserver started in {time.perf_counter() - started:.2f} s")
        yield server.get_uri()
        server.cleanup()
        return
    try:
        found = _system_postgres(tmp_path_factory.mktemp("postgres"))
    except Exception as err:
        reasons.append(f"system PostgreSQL: {err!s:.200}")
        found = None
    if found is None:
        pytest.skip("no PostgreSQL server can run here (" + "; ".join(reasons or ["pgserver missing, no initdb on PATH or running as root"]) + ")")
    url, stop = found
    yield url
    stop()


_databases = iter(range(1, 1_000_000))


@pytest.fixture
def postgres_database(postgres_url: str) -> str:
    """A fresh, empty database on the session's server, dropped after the test."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    name = f"t{next(_databases)}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield make_conninfo(postgres_url, dbname=name)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def make_store(backend: str, request, tmp_path):
    """Open a store on this test's database (call it again for a second process's view of the same data)."""
    if backend == "postgres":
        from bot.state.postgres import PostgresStore

        url = request.getfixturevalue("postgres_database")
        open_one = lambda: PostgresStore(url)  # noqa: E731
    else:
        from bot.state.store import Store

        open_one = lambda: Store(tmp_path / "state" / "bot.sqlite3")  # noqa: E731
    opened = []

    def make():
        opened.append(open_one())
        return opened[-1]

    yield make
    for s in opened:
        s.close()


@pytest.fixture
def postgres_stores(postgres_database):
    """Open PostgresStores on this test's database, each a process of its own (its own pool and owner); closed after the test."""
    from bot.state.postgres import PostgresStore

    opened = []

    def make():
        opened.append(PostgresStore(postgres_database))
        return opened[-1]

    yield make
    for store in opened:
        store.close()
