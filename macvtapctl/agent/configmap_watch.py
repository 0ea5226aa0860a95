"""The agent follows its ConfigMap through the API server, not only through the kubelet's copy of it.

The kubelet refreshes a mounted ConfigMap on its sync period (a minute by default, plus its cache's TTL): a
resource `expose` added stays unadvertised that long, and a VM created at once stays Pending. This follows the one
ConfigMap by name — LIST then WATCH with `fieldSelector=metadata.name=NAME`, which a Role with `resourceNames:
[NAME]` allows, and nothing more — with the pod's own service-account token, so a change reaches the device plugin
within a second. The mounted file stays the fallback (see ConfigSource in deviceplugin/manager.py).

Stdlib http.client on a thread, not the CLI's follower (kube/follow.py) and its client: one GET at a time on one
connection, and the agent's memory budget (docs/performance.md) has no room for the 5 MiB they add
(docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from macvtapctl import identity
from macvtapctl.agent.apiserver import ApiUnavailable, InCluster

log = logging.getLogger("macvtapctl.agent.config")
WATCH_SECONDS = 240  # the server ends each watch after this; the next starts from the last version seen
READ_TIMEOUT = WATCH_SECONDS + 30  # a connection silent for longer than the server's own limit is dead
MAX_LINE = 4 * 1024 * 1024  # one watch event: a ConfigMap is at most 1 MiB, JSON-escaped
RETRY_MIN, RETRY_MAX = 1.0, 30.0


@dataclass(frozen=True)
class Seen:
    """What the watch knows: `raw` is the ConfigMap's configuration key, None when the ConfigMap or the key is
    missing (`why` says which); `healthy` while the last LIST/WATCH succeeded."""

    listed: bool  # at least one LIST has answered since the agent started
    healthy: bool
    raw: str | None
    why: str  # when raw is None: what is missing; when not healthy: the last error


def in_cluster_available(sa_dir: str = identity.SERVICE_ACCOUNT_DIR) -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and Path(sa_dir, "token").is_file()


class ConfigMapWatch(threading.Thread):
    """LIST then WATCH one ConfigMap until stopped; `on_change()` (thread-safe, no arguments) after each change
    of what `seen()` returns."""

    def __init__(self, namespace: str, name: str, key: str, on_change: Callable[[], None], *,
                 sa_dir: str = identity.SERVICE_ACCOUNT_DIR, server: tuple[str, int] | None = None) -> None:
        super().__init__(name="configmap-watch", daemon=True)
        self.namespace, self.name, self.key, self.on_change = namespace, name, key, on_change
        self.api = InCluster(Path(sa_dir), server) if server else InCluster(Path(sa_dir))
        self._lock = threading.Lock()
        self._seen = Seen(listed=False, healthy=False, raw=None, why="not listed yet")
        self._stopping = threading.Event()
        self.answered = threading.Event()  # the first LIST answered, or failed
        self._failing = False
        self._conn: http.client.HTTPSConnection | None = None

    @property
    def label(self) -> str:
        return f"ConfigMap {self.namespace}/{self.name}"

    def seen(self) -> Seen:
        with self._lock:
            return self._seen

    def stop(self) -> None:
        self._stopping.set()
        conn = self._conn
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(2)  # wakes the thread blocked in a read

    def run(self) -> None:
        delay = RETRY_MIN
        while not self._stopping.is_set():
            try:
                version: str | None = self._list()
                delay = RETRY_MIN
                while not self._stopping.is_set() and version is not None:
                    version = self._watch(version)  # None: the version is gone (410), list again
            except ApiUnavailable as exc:
                if self._stopping.is_set():
                    return
                if not self._failing:  # once per outage
                    log.warning("cannot follow %s through the API server (%s); retrying", self.label, exc)
                self._failing = True
                was = self.seen()
                self._set(listed=was.listed, healthy=False, raw=was.raw, why=str(exc))
                self.answered.set()
                if was.healthy:
                    self.on_change()
                self._stopping.wait(delay)
                delay = min(delay * 2, RETRY_MAX)
            finally:
                self._close()

    def list_once(self) -> Seen:
        """One LIST, no watch (`agent check`: what the agent would read now, by the same rule)."""
        try:
            self._list()
        except ApiUnavailable as exc:
            self._set(listed=False, healthy=False, raw=None, why=str(exc))
        finally:
            self._close()
        return self.seen()

    # -- one LIST, one WATCH --
    def _path(self, **query: str) -> str:
        q = {"fieldSelector": f"metadata.name={self.name}", **query}
        ns = urllib.parse.quote(self.namespace, safe="")
        return f"/api/v1/namespaces/{ns}/configmaps?{urllib.parse.urlencode(q)}"

    def _list(self) -> str:
        resp = self._get(self._path(), timeout=30)
        try:
            body = resp.read(MAX_LINE + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise ApiUnavailable(f"reading the LIST failed: {exc}") from None
        if len(body) > MAX_LINE:
            raise ApiUnavailable("the LIST answer is larger than a ConfigMap can be")
        doc = _object(body)
        items = doc.get("items")
        version = (doc.get("metadata") or {}).get("resourceVersion")
        if not isinstance(items, list) or not isinstance(version, str):
            raise ApiUnavailable("the LIST answer is not a ConfigMapList")
        first = not self.seen().listed
        self._apply(items[0] if items else None)
        if first or self._failing:
            log.info("following %s through the API server", self.label)
        self._failing = False
        self.answered.set()
        return version

    def _watch(self, version: str) -> str | None:
        resp = self._get(self._path(watch="1", resourceVersion=version, allowWatchBookmarks="true",
                                    timeoutSeconds=str(WATCH_SECONDS)), timeout=READ_TIMEOUT)
        while not self._stopping.is_set():
            try:
                line = resp.readline(MAX_LINE + 1)
            except (OSError, http.client.HTTPException) as exc:
                raise ApiUnavailable(f"the watch broke: {exc}") from None
            if not line:
                return version  # the server's timeout: watch again from here
            if len(line) > MAX_LINE and not line.endswith(b"\n"):
                raise ApiUnavailable("a watch event is larger than a ConfigMap can be")
            event = _object(line)
            kind, obj = event.get("type"), event.get("object")
            if not isinstance(obj, dict):
                raise ApiUnavailable(f"a watch event of type {kind!r} carries no object")
            if kind == "ERROR":
                if obj.get("code") == 410:
                    return None
                raise ApiUnavailable(f"the watch ended: {obj.get('message') or obj.get('reason') or obj}")
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            if kind in ("ADDED", "MODIFIED"):
                self._apply(obj)
            elif kind == "DELETED":
                self._apply(None)
        return None

    def _apply(self, obj: dict[str, Any] | None) -> None:
        if obj is None:
            raw, why = None, f"{self.label} does not exist"
        else:
            data = obj.get("data") or {}
            value = data.get(self.key) if isinstance(data, dict) else None
            raw, why = (value, "") if isinstance(value, str) else (None, f"{self.label} has no key {self.key}")
        before = self.seen()
        self._set(listed=True, healthy=True, raw=raw, why=why)
        if (before.raw, before.healthy, before.why) != (raw, True, why):
            self.on_change()

    def _set(self, **kw: Any) -> None:
        with self._lock:
            self._seen = Seen(**kw)

    # -- HTTP --
    def _get(self, path: str, *, timeout: float) -> http.client.HTTPResponse:
        self._close()
        try:
            self._conn, resp = self.api.connect("GET", path, timeout=timeout)
        except ApiUnavailable as exc:
            if exc.status == 403:
                raise ApiUnavailable(f"forbidden: the agent's Role must allow get, list and watch on "
                                     f"configmaps/{self.name} in namespace {self.namespace} ({exc})") from None
            raise
        return resp

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _object(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        raise ApiUnavailable("the API server's answer is not JSON") from None
    if not isinstance(doc, dict):
        raise ApiUnavailable("the API server's answer is not an object")
    return doc
