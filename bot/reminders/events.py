"""Discord scheduled events for talks, the pure half: what the guild's Events tab should hold at `now`.

One external event per upcoming talk. Discord refuses a start in the past and keeps at most 100
open events per guild, so the plan skips talks that have started, keeps the soonest that fit and
rolls forward as talks end. It is a diff against the events Discord holds: create what is
missing, patch what differs, delete what no longer belongs, and adopt an event that is already
there (ours by its marker, or anyone's with the talk's name and start) instead of duplicating it.
Nothing here talks to Discord; bot.discord_ui.events runs the plan.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from bot.core.schedule import Kind, Schedule, Session, Talk
from bot.core.text import shorten

EVENTS_MAX = 100  # open (scheduled or active) events per guild
NAME_MAX = 100
DESCRIPTION_MAX = 1000
LOCATION_MAX = 100
CREATE_MARGIN = dt.timedelta(minutes=1)  # a start closer than this may be past by the time Discord reads it
MIN_LENGTH = dt.timedelta(minutes=1)  # Discord wants the end after the start
AUTHORS_MAX = 300
TEASER_MAX = 500
MARKER = "Programme id: "  # the description's last line; finds our event again if the state is lost

CREATE_EVENTS = "Create Events"
MANAGE_EVENTS = "Manage Events"


@dataclass(frozen=True, slots=True)
class EventSpec:
    """The event one talk should have."""

    talk_id: str
    name: str
    description: str
    location: str
    start: dt.datetime
    end: dt.datetime

    @property
    def ref(self) -> str:
        return talk_ref(self.talk_id)


@dataclass(frozen=True, slots=True)
class Existing:
    """An open event as Discord holds it (the Discord side builds these from its ScheduledEvents)."""

    id: int
    name: str
    start: dt.datetime
    end: dt.datetime | None = None
    description: str = ""
    location: str = ""
    by_bot: bool = True  # created by this bot: Create Events is enough to change it; else Manage Events
    external: bool = True
    active: bool = False  # started: its start can no longer change

    @property
    def ref(self) -> str | None:
        """The talk reference of our marker line, if the description ends with one."""
        last = self.description.rstrip().rsplit("\n", 1)[-1]
        return last[len(MARKER) :].strip() if last.startswith(MARKER) else None


@dataclass(frozen=True, slots=True)
class Patch:
    event_id: int
    spec: EventSpec
    fields: tuple[str, ...]  # among name, description, location, start, end
    by_bot: bool = True


@dataclass(frozen=True, slots=True)
class Delete:
    event_id: int
    talk_id: str  # "" for an event of ours that belongs to no talk
    reason: str  # ended, removed, not listed, beyond the limit, duplicate, orphan
    by_bot: bool = True


@dataclass
class EventPlan:
    """What to do in one guild; `events` maps talk ids to their event ids before any of it is done."""

    creates: list[EventSpec] = field(default_factory=list)
    patches: list[Patch] = field(default_factory=list)
    deletes: list[Delete] = field(default_factory=list)
    events: dict[str, int] = field(default_factory=dict)
    adopted: dict[str, int] = field(default_factory=dict)
    kept: int = 0  # events that stay as they are
    skipped_past: int = 0  # talks that have started without an event: Discord refuses past starts
    beyond_limit: int = 0  # upcoming talks left out until earlier ones end
    capacity: int = EVENTS_MAX
    blocked: tuple[str, ...] = ()  # permissions missing for part of the plan (see `allowed`)
    next_end: dt.datetime | None = None  # the earliest end of a talk that keeps or gets an event

    def __bool__(self) -> bool:
        return bool(self.creates or self.patches or self.deletes)

    def summary(self) -> str:
        parts = [f"{len(self.creates)} to create", f"{len(self.patches)} to update", f"{len(self.deletes)} to delete", f"{self.kept} unchanged"]
        if self.adopted:
            parts.append(f"{len(self.adopted)} adopted")
        if self.skipped_past:
            parts.append(f"{self.skipped_past} started talk(s) skipped")
        if self.beyond_limit:
            parts.append(f"{self.beyond_limit} beyond Discord's limit of {EVENTS_MAX}")
        return ", ".join(parts)

    def allowed(self, can_create: bool, can_manage: bool) -> EventPlan:
        """The part of the plan these permissions allow, naming in `blocked` what the rest needs.

        Creating needs Create Events; our own events can be changed with Create Events or Manage
        Events; anyone else's need Manage Events (Discord's rules since February 2026).
        """
        own_ok = can_create or can_manage

        def ok(by_bot: bool) -> bool:
            return own_ok if by_bot else can_manage

        blocked: list[str] = []
        if (self.creates and not can_create) or (not own_ok and any(op.by_bot for op in (*self.patches, *self.deletes))):
            blocked.append(CREATE_EVENTS)
        if not can_manage and any(not op.by_bot for op in (*self.patches, *self.deletes)):
            blocked.append(MANAGE_EVENTS)
        return replace(
            self,
            creates=self.creates if can_create else [],
            patches=[p for p in self.patches if ok(p.by_bot)],
            deletes=[d for d in self.deletes if ok(d.by_bot)],
            blocked=tuple(blocked),
        )


# --------------------------------------------------------------------------- one talk's event


def talk_ref(talk_id: str) -> str:
    """The talk's id as written in the marker line; a long or odd id is replaced by its hash."""
    if 0 < len(talk_id) <= 64 and talk_id.isprintable() and talk_id.strip() == talk_id:
        return talk_id
    return "h" + hashlib.blake2b(talk_id.encode(), digest_size=10).hexdigest()


