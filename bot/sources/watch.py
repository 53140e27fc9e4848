"""Following the programme while the bot runs: a local file that changes, or a URL that is polled.

A new version is read and built off the event loop (in a thread) and handed to `accept`; one that
cannot be used goes to `refuse` and the served version stays. A URL is fetched with ETag and
If-Modified-Since, a timeout and a growing pause after failures; the last good copy is kept in the
state folder, so a restart while the server is down still serves it. Nothing fetched is ever run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from bot.core.schedule import ScheduleError

log = logging.getLogger(__name__)

MAX_BYTES = 50 * 1024 * 1024  # the same limit as for a local file
FETCH_TIMEOUT = 30.0
USER_AGENT = "session-bot (schedule follower)"

Parse = Callable[[bytes, str], Any]  # bytes, source name -> a ready programme (schedule, index); raises ScheduleError
Accept = Callable[[Any, str], Awaitable[None]]
Refuse = Callable[[str, str], Awaitable[None]]  # source, reason


class Outcome(StrEnum):
    UNCHANGED = "unchanged"
    ACCEPTED = "accepted"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"


class FetchError(Exception):
    """The URL could not be fetched (network, HTTP status, size); says which and why."""


@dataclass(frozen=True, slots=True)
class Fetched:
    data: bytes | None  # None: not modified since the validators we sent
    etag: str | None = None
    last_modified: str | None = None


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def fetch(url: str, *, etag: str | None = None, last_modified: str | None = None, timeout: float = FETCH_TIMEOUT, limit: int = MAX_BYTES) -> Fetched:
    """One conditional GET of an http(s) URL, at most `limit` bytes."""
    if not is_url(url):
        raise FetchError(f"{url}: only http and https URLs are fetched")
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "*/*"})
    if etag:
        request.add_header("If-None-Match", etag)
    if last_modified:
        request.add_header("If-Modified-Since", last_modified)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read(limit + 1)
            if len(data) > limit:
                raise FetchError(f"{url}: larger than {limit // (1024 * 1024)} MB; refused")
            return Fetched(data, response.headers.get("ETag"), response.headers.get("Last-Modified"))
    except urllib.error.HTTPError as err:
        if err.code == 304:
            return Fetched(None, etag, last_modified)
        raise FetchError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise FetchError(f"{url}: {reason}") from None


class LastGood:
    """The last copy of a URL's programme that was accepted, with its validators, in the state folder."""

    def __init__(self, folder: Path, url: str) -> None:
        name = hashlib.blake2b(url.encode(), digest_size=8).hexdigest()
        self.data_path = folder / f"schedule-{name}.last"
        self.meta_path = folder / f"schedule-{name}.json"
        self.url = url

    def read(self) -> tuple[bytes | None, dict[str, str]]:
        try:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
            data = self.data_path.read_bytes()
        except (OSError, ValueError):
            return None, {}
        if not isinstance(meta, dict) or meta.get("url") != self.url or meta.get("sha256") != hashlib.sha256(data).hexdigest():
            return None, {}
        return data, {k: v for k, v in meta.items() if isinstance(v, str)}

    def write(self, data: bytes, fetched: Fetched) -> None:
        meta = {"url": self.url, "sha256": hashlib.sha256(data).hexdigest(), "etag": fetched.etag or "", "last_modified": fetched.last_modified or ""}
        try:
            self.data_path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(self.data_path, data)
            _atomic_write(self.meta_path, json.dumps(meta).encode())
        except OSError as err:
            log.warning("schedule: could not keep the last good copy of %s in %s (%s)", self.url, self.data_path.parent, err)


def _atomic_write(path: Path, data: bytes) -> None:
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=".tmp-", delete=False)  # noqa: SIM115 (closed below)
    try:
        with handle:
            handle.write(data)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def fetch_at_start(url: str, state_dir: Path, parse: Parse, timeout: float = FETCH_TIMEOUT) -> tuple[Any, bytes, str]:
    """The programme at start, ready: fetched now, or the last good copy when the server cannot be
    reached or serves a version that is refused. Returns (ready, its bytes, how it was obtained)."""
    last = LastGood(state_dir, url)
    saved, meta = last.read()
    try:
        fetched = fetch(url, etag=meta.get("etag") if saved else None, last_modified=meta.get("last_modified") if saved else None, timeout=timeout)
    except FetchError as err:
        if saved is None:
            raise ScheduleError(url, [_problem(f"cannot fetch it ({err}) and there is no earlier copy in {state_dir}")]) from None
        log.warning("schedule: %s; serving the last good copy kept in %s", err, state_dir)
        return parse(saved, url), saved, "last good copy"
    if fetched.data is None and saved is not None:
        return parse(saved, url), saved, "not modified"
    data = fetched.data or b""
    try:
        ready = parse(data, url)
    except ScheduleError as err:
        if saved is None:
            raise
        log.error("schedule: the version at %s was refused; serving the last good copy kept in %s.\n%s", url, state_dir, err)
        return parse(saved, url), saved, "last good copy"
    last.write(data, fetched)
    return ready, data, "fetched"


