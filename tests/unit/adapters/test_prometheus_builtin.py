"""`canary run`'s own Prometheus: the TLS and token flags reach the client it queries, and
contradictory or unreadable ones stop the start with a usage error."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any, ClassVar

import certifi
import pytest
from click.testing import CliRunner

from canary.cli import main
from canary.cluster import run
from canary.cluster.run import RunOptions, builtin_prometheus, prometheus_problems
from canary.controller import logs

URL = "https://prometheus.example.com"


@pytest.fixture
def token(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("sa-token\n")
    return path


def test_the_options_reach_the_client(token: Path) -> None:
    client = builtin_prometheus(
        RunOptions(
            prometheus_url=URL,
            prometheus_ca_file=certifi.where(),
            prometheus_bearer_token_file=str(token),
        )
    )
    assert client.url == URL
    assert client.verify == certifi.where()
    assert client.headers() == {"Authorization": "Bearer sa-token"}
    assert client.hints.ca == "--prometheus-ca-file"
    assert client.hints.credentials == "--prometheus-bearer-token-file"


def test_by_default_tls_is_verified_and_nothing_is_sent() -> None:
    client = builtin_prometheus(RunOptions(prometheus_url=URL))
    assert client.verify is True
    assert client.headers() == {}
    skipping = builtin_prometheus(
        RunOptions(prometheus_url=URL, prometheus_insecure_skip_verify=True)
    )
    assert skipping.verify is False


@pytest.mark.parametrize(
    ("options", "words"),
    [
        pytest.param(
            {"prometheus_ca_file": certifi.where(), "prometheus_insecure_skip_verify": True},
            "--prometheus-ca-file and --prometheus-insecure-skip-verify together",
            id="ca-and-skip",
        ),
        pytest.param(
            {"prometheus_url": "http://prometheus:9090", "prometheus_ca_file": certifi.where()},
            "--prometheus-ca-file is set but --prometheus-url (http://prometheus:9090) is not "
            "https://",
            id="ca-over-http",
        ),
        pytest.param(
            {"prometheus_ca_file": "/no/such/ca.pem"},
            "--prometheus-ca-file /no/such/ca.pem: not a readable PEM CA bundle",
            id="ca-missing",
        ),
        pytest.param(
            {"prometheus_bearer_token_file": "/no/such/token"},
            "--prometheus-bearer-token-file /no/such/token: cannot read it (No such file or "
            "directory)",
            id="token-missing",
        ),
    ],
)
def test_bad_flags_are_problems_in_their_words(options: dict[str, Any], words: str) -> None:
    found = prometheus_problems(RunOptions(**{"prometheus_url": URL, **options}))
    assert len(found) == 1, found
    assert words in found[0]


def test_an_empty_token_file_or_a_ca_file_without_a_certificate_is_a_problem(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "empty"
    empty.write_text("")
    found = prometheus_problems(
        RunOptions(
            prometheus_url=URL,
            prometheus_bearer_token_file=str(empty),
            prometheus_ca_file=str(empty),
        )
    )
    assert len(found) == 2, found
    assert found[0].startswith(f"--prometheus-ca-file {empty}: not a readable PEM CA bundle")
    assert found[1] == f"--prometheus-bearer-token-file {empty}: the file is empty"


class _Controller:
    made: ClassVar[list[RunOptions]] = []

    def __init__(self, options: RunOptions) -> None:
        type(self).made.append(options)
        self.lost = False
        self.stopping: Any = None

    def start(self) -> None:
        pass

    def wait(self) -> None:
        pass

    def stop(self) -> None:
        pass


@pytest.fixture
def controller(monkeypatch: pytest.MonkeyPatch) -> type[_Controller]:
    """`canary run` with its controller, its logging and its signal handlers stubbed out."""
    _Controller.made = []
    monkeypatch.setattr(run, "ClusterController", _Controller)
    monkeypatch.setattr(logs, "configure", lambda **_: None)
    monkeypatch.setattr(signal, "signal", lambda *_: None)
    return _Controller


def test_canary_run_passes_the_flags_on(controller: type[_Controller], token: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--prometheus-url", URL,
            "--prometheus-ca-file", certifi.where(),
            "--prometheus-bearer-token-file", str(token),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (options,) = controller.made
    assert options.prometheus_url == URL
    assert options.prometheus_ca_file == certifi.where()
    assert options.prometheus_bearer_token_file == str(token)
    assert options.prometheus_insecure_skip_verify is False


def test_canary_run_refuses_contradictory_flags_before_starting(
    controller: type[_Controller],
) -> None:
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--prometheus-url", URL,
            "--prometheus-ca-file", certifi.where(),
            "--prometheus-insecure-skip-verify",
        ],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--prometheus-ca-file and --prometheus-insecure-skip-verify together" in result.output
    assert controller.made == []
