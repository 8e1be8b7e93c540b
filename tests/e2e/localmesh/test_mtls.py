"""mTLS between real Envoys of the local mesh: what each PeerAuthentication mode lets through.

Three inbound Envoys stand in front of one upstream each, as sidecars: one STRICT, one
PERMISSIVE, one DISABLE, each with its workload certificate from the mesh's CA. A client-side
Envoy programmed by the Pilot calls them as the DestinationRule says (a header picks the
subset). A plaintext caller goes straight at the inbound Envoys, as a pod without a sidecar
would. The evidence is what each caller got and Envoy's own counters, never the Pilot's config.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from canary.localmesh import certs, envoy, identity, pilot, procs
from canary.localmesh.certs import LocalCA
from tests.e2e.pilot.conftest import Upstream

Json = dict[str, Any]
MODES = ("STRICT", "PERMISSIVE", "DISABLE")
SUBSETS = {mode: mode.lower() for mode in MODES}


@dataclass
class World:
    pilot: pilot.Pilot
    client_port: int
    client_admin: str
    inbound: dict[str, tuple[int, str]]  # mode -> (listen port, admin url)
    ids: identity.Identities
    workdir: Path

    def through_client(self, subset: str) -> int:
        """One request through the client-side Envoy to `subset`; its status (503: refused)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.client_port}/", headers={"Host": "demo", "x-subset": subset}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    def push(self, destination_rule: Json) -> None:
        version = self.pilot.push([virtual_service()], [destination_rule])
        deadline = time.monotonic() + 10
        for _ in range(1000):
            applied = self.pilot.applied_version(self.client_admin)
            if applied is not None and applied >= version:
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        pytest.fail(f"the client-side Envoy did not apply version {version}")


def virtual_service() -> Json:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "demo", "namespace": "default"},
        "spec": {
            "hosts": ["demo"],
            "http": [
                {
                    "match": [{"headers": {"x-subset": {"exact": subset}}}],
                    "route": [{"destination": {"host": "demo", "subset": subset}}],
                }
                for subset in SUBSETS.values()
            ],
        },
    }


def destination_rule(tls: str | None) -> Json:
    spec: Json = {
        "host": "demo",
        "subsets": [{"name": s, "labels": {"version": s}} for s in SUBSETS.values()],
    }
    if tls is not None:
        spec["trafficPolicy"] = {"tls": {"mode": tls}}
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "demo", "namespace": "default"},
        "spec": spec,
    }


