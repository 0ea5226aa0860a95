"""Follow objects as client-go's reflector does: LIST, then WATCH from that resourceVersion, again from a fresh LIST
when the server says the version is gone; a Mirror holds what was seen, by key and name. Used by the waits
(install --wait, expose --wait), which evaluate their rule on every change instead of polling."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from macvtapctl.errors import MacvtapctlError
from macvtapctl.kube.client import Kube

WATCH_SECONDS = 240  # the server ends a watch after this; it is started again from the last version seen


class Mirror:
    """The objects the watches have seen, by kind and name."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        import queue

        self.keys = keys
        self.events: queue.Queue[tuple[str, str, Any]] = queue.Queue()
        self.caches: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in keys}
        self.listed: set[str] = set()

    def complete(self) -> bool:
        """Every key has had its first LIST."""
        return self.listed >= set(self.keys)

    def take(self, timeout: float) -> None:
        """Wait up to `timeout` for events, then apply all that are queued (one evaluation per burst)."""
        import queue

        try:
            batch = [self.events.get(timeout=timeout)]
        except queue.Empty:
            return
        while not self.events.empty():
            batch.append(self.events.get_nowait())
        for key, kind, obj in batch:
            if kind == "FAILED":
                raise obj
            cache = self.caches[key]
            if kind == "LIST":
                cache.clear()
                cache.update({o["metadata"]["name"]: o for o in obj})
                self.listed.add(key)
            elif kind == "DELETED":
                cache.pop(obj["metadata"]["name"], None)
            else:
                cache[obj["metadata"]["name"]] = obj


class Follow(threading.Thread):
    """LIST then WATCH one kind forever (again from a fresh LIST when the server says the version is gone),
    feeding (key, event type, object) to the queue; ("FAILED", error) ends it."""

    def __init__(self, kube: Kube, mirror: Mirror, key: str, res: Any, namespace: str | None,
                 **selectors: str) -> None:
        super().__init__(name=f"watch-{key}", daemon=True)
        self.kube, self.events, self.key, self.res, self.namespace = kube, mirror.events, key, res, namespace
        self.selectors = selectors
        self.done = threading.Event()
        self.stream: Any = None

    def run(self) -> None:

        try:
            while not self.done.is_set():
                items, version = self.kube.list_with_version(self.res, self.namespace, **self.selectors)
                self.events.put((self.key, "LIST", items))
                for kind, obj in self.kube.watch(self.res, self.namespace, resource_version=version,
                                                 timeout_seconds=WATCH_SECONDS, on_open=self._opened,
                                                 **self.selectors):
                    if self.done.is_set():
                        return
                    if kind == "ERROR":
                        break  # 410 Gone: list again
                    if kind != "BOOKMARK":
                        self.events.put((self.key, kind, obj))
        except MacvtapctlError as exc:
            if not self.done.is_set():
                self.events.put((self.key, "FAILED", exc))

    def _opened(self, stream: Any) -> None:
        self.stream = stream

    def stop(self) -> None:
        self.done.set()
        stream = self.stream
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.shutdown()  # unblocks the read in run()
