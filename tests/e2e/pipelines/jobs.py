"""The shell of deploy/pipelines/ run here as GitHub Actions and GitLab would run it.

Only the part of each CI system that decides what the shell steps do and what the job's verdict
is: the job's and steps' environment, one shell per step (GitHub) or one for before_script and
script and another for after_script (GitLab), `if: failure()`, `$GITHUB_ENV`, `$CI_JOB_STATUS`.
`uses:` steps (checkout, setup-python) are not run. Anything else in a step's condition, or an
expression in an environment value that the test does not replace, raises: the test must not
pass by running less than the file says.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

EXPRESSION = re.compile(r"\$\{\{.*?\}\}")
# What the workflow's steps run with (`defaults.run.shell`); GitLab's bash is `set -eo
# pipefail`, and the test runs its lines with -u too, as strict as the workflow.
GITHUB_SHELL = "bash --noprofile --norc -euo pipefail {0}"
GITLAB_SHELL = "bash --noprofile --norc {0}"
GITLAB_STRICT = "set -euo pipefail\n"
# A step key outside these changes how it runs (shell, working-directory, continue-on-error).
STEP_KEYS = frozenset({"name", "id", "run", "if", "env", "timeout-minutes"})


class Unsupported(Exception):
    """The file asks for something this emulation does not do."""


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    script: str
    condition: str = ""
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Job:
    """A job's shell: its steps in order, its environment and its shell command line."""

    env: dict[str, str]
    steps: tuple[Step, ...]
    shell: str
    # GitLab: the script that runs after the others, in its own shell, whatever they did.
    after: Step | None = None


@dataclass(frozen=True, slots=True)
class StepRun:
    name: str
    code: int
    output: str


@dataclass(frozen=True, slots=True)
class JobRun:
    code: int
    steps: tuple[StepRun, ...]
    after: StepRun | None = None

    def step(self, name: str) -> StepRun:
        found = [run for run in self.steps if run.name == name]
        if not found:
            raise AssertionError(f"step {name!r} did not run; ran: {[s.name for s in self.steps]}")
        return found[0]

    def ran(self, name: str) -> bool:
        return any(run.name == name for run in self.steps)

    @property
    def log(self) -> str:
        runs = [*self.steps, *([self.after] if self.after else [])]
        return "\n".join(f"--- {run.name} (exit {run.code})\n{run.output}" for run in runs)


def github_job(path: Path, job: str) -> Job:
    workflow = yaml.safe_load(path.read_text())
    body = workflow["jobs"][job]
    shell = body.get("defaults", {}).get("run", {}).get("shell", "")
    steps = []
    for index, step in enumerate(body["steps"]):
        if "uses" in step:
            continue
        if set(step) - STEP_KEYS:
            raise Unsupported(
                f"step keys this test does not apply: {sorted(set(step) - STEP_KEYS)}"
            )
        name = step.get("name") or f"step {index + 1}"
        condition = str(step.get("if", "")).strip()
        steps.append(Step(name, step["run"], condition, _strings(step.get("env", {}))))
    return Job(env=_strings(body.get("env", {})), steps=tuple(steps), shell=shell)


def gitlab_job(path: Path, job: str) -> Job:
    pipeline = yaml.safe_load(path.read_text())
    body = pipeline[job]
    if set(pipeline.get("default", {})) & {"before_script", "after_script"}:
        raise Unsupported("default: scripts, which this test does not add to the job's")
    env = {**_variables(pipeline.get("variables", {})), **_variables(body.get("variables", {}))}
    script = "\n".join([*_lines(body.get("before_script")), *_lines(body["script"])])
    after = "\n".join(_lines(body.get("after_script")))
    return Job(
        env=env,
        steps=(Step("script", GITLAB_STRICT + script),),
        shell=GITLAB_SHELL,
        after=Step("after_script", GITLAB_STRICT + after) if after else None,
    )


