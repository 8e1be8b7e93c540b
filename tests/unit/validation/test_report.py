"""`canary.validation.report`: findings from every step, sorted, counted, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary.validation import crosscheck, report
from tests.unit.validation.documents import (
    canary,
    destination_rule,
    metric_template,
    virtual_service,
    write,
)


def test_the_summary_counts_documents_by_kind_and_the_problems(tmp_path: Path) -> None:
    gateway = {"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "g"}}
    second = canary()
    second["metadata"]["name"] = "api"
    second["spec"]["service"] = {"host": "api"}
    write(
        tmp_path / "all.yaml",
        canary(),
        second,
        metric_template(),
        virtual_service(),
        destination_rule(),
        gateway,
    )
    findings = report.validate_paths([tmp_path])
    assert findings.summary() == (
        "6 documents checked: 2 Canaries, 1 MetricTemplate, 1 VirtualService, "
        "1 DestinationRule, 1 Gateway; 2 problems"
    )
    assert findings.failed


def test_no_problems_is_not_a_failure(tmp_path: Path) -> None:
    findings = report.validate_paths([write(tmp_path / "one.yaml", canary())])
    assert findings.summary() == "1 document checked: 1 Canary; 0 problems"
    assert not findings.failed
    assert list(findings.lines()) == []


def test_lines_are_sorted_by_file_then_document(tmp_path: Path) -> None:
    """Cross-object findings join the model errors of other files in one order."""
    b = write(tmp_path / "b.yaml", canary(analysis={"stepWeights": [5, 1]}), [1])
    a = write(tmp_path / "a.yaml", canary(), destination_rule(host="api"))
    lines = list(report.validate_paths([b, a]).lines())
    assert [line.split(": ")[0] for line in lines] == [f"{a}:1", f"{b}:1", f"{b}:2"]


def test_an_unexpected_error_in_one_canary_is_a_finding_and_the_rest_are_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = crosscheck.check_canary

    def flaky(placed, index):  # type: ignore[no-untyped-def]
        if placed.obj.metadata.name == "web":
            raise RuntimeError("boom")
        return real(placed, index)

    monkeypatch.setattr(crosscheck, "check_canary", flaky)
    other = canary()
    other["metadata"]["name"] = "api"
    other["spec"]["service"] = {"host": "api"}
    file = write(tmp_path / "two.yaml", canary(), other, destination_rule())
    lines = list(report.validate_paths([file]).lines())
    assert lines == [
        f"{file}:1: internal error: RuntimeError: boom (please report this)",
        f"{file}:2: Canary shop/api spec.service.host: no DestinationRule applies to "
        "api.shop.svc.cluster.local for callers in shop (looked in shop, istio-system)",
    ]


def test_control_characters_are_escaped_in_every_printed_line(tmp_path: Path) -> None:
    """A name or value from the input cannot move the cursor, forge a line or reorder text."""
    hostile = canary()
    hostile["metadata"]["name"] = "web\x1b[2J\nforged\u202e"
    file = write(tmp_path / "a\x07b.yaml", hostile)
    findings = report.validate_paths([file, tmp_path / "gone\r.yaml"])
    lines = list(findings.lines())
    assert len(lines) == 2
    for line in [*lines, findings.summary()]:
        assert line.isprintable(), line
    assert "a\\x07b.yaml" in lines[0]
    assert "forged" in lines[0]
    assert lines[1].endswith("gone\\x0d.yaml: no such file or folder")


def test_undecodable_bytes_of_a_file_name_are_printed_as_escapes() -> None:
    name = b"bad\xff.yaml".decode("utf-8", "surrogateescape")
    assert report.printable(f"{name}: no such file or folder") == (
        "bad\\xff.yaml: no such file or folder"
    )


def test_the_summary_says_what_was_not_checked(tmp_path: Path) -> None:
    flagger = {"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "metadata": {"name": "a"}}
    write(tmp_path / "all.yaml", canary(), flagger)
    findings = report.validate_paths([tmp_path])
    assert findings.summary() == (
        "1 document checked: 1 Canary; 1 object of Flagger or Argo Rollouts not checked; 1 problem"
    )
    assert findings.failed
