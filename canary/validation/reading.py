"""Bounded reading: the files under the given paths, their text, and their YAML documents.

`canary validate` runs on whatever a repository holds, and in CI on whatever a pull request
adds, so nothing here trusts its input to be small, finite or well-formed:
- A file is opened without blocking (a FIFO would otherwise wait forever for a writer) and
  must be a regular file; devices, FIFOs and sockets are refused by name, never read.
- A file over `MAX_FILE_BYTES` is refused unread. The API server refuses a request over about
  3 MB (etcd's request limit), so no object it would accept comes from a larger file.
- A folder that cannot be listed, or a file that cannot be opened, is a finding, never skipped.
- A document nested deeper than `MAX_DEPTH`, or that aliases expand beyond `MAX_VALUES` values
  (the "billion laughs"), is refused before it is built into Python objects. PyYAML's pure
  loader recurses once per level, so a deep document without libyaml raises RecursionError:
  that is the same finding.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from canary.validation.findings import Finding, Where

MAX_FILE_BYTES = 3 * 1024 * 1024
MAX_DEPTH = 100
MAX_VALUES = 1_000_000
SUFFIXES = (".yaml", ".yml")

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_NOT_REGULAR = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a folder"),
)


class StrictKeys(yaml.constructor.SafeConstructor):
    """Strict about duplicate keys, as the API server is.

    PyYAML keeps the last of two equal keys, so a second `analysis:` would silently replace the
    first; `kubectl apply` refuses such a file, and so do we.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is not None and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


class Loader(StrictKeys, _BaseLoader):  # type: ignore[misc,valid-type]
    """The fast safe loader (libyaml's, where installed), strict about duplicate keys."""


def _timestamp_as_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


# The API server reads YAML into JSON, where an unquoted 2020-02-03 is a string; PyYAML would make
# it a date (and raise on 2020-02-30).
StrictKeys.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


def files(paths: Iterable[Path | str], findings: list[Finding]) -> Iterator[Path]:
    """The files to read, each once, in the order given; folders expanded and sorted.

    In a folder, `*.yaml` and `*.yml` entries are taken whatever they are (a FIFO so named is
    refused when read, not passed over), hidden folders and files are skipped, and folders
    reached through a symbolic link are not entered (a link to `..` would never end).
    """
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = _walk(path, findings)
            if not found and os.access(path, os.R_OK | os.X_OK):
                findings.append(Finding(Where(str(path)), "", "no *.yaml or *.yml files here"))
        elif path.exists() or path.is_symlink():
            found = [path]
        else:
            findings.append(Finding(Where(str(path)), "", "no such file or folder"))
            continue
        for file in found:
            # realpath, unlike Path.resolve, does not raise on a loop of symbolic links.
            real = Path(os.path.realpath(file))
            if real not in seen:
                seen.add(real)
                yield file


def _walk(root: Path, findings: list[Finding]) -> list[Path]:
    def refused(exc: OSError) -> None:
        where = exc.filename if isinstance(exc.filename, str) else str(root)
        findings.append(Finding(Where(where), "", f"cannot read folder: {_reason(exc)}"))

    found: list[Path] = []
    for folder, subfolders, names in os.walk(root, onerror=refused):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        found += (
            Path(folder, name)
            for name in names
            if name.endswith(SUFFIXES) and not name.startswith(".")
        )
    return sorted(found, key=lambda file: file.as_posix())