def one_line(text: str) -> str:
    return " ".join(text.split())


def location_of(session: Session, schedule: Schedule) -> str:
    """The room, else the session's name: Discord wants 1 to 100 characters."""
    return shorten(one_line(session.room) or one_line(session.name) or one_line(schedule.name), LOCATION_MAX) or "Online"


def describe(talk: Talk, session: Session) -> str:
    """Kind and authors, the session when the room is the location, a teaser of the abstract, the link, our marker."""
    head = talk.kind.label
    if talk.authors:
        head += " by " + shorten(", ".join(one_line(a) for a in talk.authors), AUTHORS_MAX)
    lines = [head]
    if session.room and session.name:
        lines.append(shorten("Session: " + one_line(session.name), 200))
    tail = [talk.url] if talk.url and len(talk.url) <= 300 else []
    tail.append(MARKER + talk_ref(talk.id))
    abstract = one_line(talk.display_abstract)
    room = DESCRIPTION_MAX - len("\n".join(lines)) - len("\n".join(tail)) - 4  # two blank lines around the teaser
    if abstract and room > 40:
        lines += ["", shorten(abstract, min(TEASER_MAX, room))]
    return "\n".join([*lines, "", *tail])[:DESCRIPTION_MAX]


def event_spec(talk: Talk, schedule: Schedule) -> EventSpec:
    session = schedule.session_of(talk)
    name = shorten(one_line(talk.display_title), NAME_MAX) or shorten(talk.id, NAME_MAX)
    start = talk.start.astimezone(dt.UTC)
    end = max(talk.end.astimezone(dt.UTC), start + MIN_LENGTH)
    return EventSpec(talk.id, name, describe(talk, session), location_of(session, schedule), start, end)


def listed(talk: Talk, kinds: Collection[str]) -> bool:
    """The items that get an event: the kinds that get reminders (breaks never)."""
    return talk.kind is not Kind.BREAK and talk.kind.value in kinds


# --------------------------------------------------------------------------- the plan


