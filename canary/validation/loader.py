"""Read files and folders into an `Inventory`: every YAML document, by file and number.

A folder is read recursively (`*.yaml`, `*.yml`, in sorted order, hidden folders skipped) so a
repository's manifests folder can be checked as it is; `reading` bounds what is read. Documents
are numbered from 1 in the order of the file, empty ones included, so `file:3` is the third
`---`-separated part whatever it holds. A `kind: List` (or `VirtualServiceList` and the like,
as `kubectl get -o yaml` prints them) is unwrapped: each of its items is checked as an object
of its own, placed as `file:3 items[0]`. Nothing here raises for bad input: a YAML syntax error,
an unreadable file or an object that fails its model all become findings, and the rest of the
input is still checked.

Kinds: `canary.dev/*` is parsed by `canary.api.resources.parse`; VirtualService, DestinationRule
and Gateway of `networking.istio.io`, PeerAuthentication of `security.istio.io` and Kubernetes
Services are kept as plain dicts for the cross-checks; Flagger's and Argo Rollouts' objects get a
hint of what to translate them to (`foreign`); any other Kubernetes object (ServiceEntry,
Deployment, ...) is counted and otherwise ignored.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pydantic
import yaml

from canary.api import GROUP, problems, resources
from canary.api.istio import IstioObject
from canary.api.metric_template import MetricTemplate
from canary.api.resources import Canary
from canary.validation import foreign, reading
from canary.validation.findings import Finding, Where
from canary.validation.inventory import Inventory, Placed

ISTIO_GROUP = "networking.istio.io"
ISTIO_VERSIONS = ("v1", "v1beta1", "v1alpha3")
ISTIO_KINDS = ("VirtualService", "DestinationRule", "Gateway", "ServiceEntry")
# Kubernetes Services, which the analysis joins by host for their ports; Pods and Deployments,
# whose labels say whether a subset selects any pod.
INDEXED = {("", "Service"): ("v1",), ("", "Pod"): ("v1",), ("apps", "Deployment"): ("v1",)}
# mTLS policy, read for the mTLS findings.
SECURITY_GROUP = "security.istio.io"
SECURITY_VERSIONS = ("v1", "v1beta1")

_SHAPES = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


@dataclass(slots=True)
class Loaded:
    inventory: Inventory = field(default_factory=Inventory)
    findings: list[Finding] = field(default_factory=list)
    # Non-empty documents by kind ("" for documents that are not Kubernetes objects).
    kinds: collections.Counter[str] = field(default_factory=collections.Counter)
    ignored: int = 0
    # Flagger's and Argo Rollouts' objects, each with its hint among the findings.
    foreign: int = 0


def load(paths: Iterable[Path | str]) -> Loaded:
    loaded = Loaded()
    for file in reading.files(paths, loaded.findings):
        try:
            load_file(file, loaded)
        except Exception as exc:
            # A bug of ours in reading one file must not hide the findings of the others.
            message = f"internal error: {type(exc).__name__}: {exc}"
            loaded.findings.append(Finding(Where(str(file)), "", message))
    return loaded


def load_file(file: Path, loaded: Loaded) -> None:
    name = str(file)
    text = reading.read_text(file)
    if isinstance(text, Finding):
        loaded.findings.append(text)
        return
    number = 0
    try:
        for number, body in reading.documents(text):
            if isinstance(body, reading.TooBig):
                loaded.findings.append(Finding(Where(name, number), "", body.problem))
            elif body is not None:
                _classify(Where(name, number), body, loaded)
    except reading.TooBig as exc:
        # The composer ran out of stack inside that document: the rest of the file is unread.
        loaded.findings.append(Finding(Where(name, exc.number), "", exc.problem))
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
    if _is_list(kind) and "items" in body:
        items = body["items"]
        if isinstance(items, list):
            _add_items(where, items, loaded)
        else:
            loaded.kinds[""] += 1
            loaded.findings.append(Finding(where, "items", "expected a list of objects"))
        return
    hint = foreign.hint(api_version, kind)
    if hint is not None:
        # Not counted among the kinds: the summary's counts are of what was checked.
        loaded.foreign += 1
        loaded.findings.append(Finding(where, "", hint))
        return
    loaded.kinds[kind] += 1
    group, _, version = api_version.rpartition("/")
    if group == GROUP:
        _add_canary_dev(where, body, kind, loaded)
    elif group == ISTIO_GROUP and kind in ISTIO_KINDS:
        _add_istio(where, body, kind, version, loaded)
    elif (group, kind) in INDEXED:
        served = INDEXED[(group, kind)]
        _add_istio(where, body, kind, version, loaded, group=group or "", versions=served)
    elif group == SECURITY_GROUP and kind == "PeerAuthentication":
        _add_istio(
            where, body, kind, version, loaded, group=SECURITY_GROUP, versions=SECURITY_VERSIONS
        )
    else:
        loaded.ignored += 1


def _is_list(kind: str) -> bool:
    # `List`, and the typed lists an API server answers a list request with.
    return kind.endswith("List")


def _add_items(where: Where, items: list[Any], loaded: Loaded) -> None:
    if where.item is not None:
        # kubectl does not unwrap a List inside a List either.
        loaded.kinds[""] += 1
        loaded.findings.append(Finding(where, "", "a List inside a List's items; not unwrapped"))
        return
    for position, item in enumerate(items):
        _classify(replace(where, item=position), item, loaded)


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
        served = ", ".join(f"{group}/{each}" if group else each for each in versions)
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
    # Gateways, Services and policies are only read for the analysis, which reads a missing spec
    # as empty; the objects canary writes to must have one.
    if kind in ("VirtualService", "DestinationRule") and not isinstance(body.get("spec"), dict):
        message = "expected a mapping" if "spec" in body else "required (a mapping)"
        loaded.findings.append(Finding(where, "spec", message))
        return
    inventory = loaded.inventory
    {
        "VirtualService": inventory.virtual_services,
        "DestinationRule": inventory.destination_rules,
        "Gateway": inventory.gateways,
        "ServiceEntry": inventory.service_entries,
        "Service": inventory.services,
        "Pod": inventory.workloads,
        "Deployment": inventory.workloads,
        "PeerAuthentication": inventory.peer_authentications,
    }[kind].append(Placed(where, body))


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