def run_github(
    job: Job, *, given: dict[str, str], base: dict[str, str], work: Path, deadline: float
) -> JobRun:
    """Runs the job's steps as the runner would; `given` replaces the environment values that
    the file takes from expressions (inputs, secrets) and any other the test sets."""
    temp = work / "runner-temp"
    temp.mkdir(parents=True, exist_ok=True)
    env = {
        **base,
        **_resolved(job.env, given),
        "RUNNER_TEMP": str(temp),
        "GITHUB_WORKSPACE": str(work),
        "GITHUB_ACTIONS": "true",
        "CI": "true",
    }
    failed = False
    runs: list[StepRun] = []
    for index, step in enumerate(job.steps):
        if not _runs(step.condition, failed=failed):
            continue
        github_env = temp / f"github-env-{index}"
        github_env.touch()
        step_env = {**env, **_resolved(step.env, given), "GITHUB_ENV": str(github_env)}
        run = _run_shell(step, job.shell, step_env, work, deadline)
        runs.append(run)
        failed = failed or run.code != 0
        env.update(_github_env(github_env))
    return JobRun(code=1 if failed else 0, steps=tuple(runs))


def run_gitlab(
    job: Job, *, given: dict[str, str], base: dict[str, str], work: Path, deadline: float
) -> JobRun:
    """Runs before_script and script in one shell, then after_script in another."""
    env = {
        **base,
        **_resolved(job.env, given),
        "GITLAB_CI": "true",
        "CI": "true",
        "CI_PROJECT_DIR": str(work),
    }
    [step] = job.steps
    run = _run_shell(step, job.shell, env, work, deadline)
    after = None
    if job.after is not None:
        status = "success" if run.code == 0 else "failed"
        after_env = {**env, "CI_JOB_STATUS": status}
        after = _run_shell(job.after, job.shell, after_env, work, deadline)
    return JobRun(code=run.code, steps=(run,), after=after)


def _runs(condition: str, *, failed: bool) -> bool:
    bare = condition.removeprefix("${{").removesuffix("}}").strip()
    if bare in ("", "success()"):
        return not failed
    if bare == "failure()":
        return failed
    if bare == "always()":
        return True
    raise Unsupported(f"a step's condition this test does not evaluate: if: {condition}")


def _resolved(env: dict[str, str], given: dict[str, str]) -> dict[str, str]:
    resolved = {}
    for name, value in env.items():
        if name in given:
            resolved[name] = given[name]
        elif EXPRESSION.search(value):
            raise Unsupported(f"{name}: {value} comes from an expression the test does not set")
        else:
            resolved[name] = value
    return resolved


def _github_env(path: Path) -> dict[str, str]:
    """What a step wrote to $GITHUB_ENV (NAME=value lines; the heredoc form is not used)."""
    written = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if not sep or "<<" in name:
            raise Unsupported(f"a $GITHUB_ENV line this test does not read: {line!r}")
        written[name] = value
    return written


def _run_shell(step: Step, shell: str, env: dict[str, str], work: Path, deadline: float) -> StepRun:
    """One step in its own process group, so a step past the deadline is killed whole."""
    words = shell.split()
    if "{0}" not in words:
        raise Unsupported(f"a shell without {{0}}: {shell}")
    file = work / f"step-{re.sub(r'[^a-z0-9]+', '-', step.name.lower())}.sh"
    file.write_text(step.script)
    command = [str(file) if word == "{0}" else word for word in words]
    process = subprocess.Popen(
        command,
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        text = output.decode(errors="replace")
        raise AssertionError(
            f"step {step.name!r} did not end in time; its output:\n{text}"
        ) from None
    return StepRun(step.name, process.returncode, output.decode(errors="replace"))


def _strings(mapping: dict[str, Any]) -> dict[str, str]:
    return {str(name): str(value) for name, value in mapping.items()}


def _variables(mapping: dict[str, Any]) -> dict[str, str]:
    """GitLab's variables: a value, or a mapping with `value` (and a description)."""
    return {
        str(name): str(value["value"] if isinstance(value, dict) else value)
        for name, value in mapping.items()
    }


def _lines(script: Any) -> list[str]:
    if script is None:
        return []
    return [script] if isinstance(script, str) else [str(line) for line in script]
