"""Preflight: whether the world a rollout needs is in place before its first step, and the
`Preflight` condition that says so.

The controller gathers the items (controller/preflight.py) only while a rollout is about to
start; this module judges them. Initializing waits on a failing item the way it waits for the
target's readiness: the condition goes False with every failing item and what to fix, an Event is
written once per new set of problems, and the items are gathered again each tick until they all
pass. Then the condition goes True and is not asked again for this revision (a new rollout clears
it, see decide._start), so the engine costs nothing on any tick past Initializing.

An item is ok, failed, unknown, or skipped (not checked, and said so: no proxy visible to ask).
Unknown holds the rollout like a failure: nothing the controller could not see is taken for a
pass. The condition's message holds one line per item, each starting with its mark, so
`canary preflight` prints what the controller saw without checking anything itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from canary.api.status import Condition
from canary.engine import conditions
from canary.engine.actions import Notify

PREFLIGHT = "Preflight"


class ItemState(StrEnum):
    OK = "ok"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"


# The mark each state starts its line with; canary preflight reads lines back by it.
MARKS = {
    ItemState.OK: "✓",
    ItemState.FAILED: "✗",
    ItemState.UNKNOWN: "?",
    ItemState.SKIPPED: "-",
}
_PASSING = frozenset({ItemState.OK, ItemState.SKIPPED})


@dataclass(frozen=True, slots=True)
class PreflightItem:
    """One thing checked: its name, its state, what was seen, and what to fix when not ok."""

    name: str
    state: ItemState
    seen: str
    fix: str = ""

    @property
    def passing(self) -> bool:
        return self.state in _PASSING

    def line(self) -> str:
        text = f"{MARKS[self.state]} {self.name}: {self.seen}"
        if self.fix and not self.passing:
            text += f"; fix: {self.fix}"
        # One line per item: the condition's message is read back line by line.
        return " ".join(text.split())


def message(items: tuple[PreflightItem, ...]) -> str:
    return "\n".join(item.line() for item in items)


def passed(items: tuple[PreflightItem, ...]) -> bool:
    return all(item.passing for item in items)


def needed(status_conditions: tuple[Condition, ...]) -> bool:
    """Whether the items must be gathered: not once they passed for this rollout."""
    return not conditions.is_true(status_conditions, PREFLIGHT)


def check(
    status_conditions: tuple[Condition, ...],
    items: tuple[PreflightItem, ...] | None,
    now: datetime,
) -> tuple[tuple[Condition, ...], tuple[Notify, ...], str] | None:
    """The conditions after judging `items`, the Event to write (none when nothing new is to be
    said), and why the rollout waits ("" when every item passes); None when there is nothing to
    judge (not gathered: passed already, or no preflight in this controller)."""
    if items is None:
        return None
    text = message(items)
    previous = next((c for c in status_conditions if c.type == PREFLIGHT), None)
    if passed(items):
        updated = conditions.with_condition(
            status_conditions,
            type=PREFLIGHT,
            status="True",
            reason="PreflightPassed",
            message=text,
            now=now,
        )
        if previous is not None and previous.status == "True":
            return updated, (), ""
        states = ", ".join(f"{item.name} {item.state}" for item in items)
        return updated, (Notify("PreflightPassed", f"preflight passed: {states}"),), ""
    updated = conditions.with_condition(
        status_conditions,
        type=PREFLIGHT,
        status="False",
        reason="PreflightFailed",
        message=text,
        now=now,
    )
    failing = "; ".join(item.line() for item in items if not item.passing)
    # Once per new set of problems: a tick that sees the same ones again says nothing.
    fresh = previous is None or previous.status != "False" or previous.message != text
    notices = (Notify("PreflightFailed", f"preflight failed: {failing}", True),) if fresh else ()
    return updated, notices, f"waiting for preflight: {failing}"
