"""Secret values on the API server, read when a provider or a webhook needs them.

Secrets are not watched: a watch would hold every Secret of the cluster in the controller's
memory and need `list` on all of them. Each is read with `get` when first needed and kept for
a short while, so a check every few seconds costs one request per Secret per TTL, and a rotated
credential is picked up within that TTL.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time

from canary.adapters.kube.rest import ApiError, Body, Rest
from canary.api.secrets import SecretKeyRef
from canary.errors import InvalidSpec, Unavailable

TTL_SECONDS = 30.0


class KubeSecrets:
    def __init__(self, rest: Rest, *, ttl: float = TTL_SECONDS) -> None:
        self.rest = rest
        self.ttl = ttl
        self._lock = threading.Lock()
        self._read: dict[tuple[str, str], tuple[float, Body | None]] = {}

    def value(self, namespace: str, ref: SecretKeyRef) -> str:
        body = self._secret(namespace, ref.name)
        who = f"Secret {namespace}/{ref.name}"
        if body is None:
            raise InvalidSpec(f"{who} not found")
        data = body.get("data") or {}
        if ref.key not in data:
            keys = ", ".join(sorted(data)) or "none"
            raise InvalidSpec(f"{who} has no key {ref.key!r} (keys: {keys})")
        try:
            return base64.b64decode(str(data[ref.key]), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidSpec(f"{who} key {ref.key!r} is not text: {exc}") from exc

    def _secret(self, namespace: str, name: str) -> Body | None:
        now = time.monotonic()
        with self._lock:
            cached = self._read.get((namespace, name))
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        path = f"/api/v1/namespaces/{namespace}/secrets/{name}"
        try:
            body = self.rest.get_or_none(path)
        except ApiError as exc:
            if exc.status == 403:
                raise InvalidSpec(
                    f"Secret {namespace}/{name}: the controller may not read it ({exc.message})"
                ) from exc
            raise Unavailable(f"reading Secret {namespace}/{name}: {exc}") from exc
        with self._lock:
            self._read[(namespace, name)] = (now, body)
        return body
