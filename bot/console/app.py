"""Terminal front-end: the same commands a Discord user types, answered from the same core.

Interactive with line editing and history (readline), or fed commands on stdin: one answer each.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from bot.config import Settings
from bot.core import answers, qa, render_text
from bot.core.calendar import make_calendar
from bot.core.clock import Clock
from bot.core.errors import AmbiguousQuery, UserError
from bot.core.schedule import Schedule, Talk
from bot.core.search import SearchIndex
from bot.reminders.personal import cancel, follow_author, follow_talk, my_reminders, plan_personal
from bot.reminders.plan import Target, due_reminders, plan_reminders, reminder_phrase
from bot.state.store import Question, Store

log = logging.getLogger(__name__)
PROMPT = "track> "
LOCAL_USER = 0  # the console's one user
LOCAL_GUILD = 0  # and its one "server", for questions

HELP = """Commands (the same as on Discord):
  /next              the next talks, with how long until each starts
  /now               what is on now, and what follows
  /schedule          the whole session
  /talk QUERY        a talk by title words, author or topic (typos are fine)
  /abstract QUERY    the same, with the full abstract
  /author NAME       an author's talks, a chair's sessions (name or surname, accents optional)
  /calendar [QUERY]  write the programme, or one talk, as an .ics file for your calendar
  /remind talk QUERY [MINUTES]   remind me before a talk (printed here, as the bot would DM you)
  /remind author NAME [MINUTES]  remind me before every talk of an author
  /remind list | /remind cancel all|QUERY
  /ask QUESTION      ask a question about the talk (or joint Q&A) on now
  /ask QUERY :: QUESTION         ask about the talk QUERY finds
  /questions [QUERY] the top 10 open questions, with ids and votes (for the item on now, or QUERY's)
  /vote ID           vote for question ID; again to take the vote back
  /help              this list
  /quit              leave (or Ctrl-D)"""


@dataclass
class Console:
    schedule: Schedule
    index: SearchIndex
    clock: Clock
    tz: ZoneInfo
    files: Path = Path("state")  # where /calendar writes its .ics: the state folder
    store: Store | None = None  # follows of the console's one local user (/remind)
    default_lead: int = 5

    def handle(self, line: str) -> str:
        """The answer to one typed line; user mistakes become friendly text, never tracebacks."""
        line = line.strip()
        if not line or line.startswith("#"):
            return ""
        command, _, rest = line.partition(" ")
        command = command.lstrip("/").lower()
        handler = self._commands().get(command)
        if handler is None:
            return f"Unknown command “{command}”. Type /help for the list."
        try:
            return handler(rest.strip())
        except AmbiguousQuery as err:
            return "\n".join([str(err), *(f"  {i}. {s}" for i, s in enumerate(err.suggestions, 1))])
        except UserError as err:
            tail = [f"  - {s}" for s in err.suggestions]
            return "\n".join([str(err), *tail])

    def _commands(self) -> dict[str, Callable[[str], str]]:
        return {
            "next": lambda _: render_text.render_next(answers.next_talks(self.schedule, self.clock.now()), self.clock.now(), self.tz),
            "now": lambda _: render_text.render_now(answers.on_now(self.schedule, self.clock.now()), self.clock.now(), self.tz),
            "schedule": lambda _: render_text.render_agenda(answers.agenda(self.schedule), self.tz),
            "agenda": lambda _: render_text.render_agenda(answers.agenda(self.schedule), self.tz),
            "talk": lambda q: render_text.render_talk(answers.find_talk(self.index, q), self.schedule, self.tz, abstract=False),
            "abstract": lambda q: render_text.render_talk(answers.find_talk(self.index, q), self.schedule, self.tz),
            "author": lambda q: render_text.render_author(answers.find_author(self.index, q), self.clock.now(), self.tz),
            "help": lambda _: "\n\n".join(filter(None, [HELP, render_text.render_chairs(self.schedule.sessions)])),
            "calendar": self._calendar,
            "remind": self._remind,
            "ask": self._ask,
            "questions": self._questions,
            "vote": self._vote,
            "time": lambda _: f"The clock shows {self.clock.now().astimezone(self.tz):%a %-d %b %Y %H:%M:%S %Z}.",
        }

    def _calendar(self, query: str) -> str:
        """Write the .ics (the whole programme, or the talk `query` finds) and say where."""
        calendar = make_calendar(self.schedule, self.index, self.clock.now(), query=query or None)
        target = self.files / calendar.filename
        try:
            self.files.mkdir(parents=True, exist_ok=True)
            temp = target.with_name(f".{target.name}.tmp")
            temp.write_bytes(calendar.data)
            temp.replace(target)
        except OSError as err:
            return f"Could not write {target}: {err.strerror or err}"
        return f"📅 {calendar.label}: {calendar.events} event{'s' * (calendar.events != 1)} written to {target.resolve()}"

    def _remind(self, text: str) -> str:
        """`/remind talk|author QUERY [MINUTES]`, `/remind list`, `/remind cancel all|QUERY`, for the local user."""
        if self.store is None:
            return "Reminders need the state file; they are not available here."
        action, _, rest = text.partition(" ")
        query, lead = _query_and_minutes(rest.strip(), self.default_lead)
        now = self.clock.now()
        if action == "talk":
            followed = follow_talk(self.store, LOCAL_USER, answers.find_talk(self.index, query), lead, now)
            return f"✉ I'll remind you about “{followed.talk.display_title}” at {followed.due_at.astimezone(self.tz):%H:%M %Z}, {lead} min before it starts."
        if action == "author":
            person = answers.find_author(self.index, query)
            coming = follow_author(self.store, LOCAL_USER, person.key, person.name, person.talks, lead, now)
            lines = [f"  {f.due_at.astimezone(self.tz):%H:%M %Z}  {f.talk.display_title}" for f in coming]
            return "\n".join([f"✉ I'll remind you before each talk of {person.name}:", *lines])
        if action == "list":
            mine = my_reminders(self.store, LOCAL_USER, self.schedule, self.index, now)
            if not mine:
                return "You follow no talks yet: /remind talk QUERY or /remind author NAME."
            return "\n".join(
                f"  {f.talk.start.astimezone(self.tz):%a %H:%M}  {f.talk.display_title} (reminder {f.due_at.astimezone(self.tz):%H:%M})" for f in mine
            )
        if action == "cancel":
            choice = "all" if rest.strip() == "all" else f"talk:{answers.find_talk(self.index, rest.strip()).id}"
            return "Cancelled." if cancel(self.store, LOCAL_USER, choice) else "Nothing to cancel: you were not following that."
        return "Use /remind talk QUERY [MINUTES], /remind author NAME [MINUTES], /remind list or /remind cancel all|QUERY."

    def _ask(self, text: str) -> str:
        """`/ask QUESTION` for the item on now, `/ask QUERY :: QUESTION` for the talk QUERY finds."""
        if self.store is None:
            return "Questions need the state file; they are not available here."
        query, sep, question = text.partition("::")
        talk = self._talk_or_now(query.strip() if sep else "", "/ask QUERY :: QUESTION")
        asked = qa.ask(self.store, self.schedule, LOCAL_GUILD, LOCAL_USER, question if sep else text, talk, False, self.clock.now())
        title = self._title(asked.talk_id)
        return f"❓ Question #{asked.id} for “{title}” is in. Vote for questions with /vote ID; see the top ones with /questions."

    def _questions(self, query: str) -> str:
        if self.store is None:
            return "Questions need the state file; they are not available here."
        talk = self._talk_or_now(query, "/questions QUERY")
        top = qa.top_for(self.store, self.schedule, LOCAL_GUILD, talk, 10)
        if not top:
            return f"No open questions for “{talk.display_title}” yet. Ask one with /ask."
        joint = " and the talks it follows" if len(qa.covered(self.schedule, talk)) > 1 else ""
        return "\n".join([f"Top questions for “{talk.display_title}”{joint}:", *(self._question_line(q, talk) for q in top)])

    def _talk_or_now(self, query: str, usage: str) -> Talk:
        """The talk `query` finds, or the item on now (a console has no talk option: `usage` names the way)."""
        if query:
            return answers.find_talk(self.index, query)
        return qa.default_talk(self.schedule, self.clock.now(), how=f"with {usage}")

    def _question_line(self, question: Question, listed_for: Talk) -> str:
        mine = " (yours)" if question.user_id == LOCAL_USER else ""
        voted = " ✓" if self.store is not None and self.store.voted(question.id, LOCAL_USER) else ""
        about = f" [{self._title(question.talk_id)}]" if question.talk_id != listed_for.id else ""
        return f"  #{question.id}  ▲{question.votes}{voted}  {question.text}{mine}{about}"

    def _vote(self, text: str) -> str:
        """`/vote ID` gives the local user's vote to a question, or takes it back."""
        if self.store is None:
            return "Questions need the state file; they are not available here."
        raw = text.strip().lstrip("#")
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
            return "Use /vote ID, with an id from /questions."
        found = self.store.question(int(raw))
        if found is None or found.guild_id != LOCAL_GUILD:
            return f"No question #{raw}: /questions lists them with their ids."
        voted, count = self.store.toggle_vote(found.id, LOCAL_USER)
        votes = f"{count} vote{'s' * (count != 1)}"
        return f"▲ Voted for #{found.id} ({votes})." if voted else f"Vote taken back from #{found.id} ({votes})."

    def _title(self, talk_id: str) -> str:
        talk = self.schedule.talk(talk_id)
        return talk.display_title if talk else talk_id


def _query_and_minutes(text: str, default: int) -> tuple[str, int]:
    """'shooting 10' -> ('shooting', 10); a trailing number is the lead in minutes."""
    head, _, last = text.rpartition(" ")
    if head and last.isdigit():
        return head, int(last)
    return text, default


def _setup_readline(history: Path) -> None:
    try:
        import readline
    except ImportError:  # pragma: no cover - e.g. Windows without pyreadline
        return
    commands = ["/next", "/now", "/schedule", "/talk ", "/abstract ", "/author ", "/calendar", "/remind ", "/ask ", "/questions", "/vote ", "/help", "/quit"]

    def complete(text: str, state: int) -> str | None:
        options = [c for c in commands if c.startswith(text)]
        return options[state] if state < len(options) else None

    readline.set_completer(complete)
    readline.parse_and_bind("tab: complete")
    try:
        history.parent.mkdir(parents=True, exist_ok=True)
        readline.read_history_file(history)
    except OSError:
        pass
    import atexit

    atexit.register(lambda: _save_history(readline, history))


def _save_history(readline: object, history: Path) -> None:
    try:
        readline.set_history_length(1000)  # type: ignore[attr-defined]
        readline.write_history_file(history)  # type: ignore[attr-defined]
    except OSError:
        pass


def run_console(console: Console, stdin: TextIO, stdout: TextIO, *, interactive: bool, banner: str = "", history: Path | None = None) -> int:
    """Read commands until end of input or /quit; return the exit code."""
    if interactive:
        if history is not None:
            _setup_readline(history)
        print(banner, file=stdout)
        print("Type /help for the commands, /quit to leave.", file=stdout)
    while True:
        try:
            line = input(PROMPT) if interactive else stdin.readline()
        except (EOFError, KeyboardInterrupt):
            print(file=stdout)
            return 0
        if not interactive and not line:
            return 0
        if line.strip().lstrip("/").lower() in {"quit", "exit", "q"}:
            return 0
        answer = console.handle(line)
        if answer:
            print(answer, file=stdout)
            if not interactive:
                print(file=stdout)
            stdout.flush()


class ReminderTicker:
    """Prints reminders as they fall due on the console's clock; deduped in memory, no ledger."""

    def __init__(
        self, schedule: Schedule, clock: Clock, settings: Settings, tz: ZoneInfo, out: TextIO, index: SearchIndex | None = None, store: Store | None = None
    ) -> None:
        self.clock, self.tz, self.out = clock, tz, out
        self.schedule, self.index, self.store = schedule, index, store
        self.plan = plan_reminders(schedule, [Target(0, settings.reminder_leads)], settings.reminder_kinds)
        self.grace = dt.timedelta(minutes=settings.reminder_grace_minutes)
        self.done: set[str] = set()
        self._stop = threading.Event()

    def tick(self) -> list[str]:
        """The reminder lines due now (stale ones are dropped silently, as the bot logs and skips them)."""
        now = self.clock.now()
        send, skip = due_reminders(self.plan, now, self.grace, self.done)
        self.done.update(r.id for r in send)
        self.done.update(r.id for r, _ in skip)
        lines = [
            f"⏰ {r.talk.kind.label} {reminder_phrase(r.talk.start, now)} ({r.talk.start.astimezone(self.tz):%H:%M %Z}): {r.talk.display_title}" for r in send
        ]
        return lines + self._personal(now)

    def _personal(self, now: dt.datetime) -> list[str]:
        """The local user's /remind reminders, printed as the bot would DM them."""
        if self.store is None or self.index is None:
            return []
        plan = plan_personal(self.schedule, self.index, self.store.follows_of(LOCAL_USER))
        send, skip = due_reminders(plan, now, self.grace, self.done)
        self.done.update(r.id for r in send)
        self.done.update(r.id for r, _ in skip)
        return [
            f"✉ DM: {r.talk.kind.label} {reminder_phrase(r.talk.start, now)} ({r.talk.start.astimezone(self.tz):%H:%M %Z}): {r.talk.display_title}"
            for r in send
        ]

    def start(self, interval: float = 0.2) -> None:
        threading.Thread(target=self._run, args=(interval,), name="reminders", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            lines = self.tick()
            if lines:
                # Clear the prompt line, print, then redraw the prompt with what was being typed.
                print("\r\x1b[K" + "\n".join(lines), file=self.out)
                print(PROMPT + _typed_so_far(), end="", file=self.out, flush=True)


def _typed_so_far() -> str:
    try:
        import readline
    except ImportError:  # pragma: no cover
        return ""
    return readline.get_line_buffer()


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()
