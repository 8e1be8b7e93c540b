"""`canary chaos`: a one-off fault experiment on a running rollout, asked of the controller.

The command never injects a fault itself: the controller is the only writer of faults (it
clears any fault its status does not account for), so the command writes a request into the
Canary's `canary.dev/chaos-request` annotation, waits for the experiment's result to appear in
the status, prints it, and removes the request. The experiment therefore gets the controller's
safety: an expiry carried with the fault, clearing on rollback and on restart.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from canary.api import problems
from canary.api.chaos import REQUEST_ANNOTATION, Abort, ChaosRequest, Delay, Fault
from canary.api.status import TERMINAL_PHASES, ChaosPhase, ChaosResult, Phase
from canary.cluster.client import Client, NotFound
from canary.engine import chaos
from canary.ports import CanaryKey, StoredCanary

FAULT_FORMS = "abort:<http status>:<percent> or delay:<duration>:<percent>"
POLL_SECONDS = 1.0


class Refused(Exception):
    """The experiment cannot be asked for; the message says why, for the user."""


@dataclass
class Target:
    """The Canary the experiment is for, wherever it lives (a cluster or a state directory)."""

    client: Client
    key: CanaryKey

    def stored(self) -> StoredCanary | None:
        return self.client.stored(self.key)

    def annotate(self, value: str | None) -> None:
        # A merge patch of the one annotation: nothing else on the object is touched, and null
        # removes it.
        try:
            self.client.patch(self.key, {"metadata": {"annotations": {REQUEST_ANNOTATION: value}}})
        except NotFound:
            # Removing the request from a Canary deleted meanwhile: nothing left to remove.
            if value is not None:
                raise


def parse_fault(texts: Sequence[str]) -> Fault:
    """`abort:503:50` and/or `delay:2s:10` as a Fault; ValueError says what is allowed."""
    abort: Abort | None = None
    delay: Delay | None = None
    for text in texts:
        parts = text.split(":")
        if len(parts) != 3 or parts[0] not in ("abort", "delay"):
            raise ValueError(f"{text!r}: a fault is {FAULT_FORMS}")
        kind, amount, percent = parts
        try:
            if kind == "abort":
                abort = Abort(http_status=int(amount), percentage=float(percent))
            else:
                delay = Delay(fixed_delay=amount, percentage=float(percent))
        except ValidationError as exc:
            raise ValueError(f"{text!r}: {problems.lines(exc, Fault)[0]}") from exc
        except ValueError as exc:
            raise ValueError(f"{text!r}: {exc}; a fault is {FAULT_FORMS}") from exc
    if abort is None and delay is None:
        raise ValueError(f"give at least one --fault ({FAULT_FORMS})")
    return Fault(abort=abort, delay=delay)


def ask(target: Target, fields: dict[str, Any]) -> ChaosRequest:
    """Write the request for the rollout in progress; Refused when there is none to test."""
    stored = target.stored()
    if stored is None:
        raise Refused("Canary not found")
    if stored.spec is None:
        raise Refused(f"the Canary is invalid: {'; '.join(stored.problems)}")
    status = stored.status
    if status.phase is not Phase.PROGRESSING or status.step_started_at is None:
        where = status.phase or "not started"
        raise Refused(
            f"no live step to test: the rollout is {where}; an experiment runs only while a "
            "step's weights are live"
        )
    name = fields.get("name") or f"oneoff-{secrets.token_hex(3)}"
    if any(result.name == name for result in status.chaos):
        raise Refused(f"an experiment named {name} already ran in this rollout")
    try:
        request = ChaosRequest.model_validate({**fields, "name": name, "revision": status.revision})
    except ValidationError as exc:
        raise Refused("; ".join(problems.lines(exc, ChaosRequest))) from exc
    interval = stored.spec.analysis
    if request.duration_seconds > interval.interval_seconds:
        raise Refused(
            f"--duration {request.duration} is longer than a step (analysis.interval "
            f"{interval.interval}); a fault must not hold the canary at risk longer than a step"
        )
    target.annotate(request.model_dump_json(by_alias=True, exclude_none=True))
    return request


def await_result(
    target: Target,
    request: ChaosRequest,
    *,
    timeout: float,
    progress: Callable[[str], None],
) -> ChaosResult:
    """The experiment's result once judged; Refused when the rollout moved on without it."""
    deadline = time.monotonic() + timeout
    said = ""
    while time.monotonic() < deadline:
        stored = target.stored()
        if stored is None:
            raise Refused("the Canary was deleted")
        status = stored.status
        result = next((r for r in status.chaos if r.name == request.name), None)
        if result is not None and result.phase is not ChaosPhase.RUNNING:
            return result
        if status.revision != request.revision or (
            result is None and status.phase in TERMINAL_PHASES
        ):
            raise Refused(f"the rollout ended or restarted before running it: {status.message}")
        line = (
            "waiting for the controller to pick up the request"
            if result is None
            else status.message
        )
        if line != said:
            progress(line)
            said = line
        time.sleep(POLL_SECONDS)
    raise Refused(f"no verdict within {timeout:g}s (is the controller running?)")


def run(
    target: Target, fields: dict[str, Any], *, timeout: float, progress: Callable[[str], None]
) -> ChaosResult:
    request = ask(target, fields)
    fault = chaos.fault_of(request).describe()
    progress(f"asked for {request.name}: {fault} for {request.duration}")
    try:
        return await_result(target, request, timeout=timeout, progress=progress)
    finally:
        # The result lives in the status; the request has done its job either way.
        target.annotate(None)
