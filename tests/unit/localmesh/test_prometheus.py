"""Finding Prometheus, and the scrape config: every Envoy's stats, every second, with labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary.localmesh import prometheus


def test_without_prometheus_the_error_names_the_install_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CANARY_PROMETHEUS", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(prometheus.PrometheusNotFound, match="scripts/install-prometheus"):
        prometheus.prometheus_binary()


def test_canary_prometheus_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = tmp_path / "prom"
    mine.write_text("#!/bin/sh\n")
    mine.chmod(0o755)
    monkeypatch.setenv("CANARY_PROMETHEUS", str(mine))
    assert prometheus.prometheus_binary() == mine


def test_a_canary_prometheus_that_is_missing_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANARY_PROMETHEUS", str(tmp_path / "nothing"))
    with pytest.raises(prometheus.PrometheusNotFound, match="CANARY_PROMETHEUS"):
        prometheus.prometheus_binary()


def test_every_target_is_scraped_each_second_at_envoys_stats_path() -> None:
    config = prometheus.scrape_config(
        {
            "client-side": ["127.0.0.1:1"],
            "inbound": [prometheus.Target("127.0.0.1:2", {"version": "v1", "instance": "a"})],
        }
    )
    assert config["global"] == {"scrape_interval": "1s", "evaluation_interval": "1s"}
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"client-side", "inbound"}
    for job in jobs.values():
        assert job["metrics_path"] == "/stats/prometheus"
        assert job["scrape_interval"] == "1s"
    assert jobs["client-side"]["static_configs"] == [{"targets": ["127.0.0.1:1"]}]
    assert jobs["inbound"]["static_configs"] == [
        {"targets": ["127.0.0.1:2"], "labels": {"version": "v1", "instance": "a"}}
    ]
