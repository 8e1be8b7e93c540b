"""The controller's figures, read back from its private registry."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from canary.controller.telemetry import PHASES, Telemetry


def value(telemetry: Telemetry, metric: str, /, **labels: str) -> float | None:
    return telemetry.registry.get_sample_value(metric, labels)


def tick(
    telemetry: Telemetry,
    name: str = "accounts",
    *,
    phase: str = "Progressing",
    weight: int = 20,
    failed_checks: int = 0,
    checks: Sequence[tuple[str, str]] = (),
    seconds: float = 0.003,
) -> None:
    telemetry.tick_done(
        "shop",
        name,
        phase=phase,
        weight=weight,
        failed_checks=failed_checks,
        checks=checks,
        seconds=seconds,
    )


def test_a_tick_sets_weight_failed_checks_and_exactly_one_phase() -> None:
    telemetry = Telemetry()
    tick(telemetry, weight=40, failed_checks=1)
    assert value(telemetry, "canary_weight", namespace="shop", name="accounts") == 40
    assert value(telemetry, "canary_failed_checks", namespace="shop", name="accounts") == 1
    phases = {
        phase: value(telemetry, "canary_phase", namespace="shop", name="accounts", phase=phase)
        for phase in PHASES
    }
    assert phases == {phase: float(phase == "Progressing") for phase in PHASES}


def test_a_new_phase_moves_the_one_and_keeps_the_old_series_at_zero() -> None:
    telemetry = Telemetry()
    tick(telemetry, phase="Progressing")
    tick(telemetry, phase="RollingBack")
    labels = {"namespace": "shop", "name": "accounts"}
    assert value(telemetry, "canary_phase", phase="Progressing", **labels) == 0
    assert value(telemetry, "canary_phase", phase="RollingBack", **labels) == 1


def test_no_phase_yet_is_all_zeros() -> None:
    telemetry = Telemetry()
    tick(telemetry, phase="")
    assert all(
        value(telemetry, "canary_phase", namespace="shop", name="accounts", phase=phase) == 0
        for phase in PHASES
    )


def test_checks_are_counted_by_name_and_result() -> None:
    telemetry = Telemetry()
    tick(telemetry, checks=[("success-rate", "passed"), ("latency", "no_data")])
    tick(telemetry, checks=[("success-rate", "passed"), ("latency", "failed")])
    labels = {"namespace": "shop", "name": "accounts"}
    assert (
        value(telemetry, "canary_checks_total", check="success-rate", result="passed", **labels)
        == 2
    )
    assert value(telemetry, "canary_checks_total", check="latency", result="no_data", **labels) == 1
    assert value(telemetry, "canary_checks_total", check="latency", result="failed", **labels) == 1


def test_ticks_are_timed_and_counted_by_outcome_from_zero() -> None:
    telemetry = Telemetry()
    assert value(telemetry, "canary_ticks_total", outcome="error") == 0
    tick(telemetry, seconds=0.004)
    telemetry.tick_failed("unavailable", 2.0)
    telemetry.tick_failed("error", 0.002)
    counts = {
        outcome: value(telemetry, "canary_ticks_total", outcome=outcome)
        for outcome in ("ok", "unavailable", "error")
    }
    assert counts == {"ok": 1, "unavailable": 1, "error": 1}
    assert value(telemetry, "canary_tick_seconds_count") == 3
    assert value(telemetry, "canary_tick_seconds_bucket", le="0.005") == 2
    assert value(telemetry, "canary_tick_seconds_bucket", le="5.0") == 3


def test_forget_drops_every_series_of_one_canary_only() -> None:
    telemetry = Telemetry()
    tick(telemetry, "accounts", checks=[("success-rate", "failed")])
    tick(telemetry, "payments", checks=[("success-rate", "passed")])
    telemetry.forget("shop", "accounts")
    exposition = {
        sample.labels.get("name")
        for family in telemetry.registry.collect()
        for sample in family.samples
    }
    assert "accounts" not in exposition
    assert "payments" in exposition
    telemetry.forget("shop", "accounts")  # twice, or for a Canary never ticked: no error
    telemetry.forget("shop", "never-seen")


def test_leadership_is_a_zero_or_one_gauge() -> None:
    telemetry = Telemetry()
    assert value(telemetry, "canary_leader") == 0
    telemetry.set_leader(True)
    assert value(telemetry, "canary_leader") == 1
    telemetry.set_leader(False)
    assert value(telemetry, "canary_leader") == 0


def test_two_instances_keep_separate_figures() -> None:
    first, second = Telemetry(), Telemetry()
    tick(first, weight=60)
    assert value(second, "canary_weight", namespace="shop", name="accounts") is None


def test_unknown_label_values_are_refused() -> None:
    telemetry = Telemetry()
    with pytest.raises(ValueError, match="unknown phase"):
        tick(telemetry, phase="progressing")
    with pytest.raises(ValueError, match="unknown check result"):
        tick(telemetry, checks=[("success-rate", "pass")])
    # Refused before anything was recorded, so no half-written tick.
    assert value(telemetry, "canary_ticks_total", outcome="ok") == 0


def test_an_unknown_tick_outcome_is_refused() -> None:
    with pytest.raises(ValueError, match="outcome"):
        Telemetry().tick_failed("ok", 0.1)


def test_a_fault_in_place_is_a_gauge_and_verdicts_are_counted_once() -> None:
    telemetry = Telemetry()
    telemetry.chaos("shop", "accounts", fault_injected=True, judged=())
    assert value(telemetry, "canary_fault_injected", namespace="shop", name="accounts") == 1
    telemetry.chaos("shop", "accounts", fault_injected=False, judged=["failed"])
    assert value(telemetry, "canary_fault_injected", namespace="shop", name="accounts") == 0
    failed = {"namespace": "shop", "name": "accounts", "result": "failed"}
    assert value(telemetry, "canary_chaos_experiments_total", **failed) == 1
    with pytest.raises(ValueError, match="unknown chaos result"):
        telemetry.chaos("shop", "accounts", fault_injected=False, judged=["maybe"])
    telemetry.forget("shop", "accounts")
    assert value(telemetry, "canary_fault_injected", namespace="shop", name="accounts") is None
    assert value(telemetry, "canary_chaos_experiments_total", **failed) is None
