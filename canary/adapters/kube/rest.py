"""A thin JSON layer over the official client's ApiClient: the kinds canary reads, as plain dicts.

Canary passes Istio's objects through untouched and patches single fields, so it talks to the
API server in JSON dicts rather than generated models: one code path serves our CRDs, Istio's
and Deployments alike, and nothing is lost in a round trip through a model. The client still
does what it is good at: kubeconfig and in-cluster credentials, TLS, connection pooling.

Every request is counted by verb, so a benchmark can tell how many API calls a tick made.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from canary.errors import CanaryError, Unavailable

Body = dict[str, Any]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
# Every write names us, so managedFields tell a user (and our drift events) who wrote what.
FIELD_MANAGER = "canary"


@dataclass(frozen=True, slots=True)
class Kind:
    kind: str
    group: str
    version: str
    plural: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None = None, name: str | None = None, sub: str | None = None
    ) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        parts = [base]
        if namespace is not None:
            parts.append(f"namespaces/{namespace}")
        parts.append(self.plural)
        if name is not None:
            parts.append(name)
        if sub is not None:
            parts.append(sub)
        return "/".join(parts)


CANARY = Kind("Canary", "canary.dev", "v1alpha1", "canaries")
METRIC_TEMPLATE = Kind("MetricTemplate", "canary.dev", "v1alpha1", "metrictemplates")
CHAT_PROVIDER = Kind("ChatProvider", "canary.dev", "v1alpha1", "chatproviders")
VIRTUAL_SERVICE = Kind("VirtualService", "networking.istio.io", "v1", "virtualservices")
DESTINATION_RULE = Kind("DestinationRule", "networking.istio.io", "v1", "destinationrules")
DEPLOYMENT = Kind("Deployment", "apps", "v1", "deployments")
# Read for preflight's mTLS item only; a cluster may lack the CRD (cache.py: OPTIONAL_KINDS).
PEER_AUTHENTICATION = Kind("PeerAuthentication", "security.istio.io", "v1", "peerauthentications")
# Istio serves EnvoyFilter at v1alpha3 only.
ENVOY_FILTER = Kind("EnvoyFilter", "networking.istio.io", "v1alpha3", "envoyfilters")
# Listed once when a fault is for some of the canary's pods only (pods.py), never watched.
POD = Kind("Pod", "", "v1", "pods")

# The labels of the EnvoyFilters canary writes to inject faults (faults.py), and the selector
# that finds them all: the cache watches only those, the startup sweep lists only those.
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
FAULT_HOST_LABEL = "canary.dev/fault-host"
FAULT_SELECTOR = f"{MANAGED_BY_LABEL}={FIELD_MANAGER},{FAULT_HOST_LABEL}"
EVENT = Kind("Event", "", "v1", "events")

PAGE_SIZE = 500
# A server that kept handing out continue tokens would otherwise hold the caller for good.
MAX_PAGES = 10_000


class ApiError(CanaryError):
    """The API server answered with an error status; `reason` is its Status reason."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def connect(kubeconfig: str | None = None, context: str | None = None) -> k8s.ApiClient:
    """In-cluster credentials when running in a pod without --kubeconfig, else the kubeconfig."""
    configuration = k8s.Configuration()
    if kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ:
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=configuration
        )
    return k8s.ApiClient(configuration)


