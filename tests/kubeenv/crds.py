"""Installing CustomResourceDefinitions into a test API server, and waiting until they serve.

A CRD is usable only once it is Established and discovery serves its group and version: the
API server accepts the object at once, and clients build their REST mappings from discovery.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

import yaml

from tests.kubeenv import cluster


def install(
    kube: cluster.KubeCluster,
    paths: Iterable[Path],
    *,
    groups: Collection[str] | None = None,
    timeout: float = 120.0,
) -> list[str]:
    """Creates the CRDs in `paths`, waits until each is Established and discoverable.

    Only the CRDs of `groups`, when given; returns the names of those installed. Created, not
    applied: client-side apply copies each object into an annotation limited to 256 KiB, which
    Istio's larger CRDs overflow. A CRD that already exists is left as it is.
    """
    crds: list[dict[str, Any]] = [
        doc
        for path in paths
        for doc in yaml.safe_load_all(path.read_text())
        if doc
        and doc.get("kind") == "CustomResourceDefinition"
        and (groups is None or doc["spec"]["group"] in groups)
    ]
    if not crds:
        raise cluster.ClusterError(
            f"no CustomResourceDefinition of {groups or 'any group'} to install"
        )
    deadline = time.monotonic() + timeout
    listing = {"apiVersion": "v1", "kind": "List", "items": crds}
    result = kube.kubectl("create", "--filename=-", input=json.dumps(listing), timeout=timeout)
    refused = [
        line
        for line in result.stderr.splitlines()
        if line.strip() and "(AlreadyExists)" not in line
    ]
    if result.returncode != 0 and refused:
        raise cluster.ClusterError(f"creating CRDs failed: {' '.join(refused)}")
    pending = {crd["metadata"]["name"] for crd in crds}

    def established() -> str | None:
        for name in sorted(pending):
            status, body = kube.request(
                "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
            )
            # A new CRD's status may hold `conditions: null` until the controller sets them.
            conditions = (body.get("status") or {}).get("conditions") or [] if status == 200 else []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                pending.discard(name)
        return f"not Established: {', '.join(sorted(pending))}" if pending else None

    cluster.poll("the CRDs to be Established", established, timeout=deadline - time.monotonic())

    # Established comes first; discovery serves the resource a moment later.
    wanted: dict[str, set[str]] = {}
    for crd in crds:
        for version in crd["spec"]["versions"]:
            if version.get("served", True):
                group_version = f"{crd['spec']['group']}/{version['name']}"
                wanted.setdefault(group_version, set()).add(crd["spec"]["names"]["plural"])

    def discoverable() -> str | None:
        for group_version, plurals in sorted(wanted.items()):
            status, body = kube.request("GET", f"/apis/{group_version}")
            served = {r["name"] for r in body.get("resources", [])} if status == 200 else set()
            if not plurals <= served:
                return f"{group_version} does not serve {', '.join(sorted(plurals - served))}"
        return None

    cluster.poll("discovery to serve the CRDs", discoverable, timeout=deadline - time.monotonic())
    return [crd["metadata"]["name"] for crd in crds]
