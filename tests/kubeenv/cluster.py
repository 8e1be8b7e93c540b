"""A throwaway Kubernetes API server: etcd and kube-apiserver on loopback, and nothing else.

No controller-manager, scheduler or kubelet runs, so Deployments get no ReplicaSets and no status
(a test patches `deployments/status`), nothing is garbage-collected, and a deleted namespace
never finishes terminating (hence a fresh namespace per test). Each server binds 127.0.0.1 on a
free port, runs in its own process group under a `procs.Supervisor` (so an atexit hook or SIGTERM
still stops it) and writes its log into a temporary working directory that `stop()` removes once
both are gone.

Four identities authenticate by bearer token. The admin is in `system:masters`, which bypasses
RBAC. The controller carries exactly the user name and groups that the API server gives the
ServiceAccount `canary-system/canary`, so RBAC judges it by the bindings in `deploy/` as it
would judge the controller's Pod; tokens keep that identity without a token controller. A
viewer and an operator are people using the `canary` command, with no rights until a test binds
them a role (deploy/rbac-users.yaml's canary-viewer and canary-operator).

TLS: with `--cert-dir` and no certificate of ours, kube-apiserver writes a self-signed serving
certificate followed by the CA that signed it (`apiserver.crt`); both clients trust that file.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import secrets
import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from canary.localmesh import procs

ADMIN_USER = "canary-test-admin"
CONTROLLER_USER = "system:serviceaccount:canary-system:canary"
CONTROLLER_GROUPS = (
    "system:serviceaccounts",
    "system:serviceaccounts:canary-system",
    "system:authenticated",
)
# People who use the `canary` command: RBAC holds them to whatever a test binds to them (the
# roles of deploy/rbac-users.yaml: canary-viewer and canary-operator).
VIEWER_USER = "canary-test-viewer"
OPERATOR_USER = "canary-test-operator"
PEOPLE_GROUPS = ("system:authenticated",)

# Ready in 3-4 s on 2 idle cores, 5-7 s at a load average of 5; the margin is for worse.
READY_TIMEOUT = 180.0
# What a controller under test watches, by collection path: cleared from a test's namespace
# after the test, since without a namespace controller it would otherwise outlive the test and
# be seen by the next test's cluster-wide watches.
TEST_COLLECTIONS = (
    "/apis/canary.dev/v1alpha1/namespaces/{namespace}/canaries",
    "/apis/canary.dev/v1alpha1/namespaces/{namespace}/metrictemplates",
    "/apis/canary.dev/v1alpha1/namespaces/{namespace}/chatproviders",
    "/apis/networking.istio.io/v1/namespaces/{namespace}/virtualservices",
    "/apis/networking.istio.io/v1/namespaces/{namespace}/destinationrules",
    "/apis/apps/v1/namespaces/{namespace}/deployments",
)


class ClusterError(Exception):
    """The API server did not start, refused a setup step, or never reached a wanted state."""


@dataclass(eq=False)
class KubeCluster:
    """A running API server and how to reach it as the admin or as the controller."""

    url: str
    ca_file: Path
    admin_kubeconfig: Path
    controller_kubeconfig: Path
    viewer_kubeconfig: Path
    operator_kubeconfig: Path
    workdir: Path
    apiserver_log: Path
    etcd_log: Path
    admin_token: str = field(repr=False)
    controller_token: str = field(repr=False)
    kubectl_path: str
    # From starting etcd to the API server serving namespace `default`.
    startup_seconds: float
    _cleanup: contextlib.ExitStack = field(repr=False)
    # What `restart_apiserver` needs: the supervisor that owns both servers and the running
    # kube-apiserver, whose own argv starts its successor (same port, certificates, etcd).
    _supervisor: procs.Supervisor | None = field(default=None, repr=False)
    _apiserver: procs.Process | None = field(default=None, repr=False)
    apiserver_restarts: int = 0

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        as_controller: bool = False,
        check: bool = False,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Runs the machine's kubectl against this server as the admin or the controller.

        With `check`, a non-zero exit raises `ClusterError` carrying kubectl's stderr.
        """
        kubeconfig = self.controller_kubeconfig if as_controller else self.admin_kubeconfig
        # Our own discovery cache: ~/.kube/cache is shared by every run on this machine.
        argv = [
            self.kubectl_path,
            f"--kubeconfig={kubeconfig}",
            f"--cache-dir={self.workdir / 'kubectl-cache'}",
            *args,
        ]
        try:
            result = subprocess.run(
                argv,
                input=input,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(f"kubectl {' '.join(args)} took more than {timeout:g} s") from exc
        if check and result.returncode != 0:
            raise ClusterError(
                f"kubectl {' '.join(args)} exited with {result.returncode}: {result.stderr.strip()}"
            )
        return result

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        as_controller: bool = False,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> tuple[int, Any]:
        """One HTTP request to the API server; (status, decoded JSON body or text)."""
        token = self.controller_token if as_controller else self.admin_token
        return _request(
            method,
            path,
            body,
            url=self.url,
            ca_file=self.ca_file,
            token=token,
            content_type=content_type,
            timeout=timeout,
        )

    def can_i(
        self, verb: str, resource: str, *, namespace: str | None = None, as_controller: bool = True
    ) -> bool:
        """Whether RBAC lets the identity do `verb` on `resource` (everywhere by default)."""
        scope = ["--namespace", namespace] if namespace else ["--all-namespaces"]
        result = self.kubectl("auth", "can-i", verb, resource, *scope, as_controller=as_controller)
        # kubectl answers "no" with exit code 1; anything else is a real failure.
        if result.returncode not in (0, 1):
            raise ClusterError(f"kubectl auth can-i failed: {result.stderr.strip()}")
        return result.returncode == 0

    def create_namespace(self, name: str) -> None:
        status, body = self.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
        if status != 201:
            raise ClusterError(f"creating namespace {name}: {status} {body}")

    def clear_namespace(self, name: str) -> None:
        """Deletes what tests create in a namespace, finalizers included, then the namespace.

        The namespace itself stays Terminating for good: that needs a controller-manager.
        """
        for template in TEST_COLLECTIONS:
            collection = template.format(namespace=name)
            self.request("DELETE", collection)
            # A controller under test may have added finalizers; nobody is left to remove them.
            status, listed = self.request("GET", collection)
            for item in listed.get("items", []) if status == 200 else []:
                self.request(
                    "PATCH",
                    f"{collection}/{item['metadata']['name']}",
                    {"metadata": {"finalizers": None}},
                    content_type="application/merge-patch+json",
                )
        self.request("DELETE", f"/api/v1/namespaces/{name}")

    def stop_apiserver(self, *, grace: float = 10.0) -> None:
        """Stops kube-apiserver alone (SIGTERM to its process group, SIGKILL after `grace`);
        etcd keeps running with everything stored."""
        if self._apiserver is None:
            raise ClusterError("this cluster was not started by start(); it cannot restart")
        self._apiserver.stop(grace=grace)

    def start_apiserver(self, *, timeout: float = READY_TIMEOUT) -> float:
        """Starts kube-apiserver again with the flags it had: the same port, certificate dir
        (so clients keep trusting it), tokens and etcd. Returns the seconds until it served
        namespace `default` again; the earlier run's log is kept beside the new one."""
        if self._apiserver is None or self._supervisor is None:
            raise ClusterError("this cluster was not started by start(); it cannot restart")
        if self._apiserver.group_alive():
            raise ClusterError("kube-apiserver is still running; stop_apiserver() first")
        began = time.monotonic()
        self.apiserver_restarts += 1
        previous = self.apiserver_log.with_name(f"kube-apiserver.{self.apiserver_restarts}.log")
        with contextlib.suppress(OSError):
            self.apiserver_log.rename(previous)
        argv = self._apiserver.popen.args
        if not isinstance(argv, list):
            raise ClusterError(f"kube-apiserver was started from {argv!r}, not an argv list")
        apiserver = self._supervisor.start("kube-apiserver", argv)
        self._apiserver = apiserver
        _wait_ready(apiserver, self.url, self.ca_file, self.admin_token, timeout)
        return time.monotonic() - began

    def restart_apiserver(self, *, down_for: float = 0.0) -> float:
        """`stop_apiserver`, `down_for` seconds of nothing, `start_apiserver`."""
        self.stop_apiserver()
        time.sleep(down_for)
        return self.start_apiserver()

    def log_tail(self, lines: int = 40, *, etcd: bool = False) -> str:
        path = self.etcd_log if etcd else self.apiserver_log
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return f"(no log at {path})"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stops both servers (SIGTERM, SIGKILL after a grace) and removes the working dir."""
        self._cleanup.close()

    def __enter__(self) -> KubeCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start(bin_dir: Path, *, ready_timeout: float = READY_TIMEOUT) -> KubeCluster:
    """Starts etcd and kube-apiserver from `bin_dir`; returns once namespace `default` exists.

    Whatever fails or interrupts the start stops what was started and removes the working dir.
    """
    kubectl_path = _require("kubectl", "the kube tests drive the API server with it")
    openssl = _require("openssl", "it makes the service-account signing key")
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="canary-kube-"))
    cleanup = contextlib.ExitStack()
    cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
    try:
        supervisor = cleanup.enter_context(_Supervisor(workdir))
        etcd_url = _start_etcd(supervisor, bin_dir / "etcd", workdir)
        admin_token, controller_token = secrets.token_hex(24), secrets.token_hex(24)
        viewer_token, operator_token = secrets.token_hex(24), secrets.token_hex(24)
        people = ",".join(PEOPLE_GROUPS)
        tokens = workdir / "tokens.csv"
        tokens.write_text(
            f'{admin_token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n'
            f'{controller_token},{CONTROLLER_USER},canary-controller,"{",".join(CONTROLLER_GROUPS)}"\n'
            f'{viewer_token},{VIEWER_USER},{VIEWER_USER},"{people}"\n'
            f'{operator_token},{OPERATOR_USER},{OPERATOR_USER},"{people}"\n'
        )
        tokens.chmod(0o600)
        sa_key = workdir / "sa.key"
        subprocess.run(
            [openssl, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(sa_key)],
            capture_output=True,
            check=True,
            timeout=30,
        )
        port = procs.free_port()
        cert_dir = workdir / "pki"
        apiserver = supervisor.start(
            "kube-apiserver",
            [
                str(bin_dir / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={cert_dir}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa_key}",
                f"--service-account-signing-key-file={sa_key}",
                "--service-cluster-ip-range=10.0.0.0/24",
                # Its admission wants each Pod's ServiceAccount, which only a controller makes.
                "--disable-admission-plugins=ServiceAccount",
                "--allow-privileged=true",
                # The Service `kubernetes` would list 127.0.0.1, which Endpoints refuse: an
                # error in the log every 10 s, and no client here needs that Service.
                "--endpoint-reconciler-type=none",
            ],
        )
        url = f"https://127.0.0.1:{port}"
        ca_file = cert_dir / "apiserver.crt"
        _wait_ready(
            apiserver, url, ca_file, admin_token, ready_timeout - (time.monotonic() - began)
        )
        cluster = KubeCluster(
            url=url,
            ca_file=ca_file,
            admin_kubeconfig=_kubeconfig(workdir / "admin.kubeconfig", url, ca_file, admin_token),
            controller_kubeconfig=_kubeconfig(
                workdir / "controller.kubeconfig", url, ca_file, controller_token
            ),
            viewer_kubeconfig=_kubeconfig(
                workdir / "viewer.kubeconfig", url, ca_file, viewer_token
            ),
            operator_kubeconfig=_kubeconfig(
                workdir / "operator.kubeconfig", url, ca_file, operator_token
            ),
            workdir=workdir,
            apiserver_log=apiserver.log_path,
            etcd_log=workdir / "etcd.log",
            admin_token=admin_token,
            controller_token=controller_token,
            kubectl_path=kubectl_path,
            startup_seconds=time.monotonic() - began,
            _cleanup=cleanup.pop_all(),
            _supervisor=supervisor,
            _apiserver=apiserver,
        )
    except BaseException:
        cleanup.close()
        raise
    return cluster


def poll(
    what: str, check: Callable[[], str | None], *, timeout: float, interval: float = 0.2
) -> None:
    """Calls `check` until it returns None (done); otherwise it says what is still missing.

    Bounded by `timeout` and by the number of attempts that fit in it.
    """
    deadline = time.monotonic() + max(timeout, 0.0)
    last = "not checked"
    for _ in range(int(max(timeout, 0.0) / interval) + 1):
        outcome = check()
        if outcome is None:
            return
        last = outcome
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise ClusterError(f"waited {timeout:.0f} s for {what}; {last}")


class _Supervisor(procs.Supervisor):
    """Also removes the working directory (etcd's data, 60+ MB) once the servers are stopped.

    In `stop`, because that is what the atexit hook and the SIGTERM handler of `procs` call
    for every supervisor still open: a run ended by SIGTERM leaves no directory behind either.
    """

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _require(name: str, why: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ClusterError(f"{name} is not on PATH; {why}")
    return path


def _start_etcd(supervisor: procs.Supervisor, binary: Path, workdir: Path) -> str:
    client, peer = procs.free_port(), procs.free_port()
    client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    etcd = supervisor.start(
        "etcd",
        [
            str(binary),
            "--name=default",
            f"--data-dir={workdir / 'etcd'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
            # Its data dies with the test run, so durability buys nothing and costs fsyncs.
            "--unsafe-no-fsync",
        ],
    )
    procs.wait_http(f"{client_url}/health", timeout=30.0, process=etcd)
    return client_url


def _wait_ready(
    apiserver: procs.Process, url: str, ca_file: Path, token: str, timeout: float
) -> None:
    """Waits for the self-signed certificate, then `/readyz`, then namespace `default`.

    `/readyz` includes the post-start hooks that create the RBAC bootstrap roles, but not the
    system namespaces, which a controller loop creates a moment later.
    """

    def alive() -> None:
        if not apiserver.alive():
            raise apiserver.failure("exited while starting")

    def certificate() -> str | None:
        alive()
        return None if ca_file.is_file() else f"no {ca_file} yet"

    def answers(path: str) -> Callable[[], str | None]:
        def check() -> str | None:
            alive()
            try:
                status, body = _request(
                    "GET", path, url=url, ca_file=ca_file, token=token, timeout=5.0
                )
            except (OSError, http.client.HTTPException) as exc:
                return str(exc)
            return None if status == 200 else f"{path} answered {status}: {str(body)[:300]}"

        return check

    deadline = time.monotonic() + timeout
    try:
        poll("the API server's certificate", certificate, timeout=deadline - time.monotonic())
        poll("/readyz", answers("/readyz"), timeout=deadline - time.monotonic())
        poll(
            "namespace default",
            answers("/api/v1/namespaces/default"),
            timeout=deadline - time.monotonic(),
        )
    except ClusterError as exc:
        raise apiserver.failure(str(exc)) from exc


def _request(
    method: str,
    path: str,
    body: Any = None,
    *,
    url: str,
    ca_file: Path,
    token: str,
    content_type: str = "application/json",
    timeout: float,
) -> tuple[int, Any]:
    context = ssl.create_default_context(cafile=str(ca_file))
    host, port = url.removeprefix("https://").rsplit(":", 1)
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=timeout)
    payload = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if payload is not None:
        headers["Content-Type"] = content_type
    try:
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        raw = response.read().decode(errors="replace")
    finally:
        connection.close()
    try:
        return response.status, json.loads(raw)
    except json.JSONDecodeError:
        return response.status, raw


def _kubeconfig(path: Path, url: str, ca_file: Path, token: str) -> Path:
    # JSON is YAML, and both kubectl and the kubernetes package read it.
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "test", "cluster": {"server": url, "certificate-authority": str(ca_file)}}
        ],
        "users": [{"name": "test", "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
        "current-context": "test",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path
