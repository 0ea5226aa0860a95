"""Use-cases: what each command does, as functions of a `Kube`, plain options and a `Reporter`.

The CLI (macvtapctl/cli/) parses flags, builds these inputs and prints what comes back; nothing here parses a
flag or knows about Typer or output formats, and no use-case imports a command module. A refusal may name the
flag that changes its outcome (`--force`, `--take-over`, `--restart`): the words the user types next. `setup` composes
binding.enable, expose.expose and nad.create.
"""

from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    """Progress for a person: kubectl-style status lines and notes (the CLI's Printer implements it)."""

    def status(self, label: str, operation: str, suffix: str = "") -> None: ...

    def info(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...

    def error(self, message: str) -> None: ...
