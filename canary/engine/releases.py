"""Which subset a rollout starts from: the one the route serves now, never what the spec recalls.

After a promotion the canary becomes the stable subset, so the next release is one change: a
new `canary` (a commit, or `canary release`). `spec.stable` then still names the version before
it, which may have no pods left; sending it traffic again would be an outage. So the stable side
of every rollout is read from the live route when the rollout starts:

- one subset other than the canary serves: that one;
- several do (a rollout replaced mid-way, a hand-made split): the last rollout's stable subset
  if it is among them, else spec.stable's if it is; otherwise nobody can say which is stable,
  and the Canary is Invalid with what to change, before anything is patched;
- none but the canary does: the canary already holds everything (nothing to roll out), and the
  stable side is whatever the status or the spec last knew.

The stable subset's Deployment (for scaleDownAfter) follows it: the status's, when the status's
stable subset is the one chosen (the last promoted canary's targetRef), or spec.stable's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from canary.api.spec import CanarySpec
from canary.api.status import CanaryStatus


@dataclass(frozen=True, slots=True)
class StableSide:
    subset: str
    # The Deployment serving it, "" when unknown.
    target: str
    # Said in the rollout's first message when spec.stable names another subset.
    note: str = ""


class Ambiguous(ValueError):
    """The route splits traffic between subsets and nothing says which one is stable."""


def stable_side(
    spec: CanarySpec, status: CanaryStatus, weights: Mapping[str, int] | None
) -> StableSide:
    canary = spec.canary.subset
    serving = sorted(
        (subset for subset, weight in (weights or {}).items() if weight > 0 and subset != canary),
        key=lambda subset: -(weights or {})[subset],
    )
    known = status.stable_subset if status.stable_subset != canary else ""
    if len(serving) == 1:
        chosen = serving[0]
    elif len(serving) > 1:
        if known in serving:
            chosen = known
        elif spec.stable.subset in serving:
            chosen = spec.stable.subset
        else:
            split = ", ".join(f"{subset} ({(weights or {})[subset]}%)" for subset in serving)
            raise Ambiguous(
                f"spec.stable.subset: the route sends traffic to {split} and neither is "
                f"spec.stable ({spec.stable.subset}) nor the last rollout's stable subset; set "
                "spec.stable.subset to the one that is stable, or send it 100% before releasing "
                f"{canary}"
            )
    else:
        chosen = known or spec.stable.subset
    return StableSide(chosen, _target(spec, status, chosen), _note(spec, chosen, weights))


def _target(spec: CanarySpec, status: CanaryStatus, subset: str) -> str:
    if subset == status.stable_subset and status.stable_target:
        return status.stable_target
    if subset == spec.stable.subset and spec.stable.target_ref is not None:
        return spec.stable.target_ref.name
    return ""


def _note(spec: CanarySpec, chosen: str, weights: Mapping[str, int] | None) -> str:
    if chosen == spec.stable.subset:
        return ""
    share = (weights or {}).get(chosen)
    serving = f", which serves {share}% now" if share else ""
    return (
        f" (stable is {chosen}{serving}; spec.stable names {spec.stable.subset}, which gets "
        "no traffic back)"
    )
