"""Builders for the Pilot tests: workloads, VirtualServices and DestinationRules as plain dicts."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from canary.localmesh import pilot
from tests.istiod import samples

Json = dict[str, Any]


DEMO = "demo.default.svc.cluster.local"


def cluster(subset: str = "", *, host: str = DEMO, port: int = 80) -> str:
    return f"outbound|{port}|{subset}|{host}"


def sample(name: str) -> list[Json]:
    """The documents of one Bookinfo sample file, unchanged."""
    path = samples.bookinfo_file(name)
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def sample_names() -> list[str]:
    """Every sample file holding a VirtualService or a DestinationRule."""
    folder = samples.bookinfo()
    if not folder.is_dir():
        pytest.fail(f"Istio's Bookinfo samples are missing: {folder}")
    return sorted(
        path.name
        for path in folder.glob("*.yaml")
        if any(
            doc.get("kind") in ("VirtualService", "DestinationRule")
            for doc in yaml.safe_load_all(path.read_text())
            if doc
        )
    )


def bookinfo_workloads() -> list[pilot.Workload]:
    versions = {
        "productpage": ["v1"],
        "reviews": ["v1", "v2", "v3"],
        "ratings": ["v1", "v2", "v2-mysql", "v2-mysql-vm"],
        "details": ["v1", "v2"],
    }
    return [
        pilot.Workload(
            name=f"{host}-{version}",
            namespace="default",
            host=host,
            labels={"app": host, "version": version},
            address="127.0.0.1",
            port=20000 + index,
        )
        for index, (host, version) in enumerate(
            (host, version) for host, found in versions.items() for version in found
        )
    ]


def demo_workloads(*versions: str, per_version: int = 1) -> list[pilot.Workload]:
    return [
        pilot.Workload(
            name=f"demo-{version}-{n}",
            namespace="default",
            host="demo",
            labels={"app": "demo", "version": version},
            address="127.0.0.1",
            port=30000 + 10 * index + n,
        )
        for index, version in enumerate(versions or ("v1", "v2"))
        for n in range(per_version)
    ]


def virtual_service(*http: Json, name: str = "demo", **spec: Any) -> Json:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"hosts": ["demo"], "http": list(http), **spec},
    }


def destination_rule(*, subsets: tuple[str, ...] = ("v1", "v2"), **spec: Any) -> Json:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "demo", "namespace": "default"},
        "spec": {
            "host": "demo",
            "subsets": [{"name": s, "labels": {"version": s}} for s in subsets],
            **spec,
        },
    }


def to(*subsets_and_weights: tuple[str, int | None]) -> list[Json]:
    """An HTTPRoute's `route` list: ("v1", 90), ("v2", 10); a None weight is left out."""
    out: list[Json] = []
    for subset, weight in subsets_and_weights:
        entry: Json = {"destination": {"host": "demo", "subset": subset}}
        if weight is not None:
            entry["weight"] = weight
        out.append(entry)
    return out


def translate(
    *objects: Json, workloads: list[pilot.Workload] | None = None
) -> pilot.EnvoyResources:
    return pilot.translate(
        [o for o in objects if o["kind"] == "VirtualService"],
        [o for o in objects if o["kind"] == "DestinationRule"],
        workloads if workloads is not None else demo_workloads(),
    )


def refusals(*objects: Json, workloads: list[pilot.Workload] | None = None) -> tuple[str, ...]:
    with pytest.raises(pilot.TranslationError) as raised:
        translate(*objects, workloads=workloads)
    return raised.value.problems


def routes(resources: pilot.EnvoyResources, host: str = "demo") -> list[Json]:
    return list(resources.virtual_host(host)["routes"])
