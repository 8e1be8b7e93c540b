"""Reading a Canary's status from the API: an unreadable one says why, never passes as empty."""

from __future__ import annotations

from typing import Any

import pytest

from canary.adapters.kube.store import parse_canary, read_status
from canary.api.status import Phase
from canary.ports import CanaryKey


def _body(status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": "accounts", "namespace": "shop", "uid": "u", "generation": 1},
        "spec": {
            "service": {"host": "accounts"},
            "stable": {"subset": "v1"},
            "canary": {"subset": "v2"},
        },
        "status": status,
    }


def test_a_readable_status_is_read() -> None:
    status, error = read_status(_body({"phase": "Progressing", "canaryWeight": 20}))
    assert (status.phase, status.canary_weight, error) == (Phase.PROGRESSING, 20, "")


def test_no_status_yet_is_an_empty_one_and_no_error() -> None:
    body = _body(None)
    del body["status"]
    assert read_status(body)[1] == ""


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        ({"phase": "Sideways"}, "status.phase: "),
        ({"canaryWeight": 250}, "status.canaryWeight: "),
        ({"canaryWeight": 20, "step": "two"}, "status.step: "),
        ("Progressing", "status is str, not an object"),
    ],
)
def test_an_unreadable_status_says_why(raw: Any, said: str) -> None:
    status, error = read_status(_body(raw))
    assert said in error
    assert status.phase is None
    stored = parse_canary(CanaryKey("shop", "accounts"), _body(raw))
    assert stored.status_error == error
