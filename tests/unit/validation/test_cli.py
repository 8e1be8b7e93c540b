"""`canary validate` end to end: exit codes, one line per problem, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner

from canary.cli import main
from tests.unit.validation.documents import DATA, POLICIES, REPO

BROKEN = DATA / "broken"


def test_every_example_policy_validates() -> None:
    result = CliRunner().invoke(main, ["validate", str(POLICIES)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "0 problems" in result.stderr


def test_each_broken_canary_gives_exactly_one_line_naming_its_field() -> None:
    """tests/data/broken holds one mistake per file; each is found, and nothing else."""
    files = sorted(BROKEN.glob("*.yaml"))
    assert len(files) >= 10
    result = CliRunner().invoke(main, ["validate", str(BROKEN.relative_to(REPO))])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.stdout.splitlines()
    assert len(lines) == len(files)
    for file, line in zip(files, lines, strict=True):
        assert line.startswith(f"{file.relative_to(REPO)}:1: spec."), line


def test_any_input_gives_findings_and_never_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "scalar.yaml").write_text("just a string\n")
    (tmp_path / "tabs.yaml").write_text("a:\n\tb: 1\n")
    (tmp_path / "spec.yaml").write_text(
        "apiVersion: canary.dev/v1alpha1\nkind: Canary\nmetadata: 3\nspec: [1]\n"
    )
    (tmp_path / "vs.yaml").write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec: 7\n"
    )
    (tmp_path / "anchors.yaml").write_text("a: &x [*x]\n")
    result = CliRunner().invoke(main, ["validate", str(tmp_path), str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    stdout = result.stdout
    for name in ("binary.yaml", "scalar.yaml", "tabs.yaml", "spec.yaml", "vs.yaml", "missing"):
        assert name in stdout
    assert "empty.yaml" not in stdout


def test_unbounded_and_hostile_input_is_refused_by_name_without_a_traceback(
    tmp_path: Path,
) -> None:
    """/dev/zero, a FIFO, a file over the cap, deep nesting, and a control character in a name."""
    os.mkfifo(tmp_path / "pipe.yaml")
    (tmp_path / "big.yaml").write_bytes(b"#" * (3 * 1024 * 1024 + 1))
    (tmp_path / "deep.yaml").write_text("[" * 5000 + "]" * 5000)
    (tmp_path / "esc\x1b[31m.yaml").write_text("[1]\n")
    result = CliRunner().invoke(main, ["validate", "/dev/zero", str(tmp_path)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.stdout.splitlines()
    assert all(line.isprintable() for line in lines)
    assert lines[0] == "/dev/zero: not a regular file (a character device); not read"
    assert any("big.yaml: 3,145,729 bytes, over the 3 MiB limit" in line for line in lines)
    assert any("pipe.yaml: not a regular file (a FIFO)" in line for line in lines)
    assert any("deep.yaml:1: " in line for line in lines)
    assert any("esc\\x1b[31m.yaml:1: a list" in line for line in lines)
    assert len(lines) == 5
