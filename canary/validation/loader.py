"""Read files and folders into an `Inventory`: every YAML document, by file and number.

A folder is read recursively (`*.yaml`, `*.yml`, in sorted order, hidden folders skipped) so a
repository's manifests folder can be checked as it is. Documents are numbered from 1 in the
order of the file, empty ones included, so `file:3` is the third `---`-separated part whatever
it holds. Nothing here raises for bad input: a YAML syntax error, an unreadable file or an object
that fails its model all become findings, and the rest of the input is still checked.

Kinds: `canary.dev/*` is parsed by `canary.api.resources.parse`; VirtualService and
DestinationRule of `networking.istio.io`, and PeerAuthentication of `security.istio.io`, are
kept as plain dicts for the cross-checks; any other Kubernetes object (Gateway, ServiceEntry,
Deployment, ...) is counted and otherwise ignored.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import yaml

from canary.api import GROUP, problems, resources
from canary.api.istio import IstioObject
from canary.api.metric_template import MetricTemplate
from canary.api.resources import Canary
from canary.validation.findings import Finding, Where
from canary.validation.inventory import Inventory, Placed

ISTIO_GROUP = "networking.istio.io"
ISTIO_VERSIONS = ("v1", "v1beta1", "v1alpha3")
ISTIO_KINDS = ("VirtualService", "DestinationRule")
SECURITY_GROUP = "security.istio.io"
SECURITY_VERSIONS = ("v1", "v1beta1")
SUFFIXES = (".yaml", ".yml")

_SHAPES = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """The fast safe loader, strict about duplicate keys as the API server is.

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


@dataclass(slots=True)
class Loaded:
    inventory: Inventory = field(default_factory=Inventory)
    findings: list[Finding] = field(default_factory=list)
    # Non-empty documents by kind ("" for documents that are not Kubernetes objects).
    kinds: collections.Counter[str] = field(default_factory=collections.Counter)
    ignored: int = 0


def load(paths: Iterable[Path | str]) -> Loaded:
    loaded = Loaded()
    for file in files(paths, loaded.findings):
        load_file(file, loaded)
    return loaded


def files(paths: Iterable[Path | str], findings: list[Finding]) -> Iterator[Path]:
    """The files to read, each once, in the order given; folders expanded and sorted."""
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(
                (
                    candidate
                    for candidate in path.rglob("*")
                    if candidate.suffix in SUFFIXES
                    and candidate.is_file()
                    and not _hidden(candidate.relative_to(path))
                ),
                key=lambda candidate: candidate.as_posix(),
            )
            if not found:
                findings.append(Finding(Where(str(path)), "", "no *.yaml or *.yml files here"))
        elif path.exists():
            found = [path]
        else:
            findings.append(Finding(Where(str(path)), "", "no such file or folder"))
            continue
        for file in found:
            real = file.resolve()
            if real not in seen:
                seen.add(real)
                yield file


def load_file(file: Path, loaded: Loaded) -> None:
    name = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        loaded.findings.append(Finding(Where(name), "", f"cannot read: {exc}"))
        return
    number = 0
    try:
        for number, body in enumerate(yaml.load_all(text, Loader=_Loader), start=1):
            if body is not None:
                _classify(Where(name, number), body, loaded)
    except yaml.YAMLError as exc:
        # The stream cannot be resumed after a syntax error: the rest of the file is unread.
        loaded.findings.append(Finding(Where(name, number + 1), "", _syntax(exc)))


def _classify(where: Where, body: Any, loaded: Loaded) -> None:
    try:
        _add(where, body, loaded)
    except Exception as exc:
        # A bug of ours must not hide the findings of every other document.
        loaded.findings.append(Finding(where, "", f"internal error: {type(exc).__name__}: {exc}"))


def _add(where: Where, body: Any, loaded: Loaded) -> None:
    api_version = body.get("apiVersion") if isinstance(body, dict) else None
    kind = body.get("kind") if isinstance(body, dict) else None
    if not isinstance(api_version, str) or not isinstance(kind, str):
        loaded.kinds[""] += 1
        loaded.findings.append(_not_an_object(where, body, api_version, kind))
        return
    loaded.kinds[kind] += 1
    group, _, version = api_version.rpartition("/")
    if group == GROUP:
        _add_canary_dev(where, body, kind, loaded)
    elif group == ISTIO_GROUP and kind in ISTIO_KINDS:
        _add_istio(where, body, kind, version, loaded)
    elif group == SECURITY_GROUP and kind == "PeerAuthentication":
        _add_istio(
            where, body, kind, version, loaded, group=SECURITY_GROUP, versions=SECURITY_VERSIONS
        )
    else:
        loaded.ignored += 1


def _add_canary_dev(where: Where, body: dict[str, Any], kind: str, loaded: Loaded) -> None:
    try:
        parsed = resources.parse(body)
    except pydantic.ValidationError as exc:
        for problem in problems.problems(exc, resources.KINDS.get(kind)):
            loaded.findings.append(Finding(where, problem.path, problem.message))
        return
    except ValueError as exc:
        loaded.findings.append(Finding(where, "", str(exc)))
        return
    if isinstance(parsed, Canary):
        loaded.inventory.canaries.append(Placed(where, parsed))
    elif isinstance(parsed, MetricTemplate):
        loaded.inventory.templates.append(Placed(where, parsed))
    else:
        loaded.inventory.chat_providers.append(Placed(where, parsed))


def _add_istio(
    where: Where,
    body: IstioObject,
    kind: str,
    version: str,
    loaded: Loaded,
    *,
    group: str = ISTIO_GROUP,
    versions: tuple[str, ...] = ISTIO_VERSIONS,
) -> None:
    if version not in versions:
        served = ", ".join(f"{group}/{each}" for each in versions)
        loaded.findings.append(
            Finding(where, "apiVersion", f"{body['apiVersion']!r} is not served (use {served})")
        )
        return
    metadata = body.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
        loaded.findings.append(Finding(where, "metadata.name", "required (a string)"))
        return
    if "namespace" in metadata and not isinstance(metadata["namespace"], str):
        loaded.findings.append(Finding(where, "metadata.namespace", "expected a string"))
        return
    if not isinstance(body.get("spec"), dict):
        message = "expected a mapping" if "spec" in body else "required (a mapping)"
        loaded.findings.append(Finding(where, "spec", message))
        return
    if kind == "VirtualService":
        loaded.inventory.virtual_services.append(Placed(where, body))
    elif kind == "PeerAuthentication":
        loaded.inventory.peer_authentications.append(Placed(where, body))
    else:
        loaded.inventory.destination_rules.append(Placed(where, body))


def _not_an_object(where: Where, body: Any, api_version: Any, kind: Any) -> Finding:
    if isinstance(body, dict) and (isinstance(api_version, str) or isinstance(kind, str)):
        # Half an object header is a typo in an object, so point at the missing key.
        return Finding(where, "kind" if isinstance(api_version, str) else "apiVersion", "required")
    shape = _SHAPES.get(type(body), type(body).__name__)
    what = "a mapping without apiVersion and kind" if isinstance(body, dict) else shape
    return Finding(where, "", f"{what}, not a Kubernetes object")


def _syntax(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        what = ", ".join(part for part in (exc.context, exc.problem) if part)
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            return f"YAML syntax: {what} (line {mark.line + 1}, column {mark.column + 1})"
        return f"YAML syntax: {what}"
    return f"YAML syntax: {exc}"


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)
