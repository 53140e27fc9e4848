"""Event-loop steps of the reminder service at conference scale: planning, the first drain, /reminders status.

A bot whose loop is blocked misses Discord's 3-second interaction deadline and its heartbeats.
This starts the ReminderService over a generated conference with several guilds and leads, on a
clock set in the middle of the conference (so that most reminders are long past), with a send
that answers at once, and reports the longest single event-loop step seen (asyncio's own
slow-callback report) and how long each phase took.

    .venv/bin/python -m bench.loop --talks 10000 --guilds 3 --leads 10,5
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import statistics
import tempfile
import time
from pathlib import Path

from bench.generate import ensure_schedule
from bot.core.cache import load_ready
from bot.core.clock import FixedClock
from bot.reminders.plan import Target
from bot.reminders.service import Delivery, ReminderService
from bot.state.store import Store

STEP_LIMIT = 0.050  # seconds: the target for any one event-loop step


class SlowSteps(logging.Handler):
    """Collects asyncio's 'Executing <...> took 0.123 seconds' reports (debug mode)."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        found = re.search(r"took ([0-9.]+) seconds", text)
        if found:
            self.steps.append((float(found.group(1)), text[:160]))


async def measure(talks: int, guilds: int, leads: tuple[int, ...], state_dir: Path) -> dict[str, float | int | str]:
    schedule, _ = load_ready(ensure_schedule(talks), None)
    middle = schedule.talks[len(schedule.talks) // 2].start
    clock = FixedClock(middle)
    store = Store(state_dir / "bench.sqlite3")
    sent = 0

    async def send(delivery: Delivery) -> int:
        nonlocal sent
        sent += 1
        await asyncio.sleep(0)
        return sent

    targets = [Target(1000 + g, leads, guild_id=g + 1) for g in range(guilds)]
    service = ReminderService(schedule, clock, store, send, lambda: targets, kinds={"oral", "spotlight", "talk"}, grace_minutes=10)
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = STEP_LIMIT / 5  # report anything over 10 ms; the longest is what counts
    slow = SlowSteps()
    logging.getLogger("asyncio").addHandler(slow)
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    try:
        service.start()
        began = time.perf_counter()
        await service.replan()
        planned = time.perf_counter() - began
        began = time.perf_counter()
        await service.drain()
        first_drain = time.perf_counter() - began
        clock.advance(minutes=30)
        began = time.perf_counter()
        await service.drain()
        later_drain = time.perf_counter() - began
        durations = []
        for guild in range(1, guilds + 1):
            began = time.perf_counter()
            service.status(clock.now(), guild)
            durations.append(time.perf_counter() - began)
        await service.close()
    finally:
        logging.getLogger("asyncio").removeHandler(slow)
        loop.set_debug(False)
        store.close()
    longest = max(slow.steps, default=(0.0, "none over 10 ms"))
    return {
        "talks": len(schedule.talks),
        "reminders": len(service.plan),
        "guilds": guilds,
        "sent": sent,
        "replan_s": planned,
        "first_drain_s": first_drain,
        "later_drain_s": later_drain,
        "status_ms": statistics.median(durations) * 1000,
        "longest_step_ms": longest[0] * 1000,
        "longest_step": longest[1],
        "steps_over_50ms": sum(1 for took, _ in slow.steps if took > STEP_LIMIT),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loop", description=__doc__.splitlines()[0])
    parser.add_argument("--talks", type=int, default=10_000)
    parser.add_argument("--guilds", type=int, default=3)
    parser.add_argument("--leads", default="10,5")
    args = parser.parse_args(argv)
    leads = tuple(int(x) for x in args.leads.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(measure(args.talks, args.guilds, leads, Path(tmp)))
    print(
        f"{result['talks']:,} talks, {result['guilds']} guilds, leads {args.leads}: {result['reminders']:,} reminders planned in {result['replan_s']:.2f} s "
        f"(in a thread); first drain {result['first_drain_s'] * 1000:.0f} ms ({result['sent']} sent), a later one {result['later_drain_s'] * 1000:.0f} ms; "
        f"/reminders status {result['status_ms']:.1f} ms"
    )
    print(f"longest event-loop step: {result['longest_step_ms']:.1f} ms; steps over 50 ms: {result['steps_over_50ms']}")
    if result["steps_over_50ms"]:
        print(f"  slowest: {result['longest_step']}")
    return 0 if not result["steps_over_50ms"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
