"""A finding (stable id, severity, the object, the cause, the fix) and how findings name objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from macvtapctl.rules import nad as nadr
from macvtapctl.rules.doctor.snapshot import Snapshot

ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITIES = (ERROR, WARNING, INFO)


@dataclass(frozen=True)
class Finding:
    id: str
    severity: str
    object: str  # kind/namespace/name or kind/name
    cause: str
    fix: str | None = None
    refs: tuple[str, ...] = ()  # other objects this finding concerns (narrowing by VM)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "severity": self.severity, "object": self.object, "cause": self.cause,
                "fix": self.fix}


def ref(kind: str, name: str, namespace: str | None = None) -> str:
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def obj_ref(obj: dict[str, Any]) -> str:
    md = obj.get("metadata") or {}
    return ref(str(obj.get("kind", "")).lower(), str(md.get("name")), md.get("namespace"))


def nad_fix(nad: dict[str, Any], s: Snapshot, *, mtu: int | None = None, promisc: bool | None = None) -> str:
    """`nad create` that rewrites this NAD as macvtapctl renders it (no owner/group, no ignored keys), keeping its
    resource, mtu and promiscMode unless told otherwise; --force when someone else wrote it (it refuses without)."""
    conf = nadr.config_of(nad) or {}
    md = nad["metadata"]
    cmd = f"macvtapctl nad create {md['name']} -n {md['namespace']} --resource {nadr.resource_of(nad)}"
    keep = conf.get("mtu") if mtu is None else mtu
    if isinstance(keep, int) and keep > 0:
        cmd += f" --mtu {keep}"
    if (conf.get("promiscMode") is True) if promisc is None else promisc:
        cmd += " --promisc"
    return cmd + (" --force" if nadr.ownership_problem(nad, s.field_manager) else "")