@pytest.fixture(scope="module")
def world(envoy_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    workdir = tmp_path_factory.mktemp("mtls")
    upstreams = {mode: Upstream(f"demo-{mode.lower()}", mode.lower()) for mode in MODES}
    names = [f"demo-{mode.lower()}" for mode in MODES]
    ids = identity.issue(
        LocalCA.create(workdir / "certs"), namespace="default", service="demo", instances=names
    )
    try:
        with procs.Supervisor(workdir / "logs") as supervisor:
            inbound: dict[str, tuple[int, str]] = {}
            for mode, name in zip(MODES, names, strict=True):
                listen, admin = procs.free_port(), procs.free_port()
                bootstrap = envoy.inbound_bootstrap(
                    listen_port=listen,
                    admin_port=admin,
                    app_port=upstreams[mode].port,
                    name=name,
                    workdir=workdir / name,
                    mtls_mode=mode,
                    identity=ids.instances[name],
                )
                handle = envoy.start_envoy(
                    supervisor, bootstrap, name=name, admin_port=admin, workdir=workdir / name
                )
                inbound[mode] = (listen, handle.admin_url)
            client_port, client_admin = procs.free_port(), procs.free_port()
            programmed = pilot.Pilot(
                xds_dir=workdir / "client-side",
                listener_port=client_port,
                workloads=[
                    pilot.Workload(
                        name=names[i],
                        namespace="default",
                        host="demo",
                        labels={"app": "demo", "version": mode.lower()},
                        address="127.0.0.1",
                        port=inbound[mode][0],
                        spiffe_id=ids.service_id,
                    )
                    for i, mode in enumerate(MODES)
                ],
                mesh_tls=pilot.MeshTls(identity=ids.client),
            )
            client = envoy.start_envoy(
                supervisor,
                programmed.bootstrap(admin_port=client_admin),
                name="client-side",
                admin_port=client_admin,
                workdir=workdir / "client-side",
            )
            yield World(programmed, client_port, client.admin_url, inbound, ids, workdir)
    finally:
        for upstream in upstreams.values():
            upstream.stop()


def plaintext(port: int) -> int | str:
    """A plain HTTP GET straight at an inbound Envoy: its status, or how the connection ended."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/", headers={"Host": "demo"})
        return connection.getresponse().status
    except (ConnectionError, http.client.RemoteDisconnected) as exc:
        return type(exc).__name__
    finally:
        connection.close()


def mutual(port: int, issued: certs.Issued, *, alpn: str = "istio-http/1.1") -> int | str:
    """An HTTPS GET straight at an inbound Envoy with a client certificate (or none)."""
    context = ssl.create_default_context(cafile=str(issued.root))
    context.check_hostname = False  # a SPIFFE identity has no DNS name to check
    context.load_cert_chain(str(issued.cert_chain), str(issued.private_key))
    context.set_alpn_protocols([alpn])
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context)
    try:
        connection.request("GET", "/", headers={"Host": "demo"})
        return connection.getresponse().status
    except (ConnectionError, ssl.SSLError, http.client.RemoteDisconnected) as exc:
        return type(exc).__name__
    finally:
        connection.close()


def counter(admin_url: str, name: str) -> int:
    with urllib.request.urlopen(f"{admin_url}/stats?format=json", timeout=5) as response:
        stats = json.loads(response.read())["stats"]
    return sum(int(s.get("value", 0)) for s in stats if str(s.get("name", "")).endswith(name))


def test_strict_refuses_plaintext_and_counts_it(world: World) -> None:
    port, admin = world.inbound["STRICT"]
    before = counter(admin, "no_filter_chain_match")
    assert plaintext(port) != 200
    assert counter(admin, "no_filter_chain_match") == before + 1


def test_strict_accepts_the_mesh_certificate_and_no_other(world: World, tmp_path: Path) -> None:
    port, admin = world.inbound["STRICT"]
    assert mutual(port, world.ids.client) == 200
    stranger = certs.LocalCA.create(tmp_path / "other").issue(
        "stranger", uris=(world.ids.client_id,)
    )
    before = counter(admin, "ssl.connection_error")
    assert mutual(port, stranger) != 200
    assert counter(admin, "ssl.connection_error") > before


def test_permissive_takes_both(world: World) -> None:
    port, _ = world.inbound["PERMISSIVE"]
    assert plaintext(port) == 200
    assert mutual(port, world.ids.client) == 200


def test_disable_takes_plaintext_only(world: World) -> None:
    port, _ = world.inbound["DISABLE"]
    assert plaintext(port) == 200
    assert mutual(port, world.ids.client) != 200


def test_istio_mutual_reaches_strict_and_permissive_not_disable(world: World) -> None:
    world.push(destination_rule("ISTIO_MUTUAL"))
    handshakes = "outbound|80|strict|demo.default.svc.cluster.local.ssl.handshake"
    before = counter(world.client_admin, handshakes)
    assert world.through_client("strict") == 200
    assert world.through_client("permissive") == 200
    assert world.through_client("disable") == 503
    assert counter(world.client_admin, handshakes) > before


def test_tls_disable_against_strict_fails_as_in_istio(world: World) -> None:
    world.push(destination_rule("DISABLE"))
    assert world.through_client("strict") == 503
    assert world.through_client("permissive") == 200
    assert world.through_client("disable") == 200


def test_auto_mtls_sends_mtls_to_every_sidecar(world: World) -> None:
    """No tls: auto mTLS (no PeerAuthentication: PERMISSIVE namespace) sends mTLS, which the
    DISABLE workload refuses, as in Istio when a workload policy disables mTLS."""
    world.push(destination_rule(None))
    assert world.through_client("strict") == 200
    assert world.through_client("permissive") == 200
    assert world.through_client("disable") == 503


def test_a_changed_mode_reaches_the_running_inbound_envoy(world: World) -> None:
    """A PeerAuthentication turned STRICT and back: the listener file changes, Envoy follows."""
    port, _ = world.inbound["PERMISSIVE"]
    name = "demo-permissive"
    workdir, issued = world.workdir / name, world.ids.instances[name]
    try:
        envoy.set_inbound_mode(workdir, "STRICT", issued, version=2)
        assert _eventually(lambda: plaintext(port) != 200)
        assert mutual(port, world.ids.client) == 200
    finally:
        envoy.set_inbound_mode(workdir, "PERMISSIVE", issued, version=3)
    assert _eventually(lambda: plaintext(port) == 200)


def _eventually(check: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    for _ in range(200):
        if check():
            return True
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return False
