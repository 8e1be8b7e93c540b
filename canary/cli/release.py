"""`canary release NAME --to SUBSET`: one command starts the next release.

It is one merge patch of `spec.canary` (subset, labels, targetRef) and, when the last rollout
Succeeded, of `spec.stable` too: the old canary serves now, so the spec should say so. (The
controller itself always starts from the subset the route serves, whatever `spec.stable` says:
engine/releases.py.) After a Failed rollout `spec.stable` stays, since it still serves.

Nothing is written while a rollout is in progress (a new canary would replace the one being
judged halfway), when the new spec would not validate, or when the Deployment it names does
not exist; each says why and exits 1.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from canary.cli import params
from canary.cli.connection import Connection, connected
from canary.cli.root import main

if TYPE_CHECKING:
    from canary.ports import StoredCanary


@main.command()
@click.argument("name")
@click.option("--to", "subset", required=True, help="The subset of the new version.")
@click.option(
    "--target",
    help="The Deployment that runs the new version (required when the current canary has a "
    "targetRef).",
)
@click.option(
    "--labels",
    callback=params.labels,
    help="The new subset's pod labels, k=v,k=v ('' for none); default: the current canary's "
    "labels with version set to the new subset, when they have a version label.",
)
@connected()
def release(
    *,
    connection: Connection,
    name: str,
    subset: str,
    target: str | None,
    labels: dict[str, str] | None,
) -> None:
    """Start the next release of NAME: the canary becomes SUBSET (and, when the last rollout
    Succeeded, the old canary becomes the stable).

    Prints the new revision and the command to follow it. Exits 0 when released or when it is
    already the canary, 1 when it cannot be released now (a rollout in progress, SUBSET is the
    stable one, the Deployment is missing, the new spec is invalid).
    """
    from canary.api.spec import SUBSET_PATTERN
    from canary.cli.connection import reported

    if not re.fullmatch(SUBSET_PATTERN, subset):
        raise click.BadParameter(
            f"{subset!r} is not a subset name (lower case letters, digits and '-')",
            param_hint="--to",
        )
    with reported(connection):
        _release(connection, name, subset, target, labels)


@dataclass(frozen=True, slots=True)
class Release:
    patch: dict[str, Any]
    promoted: bool
    stable: str
    canary: dict[str, Any]


def plan(
    body: dict[str, Any],
    stored: StoredCanary,
    subset: str,
    target: str | None,
    labels: dict[str, str] | None,
) -> Release | tuple[int, str]:
    """The patch that releases `subset`, or (exit code, why not)."""
    from pydantic import ValidationError

    from canary.api import problems
    from canary.api.resources import Canary
    from canary.api.status import Phase
    from canary.cli import describe
    from canary.cluster.client import merge_diff, merge_patch

    key, spec, status = stored.key, stored.spec, stored.status
    if spec is None:
        return 1, f"Canary {key} is invalid: {describe.problems(stored)}; fix its spec first"
    old = body["spec"]["canary"]
    old_labels = spec.canary.labels or {}
    if labels is None and subset == spec.canary.subset:
        labels = old_labels
    elif labels is None:
        labels = {**old_labels, "version": subset} if "version" in old_labels else {}
    old_target = spec.canary.target_ref.name if spec.canary.target_ref else None
    if target is None and old_target is not None:
        raise click.UsageError(f"give --target: the Deployment that runs {subset}")
    if (subset, labels, target) == (spec.canary.subset, old_labels, old_target):
        hint = (
            f" (it Failed: canary retry {key.name} starts it over)"
            if (status.phase is Phase.FAILED and status.canary_subset == subset)
            else ""
        )
        return 0, f"nothing to do: {subset} is already the canary of {key}{hint}"
    if status.phase in describe.IN_PROGRESS:
        return 1, (
            f"a rollout of {describe.subset(stored)} is in progress ({status.phase}, weight "
            f"{status.canary_weight}); wait for it (canary wait {key.name}) or abort it "
            f"(canary abort {key.name}) first"
        )
    # The last rollout promoted the canary the spec names: that one serves now.
    promoted = status.phase is Phase.SUCCEEDED and status.canary_subset == spec.canary.subset
    stable = spec.canary.subset if promoted else spec.stable.subset
    if subset in (stable, status.stable_subset):
        return 1, (
            f"--to {subset} is the stable subset of {key} (it serves now); a release moves "
            "traffic to another subset: give the new version a subset of its own"
        )
    canary: dict[str, Any] = {"subset": subset}
    if labels:
        canary["labels"] = labels
    if target is not None:
        canary["targetRef"] = {"kind": "Deployment", "name": target}
    patch: dict[str, Any] = {"spec": {"canary": merge_diff(old, canary)}}
    if promoted:
        patch["spec"]["stable"] = merge_diff(body["spec"]["stable"], old)
    bare = {field: value for field, value in body.items() if field != "status"}
    try:
        Canary.model_validate(merge_patch(bare, patch))
    except ValidationError as exc:
        lines = "; ".join(problems.lines(exc, Canary))
        return 1, f"releasing {subset} would make {key} invalid: {lines}"
    return Release(patch=patch, promoted=promoted, stable=stable, canary=canary)


def _release(
    connection: Connection,
    name: str,
    subset: str,
    target: str | None,
    labels: dict[str, str] | None,
) -> None:
    from canary.cli import describe
    from canary.cli.connection import fail
    from canary.cluster.client import stored_of

    client, key = connection.client, connection.key(name)
    body = client.get(key)
    if body is None:
        fail(f"Canary {key} not found ({client.where})", 1)
    stored = stored_of(body)
    planned = plan(body, stored, subset, target, labels)
    if isinstance(planned, tuple):
        code, message = planned
        if code:
            fail(message, code)
        click.echo(message)
        sys.exit(0)
    if target is not None and client.deployment(key.namespace, target) is None:
        fail(
            f"Deployment {key.namespace}/{target} not found: create it before releasing "
            f"{subset} (the rollout waits for it to be ready)",
            1,
        )
    written = stored_of(client.patch(key, planned.patch))
    revision = describe.expected_revision(client, written)
    runs = f"Deployment {target}" if target else "no targetRef"
    shown = ",".join(f"{k}={v}" for k, v in sorted(planned.canary.get("labels", {}).items()))
    click.echo(
        f"released {subset} on {key}: canary {subset} ({runs}"
        + (f", labels {shown})" if shown else ")")
        + f", stable {planned.stable}"
    )
    if planned.promoted:
        click.echo(f"  spec.stable is now {planned.stable}: the last rollout promoted it")
    if stored.spec is not None and stored.status.canary_subset not in (
        "",
        stored.spec.canary.subset,
    ):
        click.echo(
            f"  it replaces the release of {stored.spec.canary.subset}, which the controller had "
            "not started"
        )
    click.echo(f"  revision {revision}: the controller starts it at its next tick")
    click.echo(f"  next: {connection.command('wait', name)}")
