"""Running one of doctor's checks as diagnose does: on a snapshot and the View derived from it."""

from __future__ import annotations

from macvtapctl.rules import doctor


def findings_of(check: doctor.Check, s: doctor.Snapshot) -> list[doctor.Finding]:
    return list(check(s, doctor.View.of(s)))
