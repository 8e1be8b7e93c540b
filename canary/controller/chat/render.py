"""What a rollout's chat message says: pure functions of the Canary's spec and status.

One message per rollout (Slack's bot API updates it in place): where it stands (phase, weight,
step i/n, how long it has run), each check's last verdict with its value and threshold, the
chaos verdicts, the approvals asked and decided, the Canary's links, and, while the rollout
waits on a person, the Approve and Reject buttons. A rollout that failed says why in one line
(the check, its value, its threshold) and names the command that explains the rest. Every
event besides is one short line (a reply in the message's thread, or a message of its own for
a webhook).

Slack's limits are kept here: a section's text is at most 3,000 characters and a message at
most 50 blocks, so long lists are cut with a count of what was left out. The text beside the
blocks is what a notification preview, a screen reader and a webhook without blocks show.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from canary.api.people import APPROVE_ACTION, REJECT_ACTION, ApprovalRecord, ClickValue, Event
from canary.api.spec import CanarySpec
from canary.api.status import CanaryStatus, ChaosPhase, CheckResult, Phase, Verdict
from canary.engine.actions import Notify
from canary.ports import CanaryKey, ChatMessage

SECTION_CHARS = 2900
LINE_CHARS = 300
MAX_CHECKS = 20
MAX_CHAOS = 5
MAX_APPROVALS = 5

_VERDICT_MARK = {Verdict.PASS: ":white_check_mark:", Verdict.FAIL: ":x:"}
_CHAOS_MARK = {ChaosPhase.PASSED: ":white_check_mark:", ChaosPhase.FAILED: ":x:"}
_FAILED_PHASES = frozenset({Phase.FAILED, Phase.ROLLING_BACK})


def rollout(
    key: CanaryKey,
    spec: CanarySpec,
    status: CanaryStatus,
    *,
    started: datetime | None = None,
    now: datetime | None = None,
) -> ChatMessage:
    """The one message of the rollout of `status.revision`."""
    head = headline(key, spec, status, started=started, now=now)
    lines = [head]
    blocks: list[dict[str, Any]] = [_section(f"*{head}*")]
    if status.message:
        blocks.append(_context(_cut(status.message, LINE_CHARS)))
    why = failure(key, status)
    if why:
        lines.append(why)
        blocks.append(_section(f":rotating_light: {why}"))
    checks = [check_line(check) for check in status.checks[:MAX_CHECKS]]
    if len(status.checks) > MAX_CHECKS:
        checks.append(f"… and {len(status.checks) - MAX_CHECKS} more")
    if checks:
        blocks.append(_section("*Checks*\n" + "\n".join(checks)))
    chaos = [chaos_line(entry.name, entry.phase, entry.message) for entry in status.chaos]
    if chaos:
        blocks.append(_section("*Chaos*\n" + "\n".join(chaos[-MAX_CHAOS:])))
    records = [r for r in status.approvals if r.revision == status.revision]
    decided = [approval_line(r) for r in records[-MAX_APPROVALS:] if r.decision is not None]
    if decided:
        blocks.append(_section("*Approvals*\n" + "\n".join(decided)))
    pending = awaiting(status)
    if pending is not None:
        ask = f"Waiting for approval: {pending.gate}"
        lines.append(ask)
        blocks.append(_section(f":raised_hand: *{ask}*"))
        blocks.append(buttons(key, status.revision, pending.gate))
    links = spec.links.named()
    if links:
        blocks.append(_context(" · ".join(f"<{url}|{name}>" for name, url in links)))
    return ChatMessage(
        text=_cut("\n".join(lines), SECTION_CHARS),
        blocks=tuple(blocks),
        fields=facts(key, spec, status),
    )


def headline(
    key: CanaryKey,
    spec: CanarySpec,
    status: CanaryStatus,
    *,
    started: datetime | None = None,
    now: datetime | None = None,
) -> str:
    weights = spec.analysis.weights
    parts = [f"{key.name} ({key.namespace})", str(status.phase or "Pending")]
    parts.append(f"weight {status.canary_weight}%")
    if status.phase in (Phase.PROGRESSING, Phase.INITIALIZING) and weights:
        parts.append(f"step {min(status.step + 1, len(weights))}/{len(weights)}")
    if started is not None and now is not None:
        parts.append(f"running {duration(now - started)}")
    return " · ".join(parts)


def failure(key: CanaryKey, status: CanaryStatus) -> str:
    """Why a rollout failed, in one line naming `canary explain`; "" while it has not."""
    if status.phase not in _FAILED_PHASES:
        return ""
    explain = f"`canary explain {key.name} -n {key.namespace}`"
    failed = [c for c in status.checks if c.verdict is Verdict.FAIL and c.counted]
    chaos = [c for c in status.chaos if c.phase is ChaosPhase.FAILED]
    if failed:
        check = failed[-1]
        why = f"{check.name} was {_value(check)}, needs {check.threshold or 'to pass'}"
    elif chaos:
        why = f"chaos {chaos[-1].name} failed: {chaos[-1].message}"
    else:
        why = status.message or "the rollout failed"
    return _cut(f"Failed: {why}. See {explain}", LINE_CHARS)


def check_line(check: CheckResult) -> str:
    mark = _VERDICT_MARK.get(check.verdict, ":grey_question:")
    threshold = f" (needs {check.threshold})" if check.threshold else ""
    observe = "" if check.counted else " (observed only)"
    return _cut(f"{mark} {check.name}: {_value(check)}{threshold}{observe}", LINE_CHARS)


def chaos_line(name: str, phase: ChaosPhase, message: str) -> str:
    mark = _CHAOS_MARK.get(phase, ":hourglass_flowing_sand:")
    return _cut(f"{mark} {name}: {phase}" + (f" — {message}" if message else ""), LINE_CHARS)


def approval_line(record: ApprovalRecord) -> str:
    who = f"<@{record.by}>" if record.via == "slack" and record.by else (record.by or "nobody")
    when = "" if record.decided_at is None else f" at {record.decided_at:%Y-%m-%d %H:%M:%S} UTC"
    how = f" via {record.via}" if record.via else ""
    return _cut(f"{record.gate}: {record.decision} by {who}{how}{when}", LINE_CHARS)


def awaiting(status: CanaryStatus) -> ApprovalRecord | None:
    """The approval the rollout waits on now, if any: the last record, undecided, of this
    revision while the status says it waits."""
    if not status.approvals or not status.waiting_for:
        return None
    last = status.approvals[-1]
    if last.decision is not None or last.revision != status.revision:
        return None
    return last


def buttons(key: CanaryKey, revision: str, gate: str) -> dict[str, Any]:
    value = ClickValue(
        canary=f"{key.namespace}/{key.name}", revision=revision, gate=gate
    ).model_dump_json(by_alias=True)
    return {
        "type": "actions",
        "block_id": "canary.approval",
        "elements": [
            {
                "type": "button",
                "action_id": APPROVE_ACTION,
                "text": {"type": "plain_text", "text": "Approve"},
                "style": "primary",
                "value": value,
            },
            {
                "type": "button",
                "action_id": REJECT_ACTION,
                "text": {"type": "plain_text", "text": "Reject (roll back)"},
                "style": "danger",
                "value": value,
            },
        ],
    }


def reply(notice: Notify) -> ChatMessage:
    """One short line for the rollout's thread."""
    mark = ":warning: " if notice.warning else ""
    return ChatMessage(text=_cut(f"{mark}{notice.reason}: {notice.message}", LINE_CHARS))


