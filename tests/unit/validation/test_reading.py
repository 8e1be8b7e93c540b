"""`canary.validation.reading`: what `canary validate` refuses to read, each by name, unblocked."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path

import pytest
import yaml

from canary.validation import loader, reading
from canary.validation.findings import Finding, Where
from tests.unit.validation.documents import canary, write

# The unprivileged user of Debian and most Linux systems.
NOBODY = 65534


def _lines(paths: list[Path]) -> list[str]:
    return [finding.line() for finding in loader.load(paths).findings]


def test_a_file_over_the_cap_is_refused_unread_and_one_at_the_cap_is_read(tmp_path: Path) -> None:
    body = write(tmp_path / "one.yaml", canary()).read_text()
    at_cap = tmp_path / "at.yaml"
    at_cap.write_text(body + "#" * (reading.MAX_FILE_BYTES - len(body) - 1) + "\n")
    over = tmp_path / "over.yaml"
    over.write_text(at_cap.read_text() + "#")
    assert at_cap.stat().st_size == reading.MAX_FILE_BYTES
    loaded = loader.load([at_cap, over])
    assert len(loaded.inventory.canaries) == 1
    assert [f.line() for f in loaded.findings] == [
        f"{over}: 3,145,729 bytes, over the 3 MiB limit (the API server refuses larger "
        "requests); not read"
    ]


def test_dev_zero_is_refused_by_name_not_read() -> None:
    [line] = _lines([Path("/dev/zero")])
    assert line == "/dev/zero: not a regular file (a character device); not read"


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    """Given by name or found in a folder by its suffix: opened non-blocking, never read."""
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    expected = f"{fifo}: not a regular file (a FIFO); not read"
    assert _lines([fifo]) == [expected]
    assert _lines([tmp_path]) == [expected]


def test_an_unreadable_file_and_folder_are_reported_not_skipped() -> None:
    """Real modes: as root (which reads any mode) the reading runs in a child that drops to the
    unprivileged `nobody`, so CI, which runs as root, checks what a user would."""
    base = Path(tempfile.mkdtemp(prefix="canary-unreadable-"))
    base.chmod(0o755)  # the unprivileged reader must be able to walk into it
    secret = write(base / "secret.yaml", canary())
    locked = base / "locked"
    write(locked / "inside.yaml", canary())
    secret.chmod(0)
    locked.chmod(0)
    try:
        lines = _lines_unprivileged([base])
    finally:
        locked.chmod(0o755)
        shutil.rmtree(base)
    assert lines == [
        f"{locked}: cannot read folder: permission denied",
        f"{secret}: cannot read: permission denied",
    ]


def _lines_unprivileged(paths: list[Path]) -> list[str]:
    """`_lines` as a user without root's override of file modes."""
    if os.geteuid() != 0:
        return _lines(paths)
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe and exits at once
        code = 0
        try:
            os.close(reader)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.write(writer, json.dumps(_lines(paths)).encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(writer)
    with os.fdopen(reader, "rb") as answer:
        found = answer.read()
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the unprivileged reader failed"
    result: list[str] = json.loads(found)
    return result


def test_permission_denied_from_the_calls_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusals made by the calls themselves (as on a filesystem that says no to root)."""
    secret = write(tmp_path / "secret.yaml", canary())
    locked = tmp_path / "locked"
    write(locked / "inside.yaml", canary())
    real_open, real_scandir = os.open, os.scandir

    def refusing_open(path: str | Path, *args: int) -> int:
        if Path(path) == secret:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args)

    def refusing_scandir(path: str | Path) -> object:
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "open", refusing_open)
    monkeypatch.setattr(os, "scandir", refusing_scandir)
    assert _lines([tmp_path]) == [
        f"{locked}: cannot read folder: permission denied",
        f"{secret}: cannot read: permission denied",
    ]


def test_bytes_that_are_not_utf8_name_the_first_bad_byte(tmp_path: Path) -> None:
    file = tmp_path / "latin1.yaml"
    file.write_bytes(b"kind: caf\xe9\n")
    assert _lines([file]) == [f"{file}: not UTF-8 text (byte 10: invalid continuation byte)"]


class _PureLoader(reading.StrictKeys, yaml.SafeLoader):
    """Our loader on PyYAML's pure-Python parser, as where libyaml is not installed."""


@pytest.mark.parametrize("pure", [True, False], ids=["pure-python", "libyaml-if-present"])
def test_deep_nesting_is_refused_with_or_without_libyaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pure: bool
) -> None:
    """PyYAML's pure composer recurses once per level; either way it is one finding, and the
    documents before it are read."""
    if pure:
        monkeypatch.setattr(reading, "Loader", _PureLoader)
    body = write(tmp_path / "one.yaml", canary()).read_text()
    just_fits = "[" * reading.MAX_DEPTH + "]" * reading.MAX_DEPTH
    for depth in (reading.MAX_DEPTH + 1, 5000, 100_000):
        file = tmp_path / f"deep-{depth}.yaml"
        file.write_text(f"{body}---\n{just_fits}\n---\n" + "[" * depth + "]" * depth + "\n")
        loaded = loader.load([file])
        assert len(loaded.inventory.canaries) == 1
        [finding] = loaded.findings[1:]
        assert finding.where == Where(str(file), 3), finding
        assert "nested deeper than 100 levels" in finding.message or (
            # libyaml refuses past its own limit before composing, as a syntax error.
            "maximum nesting depth" in finding.message
        ), finding


