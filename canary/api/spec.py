"""`Canary.spec`: which route to manage, which subsets to move between, and how to judge steps.

The cross-field rules (weights strictly increasing, a check interval no longer than a step,
distinct subsets) live here so that every way in, `canary validate`, the controller's watch and
the demo, rejects the same specs with the same messages.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, WithJsonSchema, field_validator, model_validator

from canary.api import durations
from canary.api.base import CallTimeout, Deadline, Duration, Model, Retention
from canary.api.chaos import Experiment
from canary.api.metrics import MetricCheck
from canary.api.people import Approvals, Links, Notification
from canary.api.secrets import SecretHeader

SUBSET_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# A Kubernetes namespace name (RFC 1123 label).
NAMESPACE_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
# Failed checks before a rollback: a check a second through a day-long step is 86400 checks, and
# even a lenient rollout that tolerates flaky checks means to roll back at some point.
MAX_THRESHOLD = 10_000


def _step_weight(weight: int) -> int:
    # Here rather than as ge/le, whose message ("greater than or equal to 1") hides why.
    if weight == 0:
        raise ValueError(
            "0 is outside 1..100: a step at weight 0 gives the canary no traffic to judge"
        )
    if not 1 <= weight <= 100:
        raise ValueError(f"{weight} is outside 1..100")
    return weight


# The CRD says the bounds; the validator says them in the line `canary validate` prints.
StepWeight = Annotated[
    int,
    AfterValidator(_step_weight),
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 100}),
]


class ServiceRef(Model):
    host: str = Field(
        min_length=1,
        description="The service host the VirtualService routes, as written in its hosts and "
        "destinations (e.g. reviews or reviews.prod.svc.cluster.local).",
    )
    virtual_service: str | None = Field(
        default=None, description="The VirtualService's name; default: the host."
    )
    virtual_service_namespace: str | None = Field(
        default=None,
        pattern=NAMESPACE_PATTERN,
        description="The VirtualService's namespace, when it lives elsewhere (an ingress route "
        "in the gateway's namespace); default: the Canary's. The controller needs RBAC there.",
    )
    destination_rule: str | None = Field(
        default=None, description="The DestinationRule's name; default: the host."
    )
    destination_rule_namespace: str | None = Field(
        default=None,
        pattern=NAMESPACE_PATTERN,
        description="The DestinationRule's namespace, when it lives elsewhere (the mesh's root "
        "namespace, or the service's own); default: the Canary's.",
    )
    route: str | None = Field(
        default=None,
        description="The name of the http route to manage; default: the first route whose "
        "destinations all point at the host.",
    )
    port: int | None = Field(
        default=None, ge=1, le=65535, description="The service port, when the host has several."
    )

    @property
    def virtual_service_name(self) -> str:
        return self.virtual_service or self.host

    @property
    def destination_rule_name(self) -> str:
        return self.destination_rule or self.host

    def virtual_service_key(self, namespace: str) -> tuple[str, str]:
        """(namespace, name) of the VirtualService, for a Canary in `namespace`."""
        return (self.virtual_service_namespace or namespace, self.virtual_service_name)

    def destination_rule_key(self, namespace: str) -> tuple[str, str]:
        """(namespace, name) of the DestinationRule, for a Canary in `namespace`."""
        return (self.destination_rule_namespace or namespace, self.destination_rule_name)


class TargetRef(Model):
    kind: Literal["Deployment"] = Field(default="Deployment", description="Deployment")
    name: str = Field(min_length=1, description="The Deployment's name.")
    api_version: Literal["apps/v1"] = Field(default="apps/v1", description="apps/v1")


class Variant(Model):
    subset: str = Field(
        pattern=SUBSET_PATTERN, description="The DestinationRule subset of this version."
    )
    labels: dict[str, str] | None = Field(
        default=None,
        description="The pod labels of the subset (one at least: no labels select every pod); "
        "when set, the DestinationRule must have (or is given) this subset with these labels. "
        "Stable's and canary's must differ so that neither subset selects the other's pods.",
    )
    target_ref: TargetRef | None = Field(
        default=None,
        description="The Deployment running this version. The canary's gates the first step "
        "on its readiness, and a new pod template in it starts the rollout over; the stable's "
        "is what scaleDownAfter scales to zero once a promotion retires it.",
    )

    @field_validator("labels")
    @classmethod
    def _some_labels(cls, labels: dict[str, str] | None) -> dict[str, str] | None:
        if labels is not None and not labels:
            raise ValueError(
                "no labels select every pod of the host; give the labels of this version's "
                "pods (e.g. a version label), or leave labels out to use the DestinationRule's"
            )
        return labels

    @property
    def version(self) -> str:
        """The value of the `version` label, which Istio reports as `destination_version`."""
        return (self.labels or {}).get("version", self.subset)


# The canary side has nothing of its own any more; the name stays for what reads it.
CanaryVariant = Variant


class WebhookType(StrEnum):
    """Flagger's eight webhook types, with Flagger's meaning (docs: webhooks)."""

    CONFIRM_ROLLOUT = "confirm-rollout"
    PRE_ROLLOUT = "pre-rollout"
    ROLLOUT = "rollout"
    CONFIRM_TRAFFIC_INCREASE = "confirm-traffic-increase"
    CONFIRM_PROMOTION = "confirm-promotion"
    POST_ROLLOUT = "post-rollout"
    ROLLBACK = "rollback"
    EVENT = "event"


class Webhook(Model):
    """A URL called at a point of the rollout; its answer can gate the rollout.

    The call is a JSON POST of Flagger's payload (name, namespace, phase, checksum, metadata),
    so Flagger's load tester and gate services answer it unchanged; any 2xx is yes.
    """

    name: str = Field(min_length=1, description="A name unique among the webhooks.")
    type: WebhookType = Field(
        default=WebhookType.ROLLOUT,
        description="confirm-rollout: the rollout waits for a yes before it starts (no "
        "traffic moves, nothing is counted). pre-rollout: must pass before the first step; "
        "a no counts as a failed check. rollout: judged at every check like a metric. "
        "confirm-traffic-increase: each step waits for a yes before its weight goes up. "
        "confirm-promotion: promotion waits for a yes while the last step's checks keep "
        "running. post-rollout: called once when the rollout ends. rollback: asked at every "
        "check; a yes rolls back at once. event: told of every event of the rollout.",
    )
    url: str = Field(pattern=r"^https?://[^\s/]+(/.*)?$", description="The URL to POST to.")
    timeout: CallTimeout = Field(
        default="10s", description="How long each attempt of a call may take (100ms..10m)."
    )
    retries: int = Field(
        default=0,
        ge=0,
        le=10,
        description="How many times (0..10) a call that got no answer, or a 429 or 5xx, is "
        "tried again within the same check (with a short backoff).",
    )
    headers: list[SecretHeader] = Field(
        default_factory=list,
        description="Headers sent with every call, each value from a Secret in the Canary's "
        "namespace (a gate service's token): never written in the Canary itself.",
    )
    metadata: dict[str, str] = Field(
        default_factory=dict, description="Sent with the call, for the receiver's use."
    )

    @property
    def timeout_seconds(self) -> float:
        return durations.seconds(self.timeout)


class Analysis(Model):
    interval: Duration = Field(default="1m", description="How long each step holds (1s..24h).")
    check_interval: Duration | None = Field(
        default=None,
        description="How often the checks run (1s..24h, at most interval); default: interval. "
        "Shorter catches a bad step in seconds while a good step still holds for its whole "
        "interval.",
    )
    threshold: int = Field(
        default=5,
        ge=1,
        le=MAX_THRESHOLD,
        description=f"Failed checks before the rollout is rolled back (1..{MAX_THRESHOLD}).",
    )
    step_weight: int | None = Field(
        default=None, ge=1, le=100, description="The canary weight added at each step (1..100)."
    )
    max_weight: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="The highest weight with stepWeight (1..100): steps go stepWeight, "
        "2 x stepWeight, ... while they do not exceed it.",
    )
    step_weights: list[StepWeight] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="The canary weight of each step, strictly increasing, each within 1..100 (a "
        "step of 0 would send the canary nothing to judge).",
    )
    metrics: list[MetricCheck] = Field(default_factory=list, description="The checks of a step.")
    advance_early: bool = Field(
        default=False,
        description="Advance to the next step before interval has passed once every enforced "
        "check that compares with stable has shown equivalence within its minEffect (and the "
        "other checks pass). Off by default: a step then holds its whole interval.",
    )
    webhooks: list[Webhook] = Field(default_factory=list, description="Gates and hooks.")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.step_weights is not None:
            if self.step_weight is not None or self.max_weight is not None:
                raise ValueError("set either stepWeights or stepWeight with maxWeight, not both")
            for index in range(1, len(self.step_weights)):
                if self.step_weights[index] <= self.step_weights[index - 1]:
                    raise ValueError(
                        f"stepWeights[{index}]: {self.step_weights[index]} does not increase on "
                        f"{self.step_weights[index - 1]}; weights must be strictly increasing"
                    )
        elif self.step_weight is None:
            raise ValueError("set stepWeights, or stepWeight with maxWeight")
        elif self.max_weight is None:
            raise ValueError("maxWeight: required with stepWeight (the last step's weight, <= 100)")
        elif self.max_weight < self.step_weight:
            raise ValueError(
                f"maxWeight ({self.max_weight}) is below stepWeight ({self.step_weight})"
            )
        if self.check_interval is not None and durations.seconds(
            self.check_interval
        ) > durations.seconds(self.interval):
            raise ValueError(
                f"checkInterval ({self.check_interval}) is longer than interval "
                f"({self.interval}); a step would end before it was checked"
            )
        if self.advance_early and not any(metric.compare for metric in self.metrics):
            raise ValueError(
                "advanceEarly: no metric compares with stable, so nothing could show a step "
                "good early; set compare on a metric or drop advanceEarly"
            )
        for kind, names in (
            ("metrics", [metric.name for metric in self.metrics]),
            ("webhooks", [hook.name for hook in self.webhooks]),
        ):
            duplicates = sorted({name for name in names if names.count(name) > 1})
            if duplicates:
                raise ValueError(f"{kind}: duplicate name(s) {', '.join(duplicates)}")
        return self

    @property
    def weights(self) -> tuple[int, ...]:
        """The canary weight of every step, in order; promotion to 100 follows the last."""
        if self.step_weights is not None:
            return tuple(self.step_weights)
        assert self.step_weight is not None
        assert self.max_weight is not None
        return tuple(range(self.step_weight, self.max_weight + 1, self.step_weight))

    @property
    def interval_seconds(self) -> float:
        return durations.seconds(self.interval)

    @property
    def check_interval_seconds(self) -> float:
        return durations.seconds(self.check_interval or self.interval)


class CanarySpec(Model):
    service: ServiceRef = Field(description="The service whose traffic is shifted.")
    stable: Variant = Field(
        description="The version serving before the first release. Each rollout starts from "
        "the subset the route serves now (after a promotion, the last canary), whatever this "
        "says, so the next release changes only `canary`; traffic never moves back to a "
        "subset the route no longer serves."
    )
    canary: CanaryVariant = Field(description="The version traffic moves to.")
    analysis: Analysis = Field(description="The steps and the checks that judge them.")
    skip_analysis: bool = Field(
        default=False, description="Promote without steps or checks once the target is ready."
    )
    suspend: bool = Field(
        default=False, description="Freeze the rollout where it is: no weight change, no check."
    )
    on_drift: Literal["reassert", "pause"] = Field(
        default="reassert",
        description="When someone else changes the managed route's weights during a step: "
        "reassert writes the step's weights back, pause stops writing (and judging) until the "
        "route sends the step's weights again. Either way an Event names the other writer and "
        "the step's clock starts over.",
    )
    chaos: list[Experiment] = Field(
        default_factory=list,
        description="Fault experiments on the canary: each runs at one step, before it "
        "advances, and proves that the callers' outlier detection and circuit breakers hold.",
    )
    scale_down_after: Retention | None = Field(
        default=None,
        description="Once a promotion has held this long (1s..168h), scale the Deployment of "
        "the subset it retired to zero replicas (the previous canary's targetRef, or "
        "stable.targetRef on the first release). Unset: nothing is scaled.",
    )
    on_delete: Literal["revert", "keep"] = Field(
        default="revert",
        description="When the Canary is deleted: revert sends 100% back to the stable subset "
        "that serves (status.stableSubset) unless the rollout had succeeded, keep leaves the "
        "route's weights as they are. Either way every fault of its experiments is cleared "
        "before the Canary goes. revert is the default because a partial split that nobody "
        "judges any more is the unsafe choice.",
    )
    notifications: list[Notification] = Field(
        default_factory=list,
        max_length=20,
        description="Who hears of the rollout where they talk: each names a ChatProvider, a "
        "channel and the events it wants.",
    )
    approvals: Approvals | None = Field(
        default=None,
        description="Gates that hold the rollout until a person approves (in chat, or with "
        "`canary approve`); a reject rolls back. Checks keep running while a gate waits.",
    )
    links: Links = Field(
        default_factory=Links,
        description="Dashboards a person deciding may want (Grafana, Jaeger, Kiali): shown in "
        "chat messages.",
    )
    progress_deadline: Deadline = Field(
        default="10m",
        description="How long any phase may wait beyond its own work (a target not ready, "
        "weights not applied, no data) before the rollout is rolled back (1s..72h).",
    )

    @model_validator(mode="after")
    def _distinct_subsets(self) -> Self:
        if self.stable.subset == self.canary.subset:
            raise ValueError(
                f"canary.subset: {self.canary.subset!r} is also the stable subset; "
                "traffic must move between two different subsets"
            )
        self._check_labels()
        self._check_chaos()
        return self

    def _check_labels(self) -> None:
        # Checked here, not only against the DestinationRule: a Canary whose labels make the
        # controller write the subsets would otherwise split traffic between two names for the
        # same pods, and the analysis would judge stable as the canary.
        stable, canary = self.stable.labels, self.canary.labels
        if stable is None or canary is None:
            return
        shown = ", ".join(f"{name}={value}" for name, value in sorted(canary.items()))
        if stable == canary:
            raise ValueError(
                f"canary.labels: {shown} are also the stable labels, so both subsets select the "
                "same pods; give the canary's pods a label of their own (e.g. version)"
            )
        if stable.items() <= canary.items():
            raise ValueError(
                f"stable.labels: every canary pod ({shown}) carries them too, so the stable "
                "subset would send traffic to canary pods; add a label that tells them apart"
            )
        if canary.items() <= stable.items():
            raise ValueError(
                f"canary.labels: every stable pod carries them too ({shown}), so the canary "
                "subset would send traffic to stable pods; add a label that tells them apart"
            )

    def _check_chaos(self) -> None:
        weights = self.analysis.weights
        interval = self.analysis.interval_seconds
        names = [experiment.name for experiment in self.chaos]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"chaos: duplicate name(s) {', '.join(duplicates)}")
        for index, experiment in enumerate(self.chaos):
            where = f"chaos[{index}]"
            subset = experiment.subset
            if subset is not None and subset != self.canary.subset:
                whose = "the stable subset" if subset == self.stable.subset else "not the canary"
                raise ValueError(
                    f"{where}.subset: {subset!r} is {whose}; an experiment only targets the "
                    f"canary subset ({self.canary.subset!r})"
                )
            if experiment.at_weight not in weights:
                raise ValueError(
                    f"{where}.atWeight: {experiment.at_weight} is not a step weight; the steps "
                    f"are {', '.join(map(str, weights))}"
                )
            if experiment.duration_seconds > interval:
                raise ValueError(
                    f"{where}.duration: {experiment.duration} is longer than a step "
                    f"(analysis.interval {self.analysis.interval}); a fault must not hold the "
                    "canary at risk longer than a step"
                )

    @property
    def progress_deadline_seconds(self) -> float:
        return durations.seconds(self.progress_deadline)

    @property
    def scale_down_after_seconds(self) -> float | None:
        return None if self.scale_down_after is None else durations.seconds(self.scale_down_after)
