"""What the API layer needs from its callers: how to connect, and whether a write is a dry run.

Plain values, no CLI: the command layer builds them from its flags (cli/settings.py)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class DryRun(StrEnum):
    NONE = "none"
    CLIENT = "client"  # computed locally: never reaches the API server
    SERVER = "server"  # sent with dryRun=All: validated and admitted, not persisted

    @property
    def suffix(self) -> str:
        """What kubectl appends to a status line."""
        return {"none": "", "client": " (dry run)", "server": " (server dry run)"}[self.value]


class ConnectionOptions(Protocol):
    """kubectl's connection flags: kubeconfig path(s), context, the whole-request deadline in seconds, and whom to
    impersonate (--as, --as-uid, --as-group)."""

    @property
    def kubeconfig(self) -> str | None: ...

    @property
    def context(self) -> str | None: ...

    @property
    def request_timeout(self) -> float | None: ...

    @property
    def impersonate(self) -> str | None: ...

    @property
    def impersonate_uid(self) -> str | None: ...

    @property
    def impersonate_groups(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Connection:
    kubeconfig: str | None = None
    context: str | None = None
    request_timeout: float | None = None
    impersonate: str | None = None
    impersonate_uid: str | None = None
    impersonate_groups: tuple[str, ...] = ()
