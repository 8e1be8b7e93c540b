"""Builders of the documents the validation tests feed in, and the places they are read from."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from canary.validation import report
from tests.istiod import samples

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "tests" / "data"
POLICIES = REPO / "policies"


def bookinfo(name: str) -> Path:
    """One of Istio's own Bookinfo samples, read as it is from the istio.io/istio module."""
    return samples.bookinfo_file(name)


def canary(**spec: Any) -> dict[str, Any]:
    """A valid Canary for `web` in namespace `shop`; keyword arguments replace spec sections."""
    body: dict[str, Any] = {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "service": {"host": "web"},
            "stable": {"subset": "v1"},
            "canary": {"subset": "v2"},
            "analysis": {"stepWeights": [10, 50]},
        },
    }
    body["spec"].update(copy.deepcopy(spec))
    return body


def analysis(**fields: Any) -> dict[str, Any]:
    return {"stepWeights": [10, 50], **fields}


def virtual_service(
    name: str = "web", *, namespace: str = "shop", hosts: list[str] | None = None, http: Any = None
) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "hosts": hosts if hosts is not None else [name],
            "http": http if http is not None else [{"route": [destination(name, "v1")]}],
        },
    }


def destination(host: str, subset: str | None, weight: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"destination": {"host": host}}
    if subset is not None:
        entry["destination"]["subset"] = subset
    if weight is not None:
        entry["weight"] = weight
    return entry


def destination_rule(
    name: str = "web", *, namespace: str = "shop", host: str | None = None, **subsets: Any
) -> dict[str, Any]:
    labels = subsets or {"v1": {"version": "v1"}, "v2": {"version": "v2"}}
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "host": host or name,
            "subsets": [{"name": key, "labels": value} for key, value in labels.items()],
        },
    }


def metric_template(
    name: str = "errors", *, namespace: str = "shop", **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "MetricTemplate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "provider": {"prometheus": {"address": "http://prometheus:9090"}},
            "query": "sum(rate(errors{service='{{ service }}'}[{{ interval }}]))",
            **spec,
        },
    }


def write(path: Path, *documents: Any) -> Path:
    """`documents` as one multi-document YAML file at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False), encoding="utf-8")
    return path


def load_all(path: Path) -> list[Any]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def messages(folder: Path, *documents: Any) -> list[str]:
    """`documents` validated together from one file; each finding without its `file:1: `."""
    file = write(folder / "input.yaml", *documents)
    lines = list(report.validate_paths([file]).lines())
    return [line.removeprefix(f"{file}:").partition(": ")[2] for line in lines]
