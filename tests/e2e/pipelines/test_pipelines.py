"""deploy/pipelines/ shown working: each file passes its CI system's own linter (and a broken copy
fails it), and the shell it holds, run as its CI system runs it against a live `canary demo
--state-dir`, exits with the rollout's verdict.

The demo's Canary is `demo` in namespace `default`, rolling v2 out in place of v1, with no
targetRef. So the jobs release v2 without a TARGET: "nothing to do" (exit 0), as for a re-run of
a release in progress, and the wait's exit code is the job's verdict. Given a Deployment too,
the release would replace the canary halfway: refused (exit 1), and the job fails before waiting.
The steps get CANARY_STATE_DIR, which the CLI prefers to the kubeconfig the job writes (that one
points at nothing). `kubectl` and `pip` are shims that log their arguments: they stand for the
cluster and the package index; `canary` is the real one, from this venv, first on PATH.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.demo import processes
from tests.e2e.pipelines import jobs

REPO = Path(__file__).resolve().parents[3]
PIPELINES = REPO / "deploy" / "pipelines"
WORKFLOW = PIPELINES / "github-actions.yaml"
GITLAB = PIPELINES / "gitlab-ci.yml"
GITHUB_JOB, GITLAB_JOB = "release", "canary-release"
VENV_BIN = Path(sys.prefix) / "bin"
CANARY = [sys.executable, "-c", "from canary.cli import main; main()"]

# The workflow's step names the test reads.
RELEASE, WAIT, EXPLAIN = "Release", "Wait for the verdict", "Explain why it failed"

# A kubeconfig for a cluster that is not there: the steps must not need it with a state dir.
NOWHERE = """apiVersion: v1
kind: Config
clusters: [{name: nowhere, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: nobody, user: {token: not-a-token}}]
contexts: [{name: nowhere, context: {cluster: nowhere, user: nobody, namespace: default}}]
current-context: nowhere
"""
SHIM = '#!/usr/bin/env bash\nprintf \'%s %s\\n\' "$(basename "$0")" "$*" >> "$SHIM_LOG"\n'

# A demo's Canary exists within seconds; the good rollout takes about 45 s, the bad one 10 s.
START_S = 90.0
GOOD_S = 150.0
BAD_S = 90.0


# -- lint ---------------------------------------------------------------------------------


def _actionlint(actionlint: Path, shellcheck: Path, path: Path) -> subprocess.CompletedProcess[str]:
    # -shellcheck names it: left to PATH, actionlint would skip shellcheck without a word.
    return subprocess.run(
        [str(actionlint), "-no-color", f"-shellcheck={shellcheck}", "-pyflakes=", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _gitlab_schema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _broken(original: Path, tmp_path: Path, old: str, new: str) -> Path:
    text = original.read_text()
    assert old in text, f"{original.name} no longer has {old!r}: update the broken copy"
    copy = tmp_path / original.name
    copy.write_text(text.replace(old, new))
    return copy


def test_the_workflow_passes_actionlint_and_shellcheck(actionlint: Path, shellcheck: Path) -> None:
    linted = _actionlint(actionlint, shellcheck, WORKFLOW)
    assert linted.returncode == 0, linted.stdout + linted.stderr


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(
            ("${{ inputs.subset }}", "${{ inputs.version }}", 'property "version" is not defined'),
            id="actionlint-undefined-input",
        ),
        pytest.param(
            ("failure()", "failure(", "unexpected end of input"), id="actionlint-bad-expression"
        ),
        # Only shellcheck sees this one: it proves actionlint ran it.
        pytest.param(
            ('-f "deploy/app/$SUBSET.yaml"', "-f deploy/app/$SUBSET.yaml", "SC2086"),
            id="shellcheck-unquoted-variable",
        ),
    ],
)
def test_actionlint_fails_on_a_broken_workflow(
    actionlint: Path, shellcheck: Path, tmp_path: Path, breakage: tuple[str, str, str]
) -> None:
    old, new, reported = breakage
    linted = _actionlint(actionlint, shellcheck, _broken(WORKFLOW, tmp_path, old, new))
    assert linted.returncode == 1, linted.stdout + linted.stderr
    assert reported in linted.stdout, linted.stdout


def test_the_gitlab_job_passes_gitlab_ci_schema() -> None:
    checked = _gitlab_schema(GITLAB)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "ok -- validation done" in checked.stdout


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param("  resource_group: ", "  resource_groups: ", id="unknown-keyword"),
        pytest.param("  timeout: 40m", "  timeout: [40m]", id="wrong-type"),
    ],
)
def test_check_jsonschema_fails_on_a_broken_gitlab_job(tmp_path: Path, old: str, new: str) -> None:
    checked = _gitlab_schema(_broken(GITLAB, tmp_path, old, new))
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "Schema validation errors were encountered" in checked.stdout + checked.stderr


def test_the_files_say_what_a_release_pipeline_needs() -> None:
    """What the linters cannot know: one release at a time, shell that is the same whatever
    it points at, and the explanation when the verdict is a failure."""
    workflow = yaml.safe_load(WORKFLOW.read_text())
    # PyYAML reads the key `on` as True.
    inputs = workflow[True]["workflow_dispatch"]["inputs"]
    assert inputs["subset"]["required"] is True
    assert inputs["target"]["required"] is False
    assert workflow["concurrency"]["cancel-in-progress"] is False
    job = jobs.github_job(WORKFLOW, GITHUB_JOB)
    assert job.shell == jobs.GITHUB_SHELL
    for step in job.steps:
        assert "${{" not in step.script, f"{step.name}: expressions belong in env"
    [explain] = [step for step in job.steps if step.name == EXPLAIN]
    assert explain.condition == "failure()"

    pipeline = yaml.safe_load(GITLAB.read_text())
    body = pipeline[GITLAB_JOB]
    assert body["stage"] == "deploy"
    assert body["resource_group"]
    assert "canary explain" in "\n".join(body["after_script"])


# -- the shell against a live demo --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Demo:
    process: subprocess.Popen[bytes]
    state: Path
    work: Path

    def status(self) -> dict[str, Any]:
        shown = subprocess.run(
            [*CANARY, "status", "demo", "--state-dir", str(self.state), "-o", "json"],
            cwd=self.work,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return dict(json.loads(shown.stdout)) if shown.returncode == 0 else {}

    def until(self, what: str, ready: Callable[[dict[str, Any]], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state.is_dir() and ready(self.status()):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.5)
        raise AssertionError(f"the demo's Canary never {what}; last status: {self.status()}")


@contextlib.contextmanager
def _demo(tmp_path: Path, scenario: str, deadline: float) -> Iterator[Demo]:
    """A `canary demo --state-dir` in its own process group; stopped with its mesh afterwards,
    also when the test failed, and nothing it started may outlive it."""
    work = tmp_path / "demo"
    work.mkdir()
    log = work / "demo.out"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                *CANARY,
                "demo",
                "--scenario",
                scenario,
                "--state-dir",
                str(work / "state"),
                "--timeout",
                str(int(deadline - time.monotonic())),
            ],
            cwd=work,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        demo = Demo(process, work / "state", work)
        demo.until("appeared", bool, START_S)
        yield demo
        process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        left = processes.stop(process, log.read_text(errors="replace"))
    assert left == [], "the demo stopped everything it started"
    assert process.returncode == 0, log.read_text(errors="replace")[-3000:]


@dataclass(frozen=True, slots=True)
class Ran:
    github: jobs.JobRun
    gitlab: jobs.JobRun
    github_work: Path
    gitlab_work: Path


def _run_both(tmp_path: Path, demo: Demo, *, name: str, target: str, deadline: float) -> Ran:
    """The workflow's job and the GitLab job at once against the demo, releasing v2."""
    shims = tmp_path / "shims"
    if not shims.is_dir():
        shims.mkdir()
        for tool in ("kubectl", "pip"):
            (shims / tool).write_text(SHIM)
            (shims / tool).chmod(0o755)
    assert (VENV_BIN / "canary").is_file(), f"no canary in {VENV_BIN}"
    kept = {
        key: value
        for key, value in os.environ.items()
        if key not in ("KUBECONFIG", "CANARY_STATE_DIR", "CI")
        and not key.startswith(("GITHUB_", "GITLAB_", "CI_", "RUNNER_"))
    }
    path = os.pathsep.join([str(shims), str(VENV_BIN), kept.get("PATH", "")])
    given = {
        "CANARY": "demo",
        "CANARY_NAMESPACE": "default",
        "SUBSET": "v2",
        "TARGET": target,
        "KUBECONFIG_DATA": NOWHERE,
    }

    def base(work: Path) -> dict[str, str]:
        work.mkdir()
        return {
            **kept,
            "PATH": path,
            "SHIM_LOG": str(work / "shims.log"),
            "CANARY_STATE_DIR": str(demo.state),
        }

    github_work, gitlab_work = tmp_path / f"github-{name}", tmp_path / f"gitlab-{name}"
    github_base, gitlab_base = base(github_work), base(gitlab_work)
    # GitLab's CI/CD variable of type File: the file, and KUBECONFIG naming it.
    (gitlab_work / "kubeconfig").write_text(NOWHERE)
    gitlab_base["KUBECONFIG"] = str(gitlab_work / "kubeconfig")
    github_job = jobs.github_job(WORKFLOW, GITHUB_JOB)
    gitlab_job = jobs.gitlab_job(GITLAB, GITLAB_JOB)
    with ThreadPoolExecutor(max_workers=2) as pool:
        github = pool.submit(
            jobs.run_github,
            github_job,
            given=given,
            base=github_base,
            work=github_work,
            deadline=deadline,
        )
        gitlab = pool.submit(
            jobs.run_gitlab,
            gitlab_job,
            given=given,
            base=gitlab_base,
            work=gitlab_work,
            deadline=deadline,
        )
        return Ran(github.result(), gitlab.result(), github_work, gitlab_work)


