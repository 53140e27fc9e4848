"""Command line: `python -m bot [run|console|check|import|sync|plan|ics|events]`.

Loads settings and the schedule, then starts one front-end. User mistakes (a bad setting, a
malformed schedule) end with a clear message and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.parser import isoparse

from bot.config import ConfigError, Secret, Settings, load_settings
from bot.core.clock import Clock, make_clock
from bot.core.render_text import render_summary
from bot.core.schedule import Problem, Schedule, ScheduleError
from bot.logsafety import RedactingFilter
from bot.logsafety import install as install_redaction
from bot.sources import load_file, load_schedule
from bot.state.store import StateError

log = logging.getLogger("bot")
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

NO_TOKEN = (
    "No DISCORD_TOKEN is set, so the bot cannot connect to Discord.\n"
    "To connect: copy .env.example to .env, put your bot token in DISCORD_TOKEN "
    "(Developer Portal > your application > Bot > Reset Token), then run the bot again.\n"
    "To try the commands without Discord: python -m bot console"
)


class UsageError(Exception):
    """A bad command-line value; printed as is, exit code 2."""


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--schedule", metavar="PATH", help="schedule file (env SCHEDULE_PATH, default data/track28.yaml)")
    common.add_argument("--replay-from", metavar="ISO", help="start the clock at this instant, e.g. 2020-12-10T05:50-08:00 (env BOT_REPLAY_FROM)")
    common.add_argument("--speed", type=float, metavar="X", help="clock speed: 60 runs a minute per second (env BOT_CLOCK_SPEED)")
    common.add_argument("--tz", metavar="ZONE", help="show times in this IANA zone instead of the schedule's, e.g. Europe/Paris")
    parser = argparse.ArgumentParser(prog="python -m bot", description="Conference session bot for Discord, with a terminal console.", parents=[common])
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", parents=[common], help="connect to Discord (the console when no token is set)")
    sub.add_parser("console", parents=[common], help="answer the slash commands in this terminal, no Discord needed")
    check = sub.add_parser("check", parents=[common], help="validate a schedule file of any format and summarise it")
    check.add_argument("path", nargs="?", help="schedule file (default: SCHEDULE_PATH or data/track28.yaml)")
    check.add_argument("-v", "--warnings", action="store_true", help="list each warning, not only how many")
    importer = sub.add_parser("import", help="write our YAML from a schedule of any format (pretalx/frab JSON or XML, iCalendar)")
    importer.add_argument("path", help="schedule file to read")
    importer.add_argument("-o", "--output", metavar="FILE", help="where to write the YAML (default: standard output)")
    for command in (check, importer):
        command.add_argument("--schedule-tz", metavar="ZONE", help="IANA zone for a file that states none (env SCHEDULE_TIMEZONE)")
    sync = sub.add_parser("sync", parents=[common], help="publish the slash commands globally and remove DISCORD_GUILD_ID's copies")
    where = sync.add_mutually_exclusive_group()
    where.add_argument("--guild", action="store_true", help="publish to DISCORD_GUILD_ID only (they show at once) and remove the global ones")
    where.add_argument("--clear", action="store_true", help="remove the commands both globally and from DISCORD_GUILD_ID")
    sub.add_parser("plan", parents=[common], help="print when each reminder would fire")
    sub.add_parser("events", parents=[common], help="sync DISCORD_GUILD_ID's scheduled events with the schedule once and exit (SCHEDULED_EVENTS=on)")
    ics = sub.add_parser("ics", parents=[common], help="write the programme, or one talk, as an iCalendar (.ics) file")
    ics.add_argument("--talk", metavar="QUERY", help="only this talk, found as /talk finds it (words of its title, an author, or its id)")
    ics.add_argument("-o", "--output", metavar="FILE", help="where to write the .ics (default: standard output)")
    return parser


def configure_logging(level: str, token: Secret, stream: TextIO | None = None) -> RedactingFilter:
    """One handler on the root logger, at `level`, whose lines never show a token (see bot.logsafety)."""
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=stream or sys.stderr)
    logging.getLogger().setLevel(level)
    return install_redaction([token])


def _clock(args: argparse.Namespace, settings: Settings) -> Clock:
    replay = settings.replay_from
    if args.replay_from:
        try:
            replay = isoparse(args.replay_from)
        except ValueError:
            raise UsageError(f"--replay-from must be an ISO time such as 2020-12-10T05:50-08:00, got {args.replay_from!r}") from None
        if replay.tzinfo is None:
            raise UsageError(f"--replay-from needs a UTC offset, e.g. {args.replay_from}-08:00")
    speed = settings.clock_speed if args.speed is None else args.speed
    if not 0 < speed <= 10_000:
        raise UsageError(f"--speed must be above 0 and at most 10000, got {speed:g}")
    return make_clock(replay, speed)


def _zone(args: argparse.Namespace, schedule: Schedule) -> ZoneInfo:
    if not args.tz:
        return schedule.timezone
    try:
        return ZoneInfo(args.tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--tz: unknown time zone {args.tz!r}; use an IANA name such as Europe/Paris") from None


def _schedule_path(args: argparse.Namespace, settings: Settings) -> Path:
    return Path(getattr(args, "path", None) or args.schedule or settings.schedule_path)


def _source_zone(args: argparse.Namespace, settings: Settings) -> ZoneInfo | None:
    """The zone for a file that states none: --schedule-tz, else SCHEDULE_TIMEZONE."""
    if not args.schedule_tz:
        return settings.schedule_timezone
    try:
        return ZoneInfo(args.schedule_tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--schedule-tz: unknown time zone {args.schedule_tz!r}; use an IANA name such as Europe/Berlin") from None


def _counted(warnings: list[Problem]) -> str:
    return f"{len(warnings)} warning{'s' * (len(warnings) != 1)}"


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    """Validate and summarise any format; a good file also leaves the prepared copy the bot starts from."""
    path = _schedule_path(args, settings)
    schedule, warnings = load_file(path, _source_zone(args, settings))
    for session in schedule.sessions:
        print(render_summary(session))
    for problem in warnings if args.warnings else ():
        print(f"warning: {problem.located(schedule.source)}")
    more = " (-v lists them)" if warnings and not args.warnings else ""
    print(f"{schedule.source}: OK, {len(schedule.sessions)} session(s), {len(schedule.talks)} items, {_counted(warnings)}{more}")
    _prepare(settings, path)
    return 0


def _prepare(settings: Settings, path: Path) -> None:
    """Leave the prepared copy, so that the first start after a check is a restart."""
    from bot.state.prepared import load_prepared

    try:
        load_prepared(settings, path)
    except ScheduleError as err:  # e.g. a file that needs SCHEDULE_TIMEZONE, which the prepared copy is not yet keyed by
        log.debug("check: no prepared copy of %s: %s", path, err)


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    """Our YAML from any format: to -o FILE (written whole or not at all), else to standard output."""
    from bot.sources.yaml_writer import dump_yaml, to_yaml

    schedule, warnings = load_file(args.path, _source_zone(args, settings))
    header = f"Imported from {schedule.source} by `python -m bot import`; check it with `python -m bot check`."
    if args.output:
        _write_atomically(Path(args.output), to_yaml(schedule, header=header))
    else:
        try:
            dump_yaml(schedule, sys.stdout, header=header)
            sys.stdout.flush()
        except BrokenPipeError:  # `import FILE | head`: the reader has all it wants
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    where = args.output or "standard output"
    print(f"{schedule.source}: {len(schedule.sessions)} session(s), {len(schedule.talks)} items, {_counted(warnings)} -> {where}", file=sys.stderr)
    return 0


def _write_atomically(target: Path, text: str | bytes) -> None:
    import tempfile

    try:
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as err:
        raise UsageError(f"cannot write {target}: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "wb") as handle:  # bytes as given: an .ics keeps its CRLF line ends on every platform
            handle.write(text if isinstance(text, bytes) else text.encode("utf-8"))
        os.replace(temp, target)
    except OSError as err:
        Path(temp).unlink(missing_ok=True)
        raise UsageError(f"cannot write {target}: {err.strerror or err}") from None


def cmd_console(args: argparse.Namespace, settings: Settings, *, note: str = "") -> int:
    from bot.console.app import Console, ReminderTicker, run_console, stdin_is_terminal
    from bot.state.prepared import load_prepared

    schedule, index = load_prepared(settings, _schedule_path(args, settings))
    clock = _clock(args, settings)
    tz = _zone(args, schedule)
    from bot.state import open_store

    store = open_store(settings)  # the local user's /remind follows
    lead = settings.reminder_leads[0] if settings.reminder_leads else 5
    console = Console(schedule, index, clock, tz, files=settings.state_path.parent, store=store, default_lead=lead)
    interactive = stdin_is_terminal()
    banner = "\n".join(filter(None, [note, f"{schedule.name} · {len(schedule.talks)} items · times in {tz.key} · {clock!r}"]))
    ticker = ReminderTicker(schedule, clock, settings, tz, sys.stdout, index=index, store=store)
    if interactive:  # piped mode answers and exits at once: no reminders mixed into the answers
        ticker.start()
    try:
        return run_console(console, sys.stdin, sys.stdout, interactive=interactive, banner=banner, history=settings.state_path.parent / "console_history")
    finally:
        ticker.stop()
        store.close()


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from bot.console.app import stdin_is_terminal

    if not settings.discord_token:
        if stdin_is_terminal():
            return cmd_console(args, settings, note=NO_TOKEN)
        print(NO_TOKEN, file=sys.stderr)
        return 2
    from bot.discord_ui.app import run_discord

    return run_discord(settings, _schedule_path(args, settings), _clock(args, settings))


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    """Publish the commands to one scope and remove them from the other, so none shows twice."""
    if not settings.discord_token:
        print(NO_TOKEN, file=sys.stderr)
        return 2
    from bot.discord_ui.app import SyncScope, sync_global

    scope = SyncScope.GUILD if args.guild else SyncScope.CLEAR if args.clear else SyncScope.GLOBAL
    if scope is SyncScope.GUILD and settings.guild_id is None:
        raise UsageError("sync --guild publishes to DISCORD_GUILD_ID, which is not set; set it to your server's id (right-click the server > Copy Server ID)")
    return sync_global(settings, _schedule_path(args, settings), scope)


def cmd_plan(args: argparse.Namespace, settings: Settings) -> int:
    from bot.reminders.plan import print_plan

    schedule = load_schedule(_schedule_path(args, settings), settings.schedule_timezone, max_bytes=settings.schedule_max_bytes)
    return print_plan(schedule, settings, _clock(args, settings).now(), sys.stdout)


def cmd_ics(args: argparse.Namespace, settings: Settings) -> int:
    """The .ics of the programme or of one talk: to -o FILE (written whole or not at all), else standard output."""
    from bot.core.calendar import make_calendar
    from bot.core.errors import UserError
    from bot.state.prepared import load_prepared

    schedule, index = load_prepared(settings, _schedule_path(args, settings))
    try:
        calendar = make_calendar(schedule, index, _clock(args, settings).now(), query=args.talk)
    except UserError as err:
        raise UsageError("\n".join([f"--talk: {err}", *(f"  - {s}" for s in err.suggestions)])) from None
    if args.output:
        _write_atomically(Path(args.output), calendar.data)
    else:
        try:
            sys.stdout.buffer.write(calendar.data)
            sys.stdout.flush()
        except BrokenPipeError:  # `ics | head`: the reader has all it wants
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    print(f"{calendar.label}: {calendar.events} event(s), {len(calendar.data):,} bytes -> {args.output or 'standard output'}", file=sys.stderr)
    return 0


def cmd_events(args: argparse.Namespace, settings: Settings) -> int:
    """One external scheduled event per upcoming talk in DISCORD_GUILD_ID: create, update, delete, then exit."""
    if not settings.discord_token:
        print(NO_TOKEN, file=sys.stderr)
        return 2
    from bot.discord_ui.events import run_events

    return run_events(settings, _schedule_path(args, settings), _clock(args, settings))


COMMANDS = {
    "run": cmd_run,
    "console": cmd_console,
    "check": cmd_check,
    "import": cmd_import,
    "sync": cmd_sync,
    "plan": cmd_plan,
    "ics": cmd_ics,
    "events": cmd_events,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.log_level, settings.discord_token)
        return COMMANDS[args.command or "run"](args, settings)
    except (ConfigError, UsageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ScheduleError as err:
        print(err, file=sys.stderr)
        return 2
    except StateError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