class Rest:
    def __init__(self, api: k8s.ApiClient, *, timeout: float = 10.0) -> None:
        self.api = api
        self.timeout = timeout
        self.calls: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        # Per thread too: a tick runs on one scheduler thread, so the requests a tick made are
        # the ones its thread made since its last tick (see take_thread_calls).
        self._thread_calls = threading.local()

    def get(self, path: str, **query: str | int) -> Body:
        return self._json("GET", path, query)

    def get_or_none(self, path: str) -> Body | None:
        try:
            return self.get(path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def post(self, path: str, body: Body) -> Body:
        return self._json("POST", path, {"fieldManager": FIELD_MANAGER}, body)

    def put(self, path: str, body: Body) -> Body:
        return self._json("PUT", path, {"fieldManager": FIELD_MANAGER}, body)

    def patch(self, path: str, body: Any, *, content_type: str) -> Body:
        return self._json("PATCH", path, {"fieldManager": FIELD_MANAGER}, body, content_type)

    def delete(self, path: str) -> Body:
        return self._json("DELETE", path, {})

    def watch(
        self,
        path: str,
        *,
        resource_version: str,
        timeout_seconds: int,
        label_selector: str | None = None,
    ) -> WatchStream:
        """One watch request; iterate it for events until the server ends it or `close()`."""
        query: dict[str, str | int] = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout_seconds,
        }
        if label_selector:
            query["labelSelector"] = label_selector
        # The server closes a watch after timeoutSeconds; the read timeout only catches a hung
        # connection, so it must outlast the quiet stretches between bookmarks.
        response = self._send(
            "GET", path, query, None, None, timeout=(self.timeout, timeout_seconds + 30)
        )
        return WatchStream(path, response.response)

    def call_counts(self) -> dict[str, int]:
        with self._count_lock:
            return dict(self.calls)

    def take_thread_calls(self) -> int:
        """The requests this thread made since it last asked."""
        count: int = getattr(self._thread_calls, "count", 0)
        self._thread_calls.count = 0
        return count

    def _json(
        self,
        method: str,
        path: str,
        query: dict[str, str | int],
        body: Any = None,
        content_type: str | None = None,
    ) -> Body:
        response = self._send(method, path, query, body, content_type, timeout=self.timeout)
        data = response.read()
        decoded: Body = json.loads(data) if data else {}
        return decoded

    def _send(
        self,
        method: str,
        path: str,
        query: dict[str, str | int],
        body: Any,
        content_type: str | None,
        *,
        timeout: float | tuple[float, float],
    ) -> Any:
        with self._count_lock:
            self.calls[method] += 1
        self._thread_calls.count = getattr(self._thread_calls, "count", 0) + 1
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        request = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list(query.items()),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api.call_api(*request, _request_timeout=timeout)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise Unavailable(f"{method} {path}: {exc}", retry_after=1.0) from exc
        except k8s.ApiException as exc:
            raise _api_error(exc.status or 0, exc.reason or "", exc.body) from exc
        if not 200 <= response.status < 300:
            raise _api_error(response.status, response.reason or "", response.read())  # type: ignore[no-untyped-call]
        return response


def list_items(api: Rest, path: str, *, label_selector: str) -> list[Body]:
    """Every object of a collection with those labels, read a page at a time."""
    found: list[Body] = []
    token = ""
    for _ in range(MAX_PAGES):
        query: dict[str, str | int] = {"labelSelector": label_selector, "limit": PAGE_SIZE}
        if token:
            query["continue"] = token
        page = api.get(path, **query)
        found += [item for item in page.get("items") or [] if isinstance(item, dict)]
        token = str((page.get("metadata") or {}).get("continue") or "")
        if not token:
            break
    return found


class WatchStream:
    def __init__(self, path: str, response: Any) -> None:
        self.path = path
        self._response = response

    def __iter__(self) -> Iterator[Body]:
        pending = b""
        try:
            for chunk in self._response.stream(64 * 1024, decode_content=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise Unavailable(f"watch {self.path}: {exc}", retry_after=1.0) from exc
        finally:
            self._response.release_conn()

    def close(self) -> None:
        # shutdown() unblocks a read in another thread; close() alone waits for it.
        shutdown = getattr(self._response, "shutdown", None)
        if shutdown is not None:
            shutdown()
        self._response.close()


def _api_error(status: int, reason: str, raw: Any) -> ApiError | Unavailable:
    message = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw or "")
    try:
        parsed = json.loads(message)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        reason = str(parsed.get("reason") or reason)
        message = str(parsed.get("message") or message)
    if status >= 500 or status == 429:
        # The server is overloaded or down, not the request wrong: the tick tries again later.
        return Unavailable(f"API server: {status} {reason}: {message}", retry_after=2.0)
    return ApiError(status, reason, message)
