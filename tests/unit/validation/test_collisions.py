"""`canary.validation.collisions`: the same object twice, or two Canaries on one route."""

from __future__ import annotations

from pathlib import Path

from canary.validation import report
from tests.unit.validation.documents import canary, virtual_service, write


def test_two_canaries_on_one_route_are_each_reported_naming_the_other(tmp_path: Path) -> None:
    first = canary()
    second = canary()
    second["metadata"]["name"] = "web-2"
    file = write(tmp_path / "both.yaml", first, second, virtual_service())
    lines = list(report.validate_paths([file]).lines())
    assert lines == [
        f"{file}:1: Canary shop/web spec.service.route: VirtualService shop/web route http[0] is "
        f"also managed by Canary shop/web-2 ({file}:2)",
        f"{file}:2: Canary shop/web-2 spec.service.route: VirtualService shop/web route http[0] "
        f"is also managed by Canary shop/web ({file}:1)",
    ]


def test_two_canaries_on_different_routes_of_one_service_are_fine(tmp_path: Path) -> None:
    first = canary(service={"host": "web", "route": "a"})
    second = canary(service={"host": "web", "route": "b"})
    second["metadata"]["name"] = "web-2"
    file = write(tmp_path / "both.yaml", first, second)
    assert list(report.validate_paths([file]).lines()) == []


def test_shared_routes_are_found_without_the_virtual_service_too(tmp_path: Path) -> None:
    """Not given the VirtualService, two Canaries naming the same route still collide."""
    first = canary(service={"host": "web", "route": "a"})
    second = canary(service={"host": "web", "route": "a"})
    second["metadata"]["namespace"] = "shop"
    second["metadata"]["name"] = "other"
    file = write(tmp_path / "both.yaml", first, second)
    assert len(list(report.validate_paths([file]).lines())) == 2


def test_an_object_defined_twice_is_reported_on_the_later_copy(tmp_path: Path) -> None:
    one = write(tmp_path / "a.yaml", virtual_service())
    two = write(tmp_path / "b.yaml", virtual_service(), canary())
    lines = list(report.validate_paths([tmp_path]).lines())
    assert lines == [
        f"{two}:1: metadata.name: VirtualService shop/web is defined again (first at {one}:1)"
    ]


def test_many_canaries_on_one_route_get_one_short_line_each(tmp_path: Path) -> None:
    """Each line names three of the others and counts the rest, so the report stays linear."""
    canaries = []
    for n in range(200):
        each = canary()
        each["metadata"]["name"] = f"web-{n}"
        canaries.append(each)
    file = write(tmp_path / "many.yaml", *canaries, virtual_service())
    lines = list(report.validate_paths([file]).lines())
    assert len(lines) == 200
    assert lines[0] == (
        f"{file}:1: Canary shop/web-0 spec.service.route: VirtualService shop/web route http[0] "
        f"is also managed by Canary shop/web-1 ({file}:2), Canary shop/web-2 ({file}:3), "
        f"Canary shop/web-3 ({file}:4) and 196 more"
    )
    assert lines[5].endswith(
        f"Canary shop/web-0 ({file}:1), Canary shop/web-1 ({file}:2), "
        f"Canary shop/web-2 ({file}:3) and 196 more"
    )
    assert all(line.endswith(" and 196 more") for line in lines)
