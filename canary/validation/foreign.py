"""Flagger's and Argo Rollouts' objects: not checked, and one line on what to translate them to.

People come to canary with a repository of Flagger or Argo Rollouts manifests. Such an object
is valid for its own controller, but canary cannot judge it, and counting it as checked would
read unknown data as success. So it is a finding (an error: exit 1), one line naming our kind
and the fields that map, so that `canary validate` over a migrating repository lists what is
left to translate. Only the progressive-delivery kinds of those groups are named here: Argo
CD's and Argo Workflows' objects share `argoproj.io` and are left alone as other kinds are.
"""

from __future__ import annotations

OURS = "canary.dev/v1alpha1"

_FLAGGER = "flagger.app"
_ARGO = "argoproj.io"

# (group, kind) -> (whose, our kind, what maps to what)
_HINTS: dict[tuple[str, str], tuple[str, str, str]] = {
    (_FLAGGER, "Canary"): (
        "Flagger's",
        "Canary",
        "targetRef -> spec.canary.targetRef and subsets (spec.stable/spec.canary), "
        "service.name -> spec.service.host, analysis.stepWeight/maxWeight/interval/threshold "
        "-> spec.analysis.*, analysis.metrics[].thresholdRange -> spec.analysis.metrics[]"
        ".thresholdRange, analysis.webhooks -> spec.analysis.webhooks",
    ),
    (_FLAGGER, "MetricTemplate"): (
        "Flagger's",
        "MetricTemplate",
        "provider.address -> spec.provider.prometheus.address, query -> spec.query with "
        "{{ variables.x }} -> {{ x }} (set in the Canary metric's templateVariables) and "
        "{{ target }} -> {{ service }}",
    ),
    (_FLAGGER, "AlertProvider"): (
        "Flagger's",
        "ChatProvider",
        "type slack with an address -> spec.slackWebhook (msteams, discord... -> "
        "spec.webhook), referenced from the Canary's spec.notifications",
    ),
    (_ARGO, "Rollout"): (
        "Argo Rollouts'",
        "Canary",
        "strategy.canary.steps[].setWeight -> spec.analysis.stepWeights, "
        "trafficRouting.istio.virtualService(s) -> spec.service.virtualService and route, "
        "destinationRule.canarySubsetName/stableSubsetName -> spec.canary/spec.stable.subset, "
        "the Rollout's pod template -> a Deployment per subset",
    ),
    (_ARGO, "AnalysisTemplate"): (
        "Argo Rollouts'",
        "MetricTemplate",
        "metrics[].provider.prometheus.query -> spec.query with {{args.x}} -> {{ x }} (set in "
        "the Canary metric's templateVariables), successCondition -> the Canary metric's "
        "thresholdRange",
    ),
    (_ARGO, "ClusterAnalysisTemplate"): (
        "Argo Rollouts'",
        "MetricTemplate",
        "one per namespace that uses it (templateRef.namespace may name another); "
        "metrics[].provider.prometheus.query -> spec.query with {{args.x}} -> {{ x }}, "
        "successCondition -> the Canary metric's thresholdRange",
    ),
    (_ARGO, "AnalysisRun"): (
        "Argo Rollouts'",
        "Canary",
        "a run is state, not configuration: canary keeps each check's results in the "
        "Canary's status; translate the Rollout and its AnalysisTemplates instead",
    ),
}


def hint(api_version: str, kind: str) -> str | None:
    """The one-line hint for a Flagger or Argo Rollouts object, or None for any other."""
    group = api_version.rpartition("/")[0]
    found = _HINTS.get((group, kind))
    if found is None:
        return None
    whose, ours, mapping = found
    return f"{api_version} {kind} is {whose}, not checked; translate it to {OURS} {ours}: {mapping}"
