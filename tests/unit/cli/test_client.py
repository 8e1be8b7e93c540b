"""The client both backends share: merge patches, and the API server's refusals in words."""

from __future__ import annotations

from typing import Any

import pytest

from canary.adapters.kube.rest import ApiError
from canary.cluster.client import (
    Forbidden,
    KubeClient,
    LocalClient,
    NotFound,
    merge_diff,
    merge_patch,
)
from canary.localmesh.store import LocalStore
from canary.ports import CanaryKey
from tests.unit.cli.conftest import KEY, NS


def test_merge_patch_is_rfc_7386() -> None:
    target = {"a": {"b": 1, "c": 2}, "d": [1, 2], "e": 1}
    assert merge_patch(target, {"a": {"b": None, "x": 3}, "d": [3], "e": None}) == {
        "a": {"c": 2, "x": 3},
        "d": [3],
    }
    assert target == {"a": {"b": 1, "c": 2}, "d": [1, 2], "e": 1}, "the target is left alone"


def test_merge_diff_turns_old_into_new_and_drops_what_new_lacks() -> None:
    old = {"subset": "v2", "labels": {"app": "a", "version": "v2", "track": "x"}, "targetRef": {
        "kind": "Deployment", "name": "a-v2"}}  # fmt: skip
    new = {"subset": "v3", "labels": {"app": "a", "version": "v3"}}
    patch = merge_diff(old, new)
    assert patch == {
        "subset": "v3",
        "labels": {"app": "a", "version": "v3", "track": None},
        "targetRef": None,
    }
    assert merge_patch(old, patch) == new


class RefusingRest:
    """The API server's answer to a user without the rights."""

    def __init__(self, verb: str) -> None:
        self.message = (
            f'canaries.canary.dev "accounts" is forbidden: User "alice" cannot {verb} resource '
            f'"canaries" in API group "canary.dev" in the namespace "{NS}"'
        )

    def get(self, path: str, **query: Any) -> dict[str, Any]:
        raise ApiError(403, "Forbidden", self.message)

    def patch(self, path: str, body: Any, *, content_type: str) -> dict[str, Any]:
        raise ApiError(403, "Forbidden", self.message)


def test_a_403_says_who_may_not_do_what_and_which_role_to_ask_for() -> None:
    client = KubeClient(RefusingRest("patch"))  # type: ignore[arg-type]
    with pytest.raises(Forbidden) as refused:
        client.patch(KEY, {"spec": {"suspend": True}})
    assert str(refused.value) == (
        "forbidden: alice may not patch canaries in shop (ask for the canary-operator role)"
    )
    reader = KubeClient(RefusingRest("get"))  # type: ignore[arg-type]
    with pytest.raises(Forbidden) as unread:
        reader.stored(KEY)
    assert str(unread.value) == (
        "forbidden: alice may not get canaries in shop (ask for the canary-viewer role)"
    )


def test_a_local_patch_of_a_missing_canary_is_not_found(tmp_path: Any) -> None:
    client = LocalClient(LocalStore(tmp_path))
    with pytest.raises(NotFound):
        client.patch(CanaryKey(NS, "nope"), {"spec": {"suspend": True}})
    assert client.deployment(NS, "nope") is None
    assert client.get(CanaryKey(NS, "nope")) is None
