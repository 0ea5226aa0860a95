"""Global options shared by every command (kubectl's persistent flags), as one immutable value."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from macvtapctl.errors import UsageError
from macvtapctl.kube.options import DryRun

OUTPUT_FORMATS = ("table", "wide", "json", "yaml", "name")

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_dry_run(value: str | None) -> DryRun:
    if value is None or value == "":
        return DryRun.NONE
    try:
        return DryRun(value)
    except ValueError:
        raise UsageError(
            f'invalid --dry-run value "{value}": must be "none", "client" or "server"'
        ) from None


def parse_request_timeout(value: str | None, flag: str = "--request-timeout") -> float | None:
    """kubectl's --request-timeout (and --timeout): "0" means none; a bare number is seconds; else 1s, 2m, 1h,
    500ms, 1m30s. `flag` names the option in the error."""
    if value is None or value.strip() in ("", "0"):
        return None
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text)
    else:
        pos, seconds = 0, 0.0
        for m in _DURATION.finditer(text):
            if m.start() != pos:
                break
            pos = m.end()
            seconds += float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]
        if pos != len(text) or not text:
            raise UsageError(
                f'invalid {flag} "{value}": use a duration like 30s, 2m or 1m30s, or 0 for none'
            )
    return seconds or None


def check_output_format(value: str | None, allowed: tuple[str, ...] = OUTPUT_FORMATS) -> str:
    """Return the format, or fail with kubectl's message listing the allowed ones."""
    fmt = value or "table"
    if fmt not in allowed:
        shown = ",".join(sorted(allowed))
        raise UsageError(
            f'unable to match a printer suitable for the output format "{value}", allowed formats are: {shown}'
        )
    return fmt


@dataclass(frozen=True)
class Settings:
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    request_timeout: float | None = None
    impersonate: str | None = None
    impersonate_uid: str | None = None
    impersonate_groups: tuple[str, ...] = ()
    output: str | None = None
    verbosity: int = 0
    program: str = "macvtapctl"

    @property
    def debug(self) -> bool:
        return self.verbosity > 0 or debug_from_env()

    def output_format(self, allowed: tuple[str, ...] = OUTPUT_FORMATS) -> str:
        return check_output_format(self.output, allowed)


def debug_from_env() -> bool:
    return os.environ.get("MACVTAPCTL_DEBUG", "") not in ("", "0", "false")