def _problem(message: str):
    from bot.core.schedule import Problem

    return Problem(0, "(url)", message)


class ScheduleWatcher:
    """Checks its source for a new version at start of each period, on demand (SIGHUP, /reload), and accepts or refuses it."""

    def __init__(
        self,
        source: str,
        *,
        parse: Parse,
        accept: Accept,
        refuse: Refuse,
        poll_seconds: float = 300.0,
        file_poll_seconds: float = 2.0,
        state_dir: Path | None = None,
        served: bytes | None = None,
    ) -> None:
        self.source = source
        self._parse, self._accept, self._refuse = parse, accept, refuse
        self.poll_seconds = poll_seconds if is_url(source) else min(poll_seconds, file_poll_seconds)
        self._digest = hashlib.sha256(served).hexdigest() if served is not None else None
        self._refused_digest: str | None = None
        self._stat: tuple[int, int, int] | None = self._file_stat()
        self._last = LastGood(state_dir, source) if state_dir is not None and is_url(source) else None
        self._validators: dict[str, str] = self._last.read()[1] if self._last is not None else {}
        self._failures = 0
        self._pending: Fetched | None = None  # the validators of a fetched version, kept once it is accepted
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="schedule-watch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._pause())
            try:
                await self.check()
            except Exception:
                log.exception("schedule: checking %s failed", self.source)

    def _pause(self) -> float:
        """The poll period, doubled per failure in a row up to eight times (a server in trouble is not hammered)."""
        return self.poll_seconds * min(8, 2**self._failures) if self._failures else self.poll_seconds

    def _file_stat(self) -> tuple[int, int, int] | None:
        if is_url(self.source):
            return None
        try:
            st = Path(self.source).stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    async def check(self, *, force: bool = False) -> Outcome:
        """Look for a new version now; one check at a time."""
        async with self._lock:
            data = await self._read(force)
            if data is None:
                return Outcome.UNCHANGED if self._failures == 0 else Outcome.UNREACHABLE
            digest = hashlib.sha256(data).hexdigest()
            if digest == self._digest:
                return Outcome.UNCHANGED
            if digest == self._refused_digest and not force:
                return Outcome.REFUSED
            try:
                ready = await asyncio.to_thread(self._parse, data, self.source)
            except ScheduleError as err:
                self._refused_digest = digest
                await self._refuse(self.source, str(err))
                return Outcome.REFUSED
            self._digest, self._refused_digest = digest, None
            if self._last is not None and self._pending is not None:
                self._last.write(data, self._pending)  # only an accepted version becomes the last good copy
            await self._accept(ready, self.source)
            return Outcome.ACCEPTED

    async def _read(self, force: bool) -> bytes | None:
        if not is_url(self.source):
            stat = self._file_stat()
            if stat is None or (stat == self._stat and not force):
                return None
            self._stat = stat
            try:
                return await asyncio.to_thread(_read_file, Path(self.source))
            except OSError as err:
                log.warning("schedule: cannot read %s (%s); still serving the current version", self.source, err)
                return None
        try:
            fetched = await asyncio.to_thread(
                fetch, self.source, etag=self._validators.get("etag") or None, last_modified=self._validators.get("last_modified") or None
            )
        except FetchError as err:
            self._failures += 1
            if self._failures == 1:
                log.warning("schedule: %s; still serving the current version, retrying with a growing pause", err)
            return None
        if self._failures:
            log.info("schedule: %s reachable again", self.source)
        self._failures = 0
        if fetched.data is None:
            return None
        self._validators = {"etag": fetched.etag or "", "last_modified": fetched.last_modified or ""}
        self._pending = fetched
        return fetched.data


def _read_file(path: Path) -> bytes:
    with path.open("rb") as handle:
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise OSError(f"larger than {MAX_BYTES // (1024 * 1024)} MB")
    return data
