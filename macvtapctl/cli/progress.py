"""Progress bars on stderr for long operations (a terminal only: never in CI logs or pipes)."""

from __future__ import annotations

import os
from typing import Any

from macvtapctl.output import Printer


def interactive(printer: Printer) -> bool:
    return printer.err.isatty() and not os.environ.get("CI") and printer.verbosity >= 0


class Bar:
    """A Rich bar: `label`, done/total, elapsed time; transient (the summary line stays, the bar goes)."""

    def __init__(self, label: str, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar: Any = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 console=Console(stderr=True), transient=True)
        self.task = self.bar.add_task(label, total=total)
        self.bar.start()

    def advance(self) -> None:
        self.bar.advance(self.task)

    def update(self, done: int, total: int) -> None:
        self.bar.update(self.task, completed=done, total=max(total, 1))

    def close(self) -> None:
        self.bar.stop()


def nodes_bar(printer: Printer) -> Bar | None:
    """The waits' nodes ready / total bar, on a terminal only; started when made."""
    return Bar("nodes ready", 0) if interactive(printer) else None
