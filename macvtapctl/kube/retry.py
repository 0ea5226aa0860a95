"""Read-modify-write with optimistic concurrency: re-read and re-plan on 409 Conflict."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from macvtapctl.errors import ConflictError
from macvtapctl.kube.errors import AlreadyExistsError, StaleError

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
