"""Read-modify-write with optimistic concurrency: re-read and re-plan on 409 Conflict."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from macvtapctl.errors import ConflictError, InvalidObjectError
from macvtapctl.kube.errors import AlreadyExistsError, StaleError

if TYPE_CHECKING:
    from macvtapctl.kube.client import Kube
    from macvtapctl.kube.options import DryRun
    from macvtapctl.kube.resources import Resource

T = TypeVar("T")

DEFAULT_ATTEMPTS = 8


def retry_on_conflict(attempt: Callable[[], T], *, what: str, attempts: int = DEFAULT_ATTEMPTS,
                      base_delay: float = 0.02) -> T:
    """Run `attempt` (which must read, plan and write) until it stops hitting write conflicts.

    Retried: StaleError (a resourceVersion mismatch) and AlreadyExistsError (another writer created the object
    between our read and our create: the next read sees it and plans an update). Everything else propagates.
    """
    for i in range(attempts):
        try:
            return attempt()
        except (StaleError, AlreadyExistsError):
            if i == attempts - 1:
                break
            # Jittered exponential backoff keeps concurrent writers from colliding in lockstep.
            time.sleep(base_delay * (2 ** min(i, 5)) * (0.5 + random.random()))  # noqa: S311
    raise ConflictError(f"{what} kept changing while macvtapctl tried to update it ({attempts} attempts); "
                        "try again")


def guarded_json_patch(kube: Kube, res: Resource, name: str, namespace: str | None,
                       plan: Callable[[dict[str, Any]], list[dict[str, Any]]], *, what: str, dry_run: DryRun,
                       subresource: str | None = None, current: dict[str, Any] | None = None,
                       ) -> tuple[dict[str, Any], bool]:
    """Read (or start from `current`), plan RFC 6902 ops, and patch them behind a `test` of resourceVersion;
    re-read and re-plan when the object changed. Returns (object, whether a patch was sent).

    A failed `test` op comes back as 422, like a real validation error: the two are told apart by re-reading —
    only a changed resourceVersion means "stale" (a message match would mistake a VM named `test-vm`)."""
    state = {"current": current}

    def attempt() -> tuple[dict[str, Any], bool]:
        obj = state["current"] or kube.get(res, name, namespace)
        state["current"] = None
        ops = plan(obj)
        if not ops:
            return obj, False
        rv = obj["metadata"]["resourceVersion"]
        guard = {"op": "test", "path": "/metadata/resourceVersion", "value": rv}
        try:
            return kube.json_patch(res, name, [guard, *ops], namespace, dry_run=dry_run,
                                   subresource=subresource), True
        except InvalidObjectError:
            now = kube.get_or_none(res, name, namespace)
            if now is not None and now["metadata"]["resourceVersion"] != rv:
                raise StaleError(f"{what} changed since it was read") from None
            raise

    return retry_on_conflict(attempt, what=what)
