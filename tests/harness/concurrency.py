"""Many writers at once, for the "lose nothing" tests: every one released together, every exception kept."""

from __future__ import annotations

import threading
from collections.abc import Callable


def all_at_once(writer: Callable[[int], object], n: int) -> list[BaseException]:
    """Run writer(0) .. writer(n-1) in n threads released by one barrier (so they do race); returns what they
    raised, in no order (empty when every one succeeded)."""
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def one(i: int) -> None:
        try:
            start.wait()
            writer(i)
        except BaseException as exc:  # surfaced to the test, which asserts the list is empty
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors
