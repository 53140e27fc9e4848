"""Personal reminders (pure): which DMs each follower gets, and whether a talk can still be followed.

A follow names a talk or an author; an author's follow covers every talk of theirs in the programme
being served, so a talk added by a reload is followed too. A user who follows a talk twice (by
itself and through its author) gets one DM for it, at the earliest of the leads they chose.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from bot.core.errors import UserError
from bot.core.schedule import Kind, Schedule, Talk
from bot.core.search import SearchIndex
from bot.reminders.plan import Plan, Reminder, reminder_due_at
from bot.state.store import LIVE, Follow, Store

DM_GUILD = 0  # DM reminders belong to no guild; their lane is the user


class Followable(StrEnum):
    YES = "yes"
    OVER = "over"  # the talk has ended, or started
    TOO_LATE = "too late"  # its reminder time, at this lead, has passed
    NOT_A_TALK = "not a talk"  # a break


def followable(talk: Talk, lead: int, now: dt.datetime) -> Followable:
    if talk.kind is Kind.BREAK:
        return Followable.NOT_A_TALK
    if now >= talk.start:
        return Followable.OVER
    if now > reminder_due_at(talk, lead):
        return Followable.TOO_LATE
    return Followable.YES


def talks_of(follow: Follow, schedule: Schedule, index: SearchIndex) -> list[Talk]:
    """The talks a follow covers in this version of the programme (none if its talk was removed)."""
    if follow.what == "talk":
        talk = schedule.talk(follow.key)
        return [talk] if talk is not None else []
    author = index.author(follow.key)
    return [t for t in author.talks if t.kind is not Kind.BREAK] if author is not None else []


def followed_talks(follows: Iterable[Follow], schedule: Schedule, index: SearchIndex) -> dict[str, int]:
    """One user's talks (id -> the largest lead among the follows that cover it), in start order."""
    leads: dict[str, int] = {}
    for follow in follows:
        for talk in talks_of(follow, schedule, index):
            leads[talk.id] = max(leads.get(talk.id, follow.lead), follow.lead)
    return dict(sorted(leads.items(), key=lambda kv: (schedule.talk(kv[0]).start, kv[0])))  # type: ignore[union-attr]


def plan_personal(schedule: Schedule, index: SearchIndex, follows: Iterable[Follow], run: str = LIVE) -> Plan:
    """Every DM reminder, one per (user, talk), in due order; `channel_id` holds the user id."""
    by_user: dict[int, list[Follow]] = {}
    for follow in follows:
        by_user.setdefault(follow.user_id, []).append(follow)
    found = []
    for user_id, theirs in by_user.items():
        for talk_id, lead in followed_talks(theirs, schedule, index).items():
            talk = schedule.talk(talk_id)
            assert talk is not None
            found.append(Reminder(talk, lead, user_id, reminder_due_at(talk, lead), DM_GUILD, None, run))
    found.sort(key=lambda r: (r.due_at, r.talk.start, r.talk.id, r.channel_id))
    return Plan(tuple(found), tuple(r.due_at.timestamp() for r in found))


# --------------------------------------------------------------------------- following (shared by Discord and the console)


class CannotFollow(UserError):
    """A talk that is over, or whose reminder time has passed: refused kindly, nothing stored."""


@dataclass(frozen=True, slots=True)
class Followed:
    talk: Talk
    lead: int

    @property
    def due_at(self) -> dt.datetime:
        return reminder_due_at(self.talk, self.lead)


LEAD_MAX = 120


def check_lead(minutes: int) -> int:
    if not 0 <= minutes <= LEAD_MAX:
        raise UserError(f"Reminders come 0 to {LEAD_MAX} minutes before a talk; {minutes} is outside that.")
    return minutes


def follow_talk(store: Store, user_id: int, talk: Talk, lead: int, now: dt.datetime) -> Followed:
    """Follow one talk; CannotFollow when it is over or its reminder time at this lead has passed."""
    verdict = followable(talk, check_lead(lead), now)
    if verdict is Followable.NOT_A_TALK:
        raise CannotFollow(f"“{talk.display_title}” is a break; there is nothing to remind you of.")
    if verdict is Followable.OVER:
        raise CannotFollow(f"“{talk.display_title}” has already started or is over, so there is nothing left to remind you of.")
    if verdict is Followable.TOO_LATE:
        minutes = max(0, int((talk.start - now).total_seconds() // 60))
        raise CannotFollow(f"“{talk.display_title}” starts in {minutes} minute{'s' * (minutes != 1)}, sooner than {lead} minutes: try a shorter lead.")
    store.follow(user_id, "talk", talk.id, talk.display_title, lead)
    return Followed(talk, lead)


def follow_author(store: Store, user_id: int, author_key: str, author_name: str, talks: Iterable[Talk], lead: int, now: dt.datetime) -> list[Followed]:
    """Follow every talk of an author (those to come, and any a reload adds); CannotFollow when none is left."""
    check_lead(lead)
    coming = [Followed(t, lead) for t in talks if followable(t, lead, now) is Followable.YES]
    if not coming:
        raise CannotFollow(f"{author_name} has no talk left whose reminder time, {lead} minutes before, is still to come.")
    store.follow(user_id, "author", author_key, author_name, lead)
    return coming


def my_reminders(store: Store, user_id: int, schedule: Schedule, index: SearchIndex, now: dt.datetime) -> list[Followed]:
    """What a user follows and has still to be reminded of, in order (one entry per talk)."""
    leads = followed_talks(store.follows_of(user_id), schedule, index)
    found = [Followed(schedule.talk(talk_id), lead) for talk_id, lead in leads.items()]  # type: ignore[arg-type]
    return [f for f in found if f.talk.end > now]


def cancel(store: Store, user_id: int, choice: str) -> int:
    """`all`, `talk:<id>` or `author:<key>` (what the cancel autocomplete offers); how many follows went."""
    if choice == "all":
        return store.unfollow(user_id)
    what, _, key = choice.partition(":")
    if what not in {"talk", "author"} or not key:
        raise UserError("Pick what to stop following from the list, or “all”.")
    return store.unfollow(user_id, what, key)
