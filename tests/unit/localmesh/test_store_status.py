"""The state directory's Canary status: an unreadable one is reported and kept, not reset."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from canary.api.status import Condition
from canary.localmesh.store import LocalStore
from canary.ports import CanaryKey

KEY = CanaryKey("shop", "accounts")


def _store(tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path)
    store.put(
        {
            "apiVersion": "canary.dev/v1alpha1",
            "kind": "Canary",
            "metadata": {"name": "accounts", "namespace": "shop"},
            "spec": {
                "service": {"host": "accounts"},
                "stable": {"subset": "v1"},
                "canary": {"subset": "v2"},
            },
        }
    )
    return store


def _status_file(tmp_path: Path) -> Path:
    path = tmp_path / "status" / "shop" / "accounts.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_a_hand_edited_status_is_reported_not_reset(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _status_file(tmp_path).write_text(json.dumps({"phase": "Sideways", "canaryWeight": 20}))
    stored = store.canary(KEY)
    assert stored is not None
    assert stored.status_error.startswith("status.phase: ")
    assert stored.status.phase is None


def test_a_status_that_is_not_json_is_reported(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _status_file(tmp_path).write_text("{phase: Progressing")
    stored = store.canary(KEY)
    assert stored is not None
    assert "is not JSON" in stored.status_error


def test_marking_it_keeps_the_rest_for_whoever_fixes_it(tmp_path: Path) -> None:
    store = _store(tmp_path)
    path = _status_file(tmp_path)
    path.write_text(json.dumps({"phase": "Sideways", "canaryWeight": 20}))
    condition = Condition(
        type="StatusUnreadable",
        status="True",
        reason="StatusUnreadable",
        message="m",
        last_transition_time=datetime(2026, 1, 1, tzinfo=UTC),
    )
    store.write_conditions(KEY, (condition,))
    kept = json.loads(path.read_text())
    assert kept["phase"] == "Sideways"
    assert kept["canaryWeight"] == 20
    assert [c["type"] for c in kept["conditions"]] == ["StatusUnreadable"]
    stored = store.canary(KEY)
    assert stored is not None
    assert stored.status_error