def test_aliases_that_expand_beyond_the_cap_are_refused(tmp_path: Path) -> None:
    """The billion laughs: ten levels of ten aliases are 10^10 values once built."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 10):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    file = tmp_path / "laughs.yaml"
    file.write_text("\n".join(lines) + "\n")
    assert _lines([file]) == [
        f"{file}:1: aliases expand this document beyond 1,000,000 values; not read"
    ]


def test_an_alias_that_holds_itself_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "cycle.yaml"
    file.write_text("a: &x [*x]\n")
    assert _lines([file]) == [
        f"{file}:1: an alias refers to a node that holds it (a cycle); not read"
    ]


def test_a_huge_list_of_empty_documents_is_read_in_bounded_time(tmp_path: Path) -> None:
    file = tmp_path / "empty.yaml"
    file.write_text("---\n" * 200_000 + "apiVersion: v1\n")
    loaded = loader.load([file])
    # The first `---` opens document 1, so the last one opens document 200,000.
    assert [f.line() for f in loaded.findings] == [f"{file}:200000: kind: required"]


def test_read_text_gives_the_text_of_a_regular_file(tmp_path: Path) -> None:
    file = tmp_path / "a.yaml"
    file.write_text("a: 1\n")
    assert reading.read_text(file) == "a: 1\n"
    assert isinstance(reading.read_text(tmp_path / "missing.yaml"), Finding)


def test_documents_after_a_refused_one_are_still_read(tmp_path: Path) -> None:
    body = write(tmp_path / "one.yaml", canary()).read_text()
    file = tmp_path / "middle.yaml"
    file.write_text("a: &x [*x]\n---\n" + body)
    loaded = loader.load([file])
    assert len(loaded.inventory.canaries) == 1
    assert [f.where for f in loaded.findings] == [Where(str(file), 1)]


def test_a_value_pyyaml_cannot_build_loses_its_document_only(tmp_path: Path) -> None:
    """`!!int "x"` makes PyYAML's own constructor raise ValueError: one finding, then on."""
    body = write(tmp_path / "one.yaml", canary()).read_text()
    file = tmp_path / "values.yaml"
    file.write_text('a: !!int "x"\n---\n' + body)
    loaded = loader.load([file])
    assert len(loaded.inventory.canaries) == 1
    assert [f.line() for f in loaded.findings] == [
        f"{file}:1: YAML value: invalid literal for int() with base 10: 'x'"
    ]


def test_a_date_is_text_as_the_api_server_reads_it() -> None:
    """Even one that is no date: 2020-02-30 made PyYAML raise, and a traceback follow."""
    assert list(reading.documents("a: 2020-02-30\nb: 2020-02-03\n")) == [
        (1, {"a": "2020-02-30", "b": "2020-02-03"})
    ]


def test_a_socket_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        assert _lines([tmp_path]) == [f"{path}: not a regular file (a socket); not read"]


def test_links_in_a_loop_or_to_nowhere_are_named_and_a_link_to_a_folder_not_entered(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.yaml").symlink_to("b.yaml")
    (tmp_path / "b.yaml").symlink_to("a.yaml")
    (tmp_path / "gone.yaml").symlink_to(tmp_path / "nowhere")
    (tmp_path / "up").symlink_to("..")
    assert _lines([tmp_path]) == [
        f"{tmp_path / 'a.yaml'}: cannot read: too many levels of symbolic links",
        f"{tmp_path / 'b.yaml'}: cannot read: too many levels of symbolic links",
        f"{tmp_path / 'gone.yaml'}: cannot read: no such file or directory",
    ]