def read_text(file: Path) -> str | Finding:
    """The file's text, or the finding that says why it was not read."""
    where = Where(str(file))
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
        descriptor = os.open(file, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        # A socket cannot be opened at all (ENXIO); name it as what it is.
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(os.stat(file).st_mode):
                return _not_regular(where, "a socket")
        return Finding(where, "", f"cannot read: {_reason(exc)}")
    with os.fdopen(descriptor, "rb") as stream:
        mode = os.fstat(descriptor)
        for test, what in _NOT_REGULAR:
            if test(mode.st_mode):
                return _not_regular(where, what)
        if mode.st_size > MAX_FILE_BYTES:
            return _too_large(where, mode.st_size)
        try:
            # One byte more than the cap shows a file that grew since fstat.
            data = stream.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            return Finding(where, "", f"cannot read: {_reason(exc)}")
    if len(data) > MAX_FILE_BYTES:
        return _too_large(where, len(data))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Finding(where, "", f"not UTF-8 text (byte {exc.start + 1}: {exc.reason})")


def documents(text: str) -> Iterator[tuple[int, Any]]:
    """(number, body) of each document, from 1, empty ones included as None.

    A document refused for its depth or size comes as a `TooBig` body, and the documents
    after it are still read. Raises yaml.YAMLError for a syntax error, and `TooBig` when the
    pure-Python composer ran out of stack: neither stream can be resumed.
    """
    # The mixin comes first in the bases, so mypy reads its argument-less constructor.
    loader = Loader(text)  # type: ignore[call-arg]
    number = 0
    try:
        while loader.check_node():
            number += 1
            try:
                node = loader.get_node()
            except RecursionError:
                raise TooBig(number, _deep()) from None
            problem = _too_big(node)
            if problem:
                yield number, TooBig(number, problem)
                continue
            try:
                body = loader.construct_document(node)
            except yaml.YAMLError:
                raise
            except (ValueError, TypeError, OverflowError) as exc:
                # A constructor of PyYAML's own that raised: that document alone is lost.
                _reset(loader)
                yield number, TooBig(number, f"YAML value: {exc}")
                continue
            yield number, body
    finally:
        loader.dispose()


def _reset(loader: Any) -> None:
    """What `construct_document` clears when it succeeds, so the next document starts clean."""
    loader.state_generators = []
    loader.constructed_objects = {}
    loader.recursive_objects = {}
    loader.deep_construct = False


class TooBig(Exception):
    def __init__(self, number: int, problem: str) -> None:
        super().__init__(problem)
        self.number = number
        self.problem = problem


def _too_big(root: yaml.Node | None) -> str | None:
    """Why a composed document is refused, or None; without recursion, aliases counted once
    per use (the size that building it would reach), a cycle of aliases refused outright.
    Depth counts sequences and mappings; scalars are counted inline, being most of the nodes."""
    if root is None or isinstance(root, yaml.ScalarNode):
        return None
    sizes: dict[int, int] = {}
    heights: dict[int, int] = {}
    on_path: set[int] = set()
    # (node, depth, children visited?)
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            size, height = 1, 0
            for child in _children(node):
                if isinstance(child, yaml.ScalarNode):
                    size += 1
                else:
                    size += sizes[id(child)]
                    height = max(height, heights[id(child)])
            if size > MAX_VALUES:
                return f"aliases expand this document beyond {MAX_VALUES:,} values; not read"
            sizes[key] = size
            heights[key] = height + 1
            continue
        if key in on_path:
            return "an alias refers to a node that holds it (a cycle); not read"
        # A node seen before (an alias) counts its whole height again wherever it is used.
        if depth + heights.get(key, 1) - 1 > MAX_DEPTH:
            return _deep()
        if key in sizes:
            continue
        on_path.add(key)
        stack.append((node, depth, True))
        stack += (
            (child, depth + 1, False)
            for child in _children(node)
            if not isinstance(child, yaml.ScalarNode)
        )
    return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return [part for pair in node.value for part in pair]


def _deep() -> str:
    return f"nested deeper than {MAX_DEPTH} levels; not read"


def _not_regular(where: Where, what: str) -> Finding:
    return Finding(where, "", f"not a regular file ({what}); not read")


def _too_large(where: Where, size: int) -> Finding:
    limit = MAX_FILE_BYTES // (1024 * 1024)
    return Finding(
        where,
        "",
        f"{size:,} bytes, over the {limit} MiB limit (the API server refuses larger "
        "requests); not read",
    )


def _reason(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()
