"""Istio's own Bookinfo samples, read unchanged from the istio.io/istio module's
samples/bookinfo/networking/ (located by `tests/istiod/samples`).

A Canary for `reviews` (stable v1, canary v2, in tests/data/bookinfo/) must fit the samples as
they are, and each way of breaking the pair must give one precise finding. The broken variants
are the samples loaded, changed in one field, and written to a temporary folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from canary.cli import main
from canary.validation import report
from tests.unit.validation.documents import DATA, bookinfo, load_all, write

CANARY = DATA / "bookinfo" / "canary-reviews.yaml"
RULES = "destination-rule-all.yaml"
SPLIT = "virtual-service-reviews-90-10.yaml"
SUBJECT = "Canary default/reviews"

Documents = dict[str, list[dict[str, Any]]]


def _named(documents: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(d for d in documents if d["metadata"]["name"] == name)


def _check(tmp_path: Path, change: Callable[[Documents], None]) -> list[str]:
    """The findings once `change` has edited the Canary, the rules and the split."""
    documents: Documents = {
        "canary.yaml": load_all(CANARY),
        RULES: load_all(bookinfo(RULES)),
        SPLIT: load_all(bookinfo(SPLIT)),
    }
    change(documents)
    for name, content in documents.items():
        write(tmp_path / name, *content)
    lines = list(report.validate_paths([tmp_path]).lines())
    prefix = f"{tmp_path / 'canary.yaml'}:1: "
    assert all(line.startswith(prefix) for line in lines), lines
    return [line.removeprefix(prefix) for line in lines]


def test_the_reviews_canary_fits_the_samples_as_they_are() -> None:
    """destination-rule-all.yaml holds rules for four hosts; `reviews` is found by name."""
    paths = [str(CANARY), str(bookinfo(RULES)), str(bookinfo(SPLIT))]
    result = CliRunner().invoke(main, ["validate", *paths])
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == (
        "6 documents checked: 1 Canary, 1 VirtualService, 4 DestinationRules; 0 problems"
    )


def _drop_subset_v2(documents: Documents) -> None:
    rule = _named(documents[RULES], "reviews")
    rule["spec"]["subsets"] = [s for s in rule["spec"]["subsets"] if s["name"] != "v2"]


def _host_ratings(documents: Documents) -> None:
    _named(documents[RULES], "reviews")["spec"]["host"] = "ratings"


def _destinations_prod(documents: Documents) -> None:
    for entry in documents[SPLIT][0]["spec"]["http"][0]["route"]:
        entry["destination"]["host"] = "reviews.prod"


def _route_primary(documents: Documents) -> None:
    documents["canary.yaml"][0]["spec"]["service"]["route"] = "primary"


def _weights_0(documents: Documents) -> None:
    for entry in documents[SPLIT][0]["spec"]["http"][0]["route"]:
        entry["weight"] = 0


def _third_subset(documents: Documents) -> None:
    documents[SPLIT][0]["spec"]["http"][0]["route"][1]["destination"]["subset"] = "v3"


def _labels_v9(documents: Documents) -> None:
    documents["canary.yaml"][0]["spec"]["canary"]["labels"] = {"version": "v9"}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            _drop_subset_v2,
            f"{SUBJECT} spec.canary.subset: IST0101 DestinationRule default/reviews has no "
            "subset v2 (subsets: v1, v3); http[0] sends to it",
            id="subset-v2-missing-from-the-rule",
        ),
        pytest.param(
            _host_ratings,
            f"{SUBJECT} spec.service.host: no DestinationRule applies to "
            "reviews.default.svc.cluster.local for callers in default (looked in default, "
            "istio-system); DestinationRule default/reviews is for ratings",
            id="rule-host-ratings",
        ),
        pytest.param(
            _destinations_prod,
            f"{SUBJECT} spec.service.route: VirtualService default/reviews has no http route "
            "whose destinations all point at reviews (routes: http[0]); name the route to manage",
            id="route-to-another-host",
        ),
        pytest.param(
            _route_primary,
            f"{SUBJECT} spec.service.route: VirtualService default/reviews has no http route "
            'named "primary" (routes: http[0])',
            id="route-name-that-does-not-exist",
        ),
        pytest.param(
            _weights_0,
            f"{SUBJECT} spec.service.route: VirtualService default/reviews spec.http[0]: the "
            "weights total 0, which Istio refuses (weights are relative: any total but 0)",
            id="weights-total-0",
        ),
        pytest.param(
            _third_subset,
            f"{SUBJECT} spec.service.route: VirtualService default/reviews spec.http[0]: "
            "spec.http[0].route[1] sends to reviews/v3, which is neither the stable (v1) nor "
            "the canary (v2) subset",
            id="route-to-a-third-subset",
        ),
        pytest.param(
            _labels_v9,
            f"{SUBJECT} spec.canary.labels.version: is v9, but DestinationRule default/reviews "
            "subset v2 selects version=v2",
            id="canary-labels-disagree-with-the-subset",
        ),
    ],
)
def test_each_way_of_breaking_the_pair_gives_one_precise_finding(
    tmp_path: Path, change: Callable[[Documents], None], expected: str
) -> None:
    assert _check(tmp_path, change) == [expected]


def test_the_default_route_of_the_jason_sample_is_its_header_route(tmp_path: Path) -> None:
    """virtual-service-reviews-jason-v2-v3.yaml: the first route that sends only to reviews is
    the `end-user: jason` match (to v2), so that is the default, and it is reported: only
    jason's requests would move. For stable v1 it also lacks the stable subset."""
    paths = [CANARY, bookinfo(RULES), bookinfo("virtual-service-reviews-jason-v2-v3.yaml")]
    prefix = f"{CANARY}:1: "
    lines = [line.removeprefix(prefix) for line in report.validate_paths(paths).lines()]
    assert lines == [
        f"{SUBJECT} spec.service.route: VirtualService default/reviews spec.http[0] is the first "
        "route that sends only to reviews, but it has a match, so only matching requests would "
        "move; name the route to manage",
        f"{SUBJECT} spec.stable.subset: VirtualService default/reviews spec.http[0] has no "
        "destination for the stable subset v1 (it sends to: reviews/v2)",
    ]


def test_a_canary_from_v2_to_v3_on_the_jason_sample_is_told_only_about_the_match(
    tmp_path: Path,
) -> None:
    """Stable v2, canary v3: the header route sends to v2, so the match is the one problem."""
    canary = load_all(CANARY)[0]
    canary["spec"]["stable"] = {"subset": "v2", "labels": {"version": "v2"}}
    canary["spec"]["canary"] = {"subset": "v3", "labels": {"version": "v3"}}
    file = write(tmp_path / "canary.yaml", canary)
    paths = [file, bookinfo(RULES), bookinfo("virtual-service-reviews-jason-v2-v3.yaml")]
    lines = list(report.validate_paths(paths).lines())
    assert len(lines) == 1
    assert (
        "spec.http[0] is the first route that sends only to reviews, but it has a match"
        in (lines[0])
    )


def test_the_samples_own_destination_rules_for_other_hosts_raise_nothing(tmp_path: Path) -> None:
    """Rules for productpage, ratings and details sit beside reviews' and are not its concern."""
    assert len(load_all(bookinfo(RULES))) == 4
    assert _check(tmp_path, lambda documents: None) == []
