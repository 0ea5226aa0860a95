"""Follow objects as client-go's reflector does: LIST, then WATCH from that resourceVersion, again from a fresh LIST
when the server says the version is gone; a Mirror holds what was seen, by key and name. until() is the one wait
(client-go's UntilWithSync): install, expose and vm migrate --wait, --take-over, --restore-upstream and uninstall's
node clean-up evaluate their condition (rules/waits.py, rules/migration.py) on every change instead of polling."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from macvtapctl.errors import MacvtapctlError, TimeoutExceeded, UnreachableError
from macvtapctl.kube.client import Kube

WATCH_SECONDS = 240  # the server ends a watch after this; it is started again from the last version seen
RESUME_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)  # seconds before watching again after a cut connection (then 5 s each)

Caches = dict[str, dict[str, dict[str, Any]]]  # what the watches hold: by watch key, then object name


class WaitExpired(TimeoutExceeded):
    """until()'s own limit passed (a request that timed out is a plain TimeoutExceeded): callers that say more
    on a timeout catch this one."""


class Mirror:
    """The objects the watches have seen, by kind and name."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        import queue

        self.keys = keys
        self.events: queue.Queue[tuple[str, str, Any]] = queue.Queue()
        self.caches: Caches = {k: {} for k in keys}
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
        """LIST, then WATCH from its version. A watch the network cut (a reset, a timeout, the server gone for a
        moment) is resumed from the last version seen, as client-go's reflector does, after a short backoff: a
        wait is ended by its own limit, not by a blip. Only the first LIST failing, or the server refusing the
        request, ends the follower (FAILED)."""
        listed = False
        version = ""
        cuts = 0
        try:
            while not self.done.is_set():
                try:
                    if not version:
                        items, version = self.kube.list_with_version(self.res, self.namespace, **self.selectors)
                        self.events.put((self.key, "LIST", items))
                        listed = True
                    for kind, obj in self.kube.watch(self.res, self.namespace, resource_version=version,
                                                     timeout_seconds=WATCH_SECONDS, on_open=self._opened,
                                                     **self.selectors):
                        if self.done.is_set():
                            return
                        cuts = 0
                        if kind == "ERROR":
                            version = ""  # 410 Gone: list again
                            break
                        version = (obj.get("metadata") or {}).get("resourceVersion") or version
                        if kind != "BOOKMARK":
                            self.events.put((self.key, kind, obj))
                except (UnreachableError, TimeoutExceeded):
                    if self.done.is_set() or not listed:
                        raise
                    self.done.wait(RESUME_DELAYS[min(cuts, len(RESUME_DELAYS) - 1)])
                    cuts += 1
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


T = TypeVar("T")


@dataclass(frozen=True)
class Watch:
    """One kind to follow for `until`: cached under `key`."""

    key: str
    res: Any
    namespace: str | None = None
    selectors: dict[str, str] = field(default_factory=dict)


def until(kube: Kube, watches: Sequence[Watch], condition: Callable[[Caches], T | None], limit: float, what: str,
          on_change: Callable[[Caches], None] | None = None) -> T:
    """client-go's UntilWithSync: LIST and WATCH every kind, evaluate `condition` on the caches (by key, then name)
    after the first LISTs and after every burst of changes, and return its first value that is not None. `on_change`
    sees the same caches (progress lines). WaitExpired after `limit` seconds names `what`; a watch the network cut
is resumed from its last resourceVersion (Follow), so only the limit or a refusal ends the wait."""
    deadline = time.monotonic() + limit
    mirror = Mirror(tuple(w.key for w in watches))
    follows = [Follow(kube, mirror, w.key, w.res, w.namespace, **w.selectors) for w in watches]
    for f in follows:
        f.start()
    try:
        while True:
            mirror.take(max(0.0, deadline - time.monotonic()))
            if mirror.complete():
                if on_change is not None:
                    on_change(mirror.caches)
                done = condition(mirror.caches)
                if done is not None:
                    return done
            if time.monotonic() >= deadline:
                raise WaitExpired(f"timed out after {limit:g}s waiting for {what}")
    finally:
        for f in follows:
            f.stop()
