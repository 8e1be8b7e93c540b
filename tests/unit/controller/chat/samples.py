"""A Canary's spec and statuses as the chat tests need them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from canary.api.spec import CanarySpec
from canary.api.status import CanaryStatus
from canary.ports import CanaryKey

KEY = CanaryKey("shop", "accounts")
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
REVISION = "rev1"


def spec(**extra: Any) -> CanarySpec:
    return CanarySpec.model_validate(
        {
            "service": {"host": "accounts"},
            "stable": {"subset": "v1"},
            "canary": {"subset": "v2"},
            "analysis": {
                "interval": "10s",
                "threshold": 1,
                "stepWeights": [20, 60],
                "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}],
            },
            **extra,
        }
    )


def check(value: float | None, verdict: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "request-success-rate",
        "kind": "value" if value is not None else "no_data",
        "value": value,
        "threshold": ">= 99",
        "verdict": verdict,
        "passed": verdict == "pass",
        "counted": True,
        "revision": REVISION,
        "step": 1,
        "weight": 60,
        "at": T0 + timedelta(minutes=3),
        **extra,
    }


def approval(decision: str | None = None, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "gate": "promotion",
        "revision": REVISION,
        "step": 1,
        "requestedAt": T0 + timedelta(minutes=4),
        **extra,
    }
    if decision is not None:
        record.update(
            decision=decision, by="U0ALICE", via="slack", decidedAt=T0 + timedelta(minutes=6)
        )
    return record


def status(**fields: Any) -> CanaryStatus:
    base: dict[str, Any] = {
        "phase": "Progressing",
        "revision": REVISION,
        "canaryWeight": 20,
        "step": 0,
        "conditions": [
            {
                "type": "Promoted",
                "status": "Unknown",
                "reason": "Progressing",
                "lastTransitionTime": T0,
            }
        ],
    }
    base.update(fields)
    return CanaryStatus.model_validate(base)