def event_message(
    key: CanaryKey, spec: CanarySpec, status: CanaryStatus, notice: Notify, event: Event
) -> ChatMessage:
    """A message of its own for one event (a webhook backend, which has no thread)."""
    text = f"{key.name} ({key.namespace}) {notice.reason}: {notice.message}"
    why = failure(key, status) if event is Event.ROLLED_BACK else ""
    if why:
        text += f"\n{why}"
    return ChatMessage(
        text=_cut(text, SECTION_CHARS),
        blocks=(_section(_cut(text, SECTION_CHARS)),),
        fields={
            **facts(key, spec, status),
            "event": str(event),
            "reason": notice.reason,
            "message": notice.message,
        },
    )


def facts(key: CanaryKey, spec: CanarySpec, status: CanaryStatus) -> Mapping[str, Any]:
    return {
        "canary": key.name,
        "namespace": key.namespace,
        "phase": str(status.phase or ""),
        "weight": status.canary_weight,
        "step": status.step + 1,
        "steps": len(spec.analysis.weights),
        "revision": status.revision,
    }


def duration(elapsed: Any) -> str:
    """Whole minutes (hours past 90 minutes): a message is updated when it changes, so a finer
    clock would rewrite it on every tick."""
    minutes = max(0, int(elapsed.total_seconds() // 60))
    if minutes < 90:
        return f"{minutes}m"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _value(check: CheckResult) -> str:
    if check.value is not None:
        return f"{check.value:.4g}"
    return check.message or str(check.kind)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, SECTION_CHARS)}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