def plan_events(
    schedule: Schedule,
    kinds: Collection[str],
    existing: Iterable[Existing],
    known: Mapping[str, int],
    now: dt.datetime,
    limit: int = EVENTS_MAX,
) -> EventPlan:
    """The diff that leaves one event per listed talk that has not ended, soonest first, within the limit.

    `existing` are the guild's open events; `known` maps talk ids to the event ids stored by
    earlier syncs. A talk that has started keeps its event until it ends but never gets a new one.
    """
    open_events = {e.id: e for e in existing}
    events = {tid: eid for tid, eid in known.items() if eid in open_events}
    specs = [event_spec(t, schedule) for t in schedule.talks if t.end > now and listed(t, kinds)]
    plan = EventPlan()
    plan.adopted = _adopt(specs, open_events, events)
    events.update(plan.adopted)
    plan.events = dict(events)
    ours = set(events.values())
    plan.deletes = _strays(open_events, ours, {s.ref for s in specs})
    stray_ids = {d.event_id for d in plan.deletes}
    plan.capacity = max(0, limit - sum(1 for eid in open_events if eid not in ours and eid not in stray_ids))
    candidates = []
    for spec in specs:
        if spec.talk_id in events or spec.start > now + CREATE_MARGIN:
            candidates.append(spec)
        else:
            plan.skipped_past += 1
    wanted = candidates[: plan.capacity]
    plan.beyond_limit = len(candidates) - len(wanted)
    wanted_ids = {s.talk_id for s in wanted}
    for tid, eid in events.items():
        if tid not in wanted_ids:
            plan.deletes.append(Delete(eid, tid, _why_not(schedule.talk(tid), kinds, now), open_events[eid].by_bot))
    for spec in wanted:
        eid = events.get(spec.talk_id)
        if eid is None:
            plan.creates.append(spec)
            continue
        changed = differences(open_events[eid], spec, now)
        if changed:
            plan.patches.append(Patch(eid, spec, changed, open_events[eid].by_bot))
        else:
            plan.kept += 1
    plan.next_end = min((s.end for s in wanted), default=None)
    return plan


def _adopt(specs: Sequence[EventSpec], open_events: Mapping[int, Existing], events: Mapping[str, int]) -> dict[str, int]:
    """Events already there for talks that have none stored: ours by marker, else any external one with the same name and start."""
    claimed = set(events.values())
    by_ref: dict[str, list[Existing]] = {}
    by_name: dict[tuple[str, dt.datetime], list[Existing]] = {}
    for event in open_events.values():
        if event.id in claimed or not event.external:
            continue
        if event.by_bot and event.ref is not None:
            by_ref.setdefault(event.ref, []).append(event)
        by_name.setdefault((event.name, event.start), []).append(event)
    adopted: dict[str, int] = {}
    for spec in specs:
        if spec.talk_id in events:
            continue
        found = [e for e in by_ref.get(spec.ref, []) if e.id not in claimed]
        found = found or sorted((e for e in by_name.get((spec.name, spec.start), []) if e.id not in claimed), key=lambda e: (not e.by_bot, e.id))
        if found:
            adopted[spec.talk_id] = found[0].id
            claimed.add(found[0].id)
    return adopted


def _strays(open_events: Mapping[int, Existing], ours: set[int], refs: set[str]) -> list[Delete]:
    """Events this bot made for a talk (by their marker) that no stored or adopted id accounts for."""
    strays = []
    for event in open_events.values():
        ref = event.ref
        if event.id in ours or not event.by_bot or ref is None:
            continue
        strays.append(Delete(event.id, "", "duplicate" if ref in refs else "orphan", by_bot=True))
    return strays


def _why_not(talk: Talk | None, kinds: Collection[str], now: dt.datetime) -> str:
    if talk is None:
        return "removed"
    if talk.end <= now:
        return "ended"
    if not listed(talk, kinds):
        return "not listed"
    return "beyond the limit"


def differences(event: Existing, spec: EventSpec, now: dt.datetime) -> tuple[str, ...]:
    """The fields to patch. A start can only move to the future, and not once the event is active."""
    changed = [name for name, have, want in (("name", event.name, spec.name), ("description", event.description, spec.description)) if have != want]
    if event.location != spec.location:
        changed.append("location")
    start = event.start
    if event.start != spec.start and not event.active and spec.start > now + CREATE_MARGIN:
        changed.append("start")
        start = spec.start
    if event.end != spec.end and spec.end > start:
        changed.append("end")
    return tuple(changed)


def effective_now(clock_now: dt.datetime, real_now: dt.datetime) -> dt.datetime:
    """The later of the bot's clock and real time.

    Discord compares starts with real time, so a talk gets an event only if it starts after both:
    a rehearsal replaying a past day creates nothing, and one running ahead of real time treats the
    talks it has already played as over.
    """
    return max(clock_now, real_now)
