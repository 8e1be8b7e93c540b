"""List-then-watch of one kind into a local cache, as client-go's reflector does.

A tick reads only this cache, so a tick with nothing to write makes no API request at all. The
loop lists (in pages), then watches from the list's resourceVersion, following bookmarks; when a
watch ends it resumes from the last version seen; a `410 Gone` (the version fell out of etcd's
window) or any error means a fresh list after a bounded backoff. Our own writes are folded in
from the write's response at once (`remember`), so the next tick never reads an older status than
the one it just wrote while the watch event is still on its way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from canary.adapters.kube.rest import ApiError, Body, Kind, Rest, WatchStream
from canary.errors import CanaryError

log = structlog.get_logger("canary.kube.informer")

ObjectKey = tuple[str, str]
Listener = Callable[[Kind, ObjectKey], None]

PAGE_SIZE = 500
WATCH_SECONDS = 240
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 10.0


class Informer:
    def __init__(self, rest: Rest, kind: Kind, *, label_selector: str | None = None) -> None:
        self.rest = rest
        self.kind = kind
        # Only the objects the selector matches are listed and watched (e.g. the EnvoyFilters
        # canary wrote, not every one in the cluster).
        self.label_selector = label_selector
        self.synced = threading.Event()
        # Set once the first list has been tried, listed or not: an optional kind's reader waits
        # for this, so its first answer is the list or the reason it failed, not "not yet".
        self.tried = threading.Event()
        self._objects: dict[ObjectKey, Body] = {}
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream: WatchStream | None = None
        self.relists = 0
        # Why the last list or watch failed (None once a list succeeds): a reader of a kind
        # that never synced says this rather than reading an empty cache as "none exist".
        self.error: CanaryError | None = None

    # Reading the cache

    def get(self, namespace: str, name: str) -> Body | None:
        with self._lock:
            return self._objects.get((namespace, name))

    def items(self) -> list[Body]:
        with self._lock:
            return list(self._objects.values())

    def keys(self) -> list[ObjectKey]:
        with self._lock:
            return sorted(self._objects)

    def on_change(self, listener: Listener) -> None:
        """Called from the watch thread after each change; must be quick and never raise."""
        self._listeners.append(listener)

    def remember(self, body: Body) -> None:
        """Fold in an object one of our writes returned, unless the cache holds a newer one."""
        key = _key(body)
        with self._lock:
            current = self._objects.get(key)
            if current is not None and _newer_or_same(current, body):
                return
            self._objects[key] = body
        self._changed(key)

    def forget(self, namespace: str, name: str) -> None:
        """Drop an object one of our deletes removed, so a read before its watch event does not
        find it still there."""
        key = (namespace, name)
        with self._lock:
            gone = self._objects.pop(key, None)
        if gone is not None:
            self._changed(key)

    # Running

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"informer-{self.kind.plural}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            # A watch blocks in a read for minutes; closing its socket ends that read now.
            stream.close()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_synced(self, timeout: float) -> bool:
        return self.synced.wait(timeout)

    def _run(self) -> None:
        backoff = BACKOFF_FIRST
        while not self._stop.is_set():
            try:
                version = self._list()
                backoff = BACKOFF_FIRST
                while not self._stop.is_set():
                    version = self._watch(version)
            except _Gone:
                log.info("watch.gone", kind=self.kind.kind)
            except CanaryError as exc:
                if self._stop.is_set():
                    # stop() closed the watch's socket under its read: that is no failure.
                    return
                self.error = exc
                self.tried.set()
                log.warning("watch.failed", kind=self.kind.kind, error=str(exc), backoff=backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            except Exception:
                # A bug here must not stop the cache for good: log it and list again.
                log.exception("watch.crashed", kind=self.kind.kind)
                self.tried.set()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    def _list(self) -> str:
        self.relists += 1
        fresh: dict[ObjectKey, Body] = {}
        token = ""
        version = ""
        for _ in range(100_000):
            query: dict[str, str | int] = {"limit": PAGE_SIZE}
            if self.label_selector:
                query["labelSelector"] = self.label_selector
            if token:
                query["continue"] = token
            page = self.rest.get(self.kind.path(), **query)
            for item in page.get("items") or []:
                # Items of a list carry no kind; the rest of canary reads bodies as stored.
                item.setdefault("apiVersion", self.kind.api_version)
                item.setdefault("kind", self.kind.kind)
                fresh[_key(item)] = item
            meta = page.get("metadata") or {}
            version = str(meta.get("resourceVersion") or "")
            token = str(meta.get("continue") or "")
            if not token:
                break
        with self._lock:
            changed = {
                key
                for key in fresh.keys() | self._objects.keys()
                if _version(fresh.get(key)) != _version(self._objects.get(key))
            }
            self._objects = fresh
        self.error = None
        self.synced.set()
        self.tried.set()
        log.debug("list.done", kind=self.kind.kind, objects=len(fresh), version=version)
        for key in sorted(changed):
            self._changed(key)
        return version

    def _watch(self, version: str) -> str:
        # The selector goes only where there is one, so the unselected watch stays the request
        # (and the Rest interface) it always was.
        if self.label_selector:
            stream = self.rest.watch(
                self.kind.path(),
                resource_version=version,
                timeout_seconds=WATCH_SECONDS,
                label_selector=self.label_selector,
            )
        else:
            stream = self.rest.watch(
                self.kind.path(), resource_version=version, timeout_seconds=WATCH_SECONDS
            )
        self._stream = stream
        for event in stream:
            if self._stop.is_set():
                break
            kind, body = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if body.get("code") == 410:
                    raise _Gone
                raise ApiError(int(body.get("code") or 0), str(body.get("reason")), str(body))
            version = _version(body) or version
            if kind == "BOOKMARK":
                continue
            key = _key(body)
            with self._lock:
                if kind == "DELETED":
                    self._objects.pop(key, None)
                else:
                    current = self._objects.get(key)
                    if current is not None and _newer_or_same(current, body):
                        continue
                    self._objects[key] = body
            self._changed(key)
        return version

    def _changed(self, key: ObjectKey) -> None:
        for listener in self._listeners:
            try:
                listener(self.kind, key)
            except Exception:
                log.exception("listener.failed", kind=self.kind.kind)


class _Gone(Exception):
    pass


def _key(body: Body) -> ObjectKey:
    meta = body.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def _version(body: Body | None) -> str:
    if body is None:
        return ""
    return str((body.get("metadata") or {}).get("resourceVersion") or "")


def _newer_or_same(current: Body, incoming: Body) -> bool:
    # resourceVersions are opaque by contract, but every API server backed by etcd hands out its
    # revision; compared as numbers they tell an echo of an older write from a newer one.
    held, offered = _version(current), _version(incoming)
    if held.isdigit() and offered.isdigit():
        return int(held) >= int(offered)
    return held == offered