def _shims_called(work: Path) -> list[str]:
    return (work / "shims.log").read_text().splitlines()


def _assert_set_up(ran: Ran) -> None:
    """The steps before the release did what they say, with the shims in place of the world."""
    package = yaml.safe_load(WORKFLOW.read_text())["jobs"][GITHUB_JOB]["env"]["CANARY_PACKAGE"]
    called = [
        f"pip install --quiet {package}",
        "kubectl apply --namespace default -f deploy/app/v2.yaml",
    ]
    assert _shims_called(ran.github_work) == called, ran.github.log
    assert _shims_called(ran.gitlab_work) == called, ran.gitlab.log
    kubeconfig = ran.github_work / "runner-temp" / "kubeconfig"
    assert kubeconfig.read_text() == NOWHERE + "\n"
    assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600, "the credentials are the job's only"


def test_the_pipelines_follow_a_good_release_and_pass(tmp_path: Path) -> None:
    deadline = time.monotonic() + GOOD_S
    with _demo(tmp_path, "good", deadline) as demo:
        demo.until("started its rollout", lambda s: s.get("phase") == "Progressing", START_S)

        # Another Deployment for v2 while v2 rolls out: refused, nothing written, and the job
        # fails before it waits, saying why.
        refused = _run_both(tmp_path, demo, name="refused", target="demo-v2", deadline=deadline)
        for run in (refused.github, refused.gitlab):
            assert run.code == 1, run.log
            assert "a rollout of v2 is in progress" in run.log, run.log
            assert "Canary default/demo: Progressing" in run.log, "status, then explain"
        assert refused.github.step(RELEASE).code == 1
        assert not refused.github.ran(WAIT), refused.github.log
        assert refused.github.step(EXPLAIN).code == 0
        assert refused.gitlab.after is not None
        assert "Steps of v2 in place of v1" in refused.gitlab.after.output, refused.gitlab.log
        assert not re.search(r"(?m)^\d\d:\d\d:\d\d ", refused.gitlab.steps[0].output), "no wait"

        # The release as the demo runs it: nothing to do, then the wait follows it to its end.
        ran = _run_both(tmp_path, demo, name="release", target="", deadline=deadline)
        for run in (ran.github, ran.gitlab):
            assert run.code == 0, run.log
            assert "nothing to do: v2 is already the canary of default/demo" in run.log, run.log
            assert "Progressing, weight " in run.log, "the wait reported the rollout's steps"
            assert "Succeeded: v2 receives 100% and is now the stable subset" in run.log
        assert ran.github.step(WAIT).code == 0
        assert not ran.github.ran(EXPLAIN), ran.github.log
        assert ran.gitlab.after is not None
        assert ran.gitlab.after.output == "", "after_script explains failures only"
        _assert_set_up(ran)
    assert demo.status()["phase"] == "Succeeded"


def test_the_pipelines_fail_a_bad_release_and_say_why(tmp_path: Path) -> None:
    deadline = time.monotonic() + BAD_S
    with _demo(tmp_path, "bad", deadline) as demo:
        ran = _run_both(tmp_path, demo, name="release", target="", deadline=deadline)
        for run in (ran.github, ran.gitlab):
            assert run.code == 1, run.log
            assert "nothing to do: v2 is already the canary of default/demo" in run.log, run.log
            assert "Failed: rolled back: v1 receives 100%" in run.log, run.log
        assert ran.github.step(WAIT).code == 1
        explained = [ran.github.step(EXPLAIN).output]
        assert ran.gitlab.after is not None
        explained.append(ran.gitlab.after.output)
        for text in explained:
            assert "Canary default/demo: Failed" in text, text
            assert "request-success-rate: fail " in text, text
            assert "MetricFailed: request-success-rate at weight 10" in text, text
        _assert_set_up(ran)
    assert demo.status()["phase"] == "Failed"
