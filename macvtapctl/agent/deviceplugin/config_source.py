"""Where the device plugin's configuration comes from, and the rule for choosing: the API server when it answers,
else the mounted ConfigMap file (the kubelet's copy), else DP_MACVTAP_CONF from the environment (fixed).

The rule (docs/agent.md "Configuration source"):
- the API watch answers: its document is the configuration (source "api");
- it stopped answering: the last document it gave stays, unless the kubelet's copy has changed since it was
  last seen beside it — the kubelet reached the API when the agent could not, so that copy is newer (source
  "file"); falling back on every outage would put an older file in place of what the API gave a moment before;
- it never answered (no token, no Role, no route): the file.
A malformed or missing document keeps the last good configuration, whichever source it came from.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from macvtapctl.agent.configmap_watch import Seen
from macvtapctl.rules import dpconfig
from macvtapctl.rules.dpconfig import Entry

log = logging.getLogger("macvtapctl.agent.dp")
API, FILE, ENV = "api", "file", "env"
_UNSEEN = object()


class Watch(Protocol):
    @property
    def label(self) -> str: ...

    def seen(self) -> Seen: ...


class ConfigSource:
    def __init__(self, *, text: str | None = None, path: str | None = None, api: Watch | None = None,
                 on_read: Callable[[dpconfig.Config | None], None] | None = None) -> None:
        self.text = text
        self.path = path
        self.api = api
        self.on_read = on_read  # each new document: its Config, or None when it cannot be read (metrics)
        self.last_raw: str | None = None
        self.last_error: str | None = None
        self.entries: list[Entry] | None = None  # the last good configuration
        self.expose_all = False
        self.problems: list[str] = []  # why entries of the current document are not served (for /readyz)
        self.source = ENV if path is None else FILE
        self.detail = ""  # why this source, for the node report and the log
        self.where = path or dpconfig.CONFIG_KEY  # the current document's name, in messages
        self.file_beside_api: object = _UNSEEN  # the file's text when the API's document was last taken
        self.was_read = False

    def current(self) -> tuple[str | None, str, str]:
        """The document the rule picks now: (text or None, where it is from, why it cannot be read)."""
        if self.path is None:
            text = self.text if self.text is not None else os.environ.get(dpconfig.CONFIG_KEY, "[]")
            return self._pick(ENV, "", text, dpconfig.CONFIG_KEY, "")
        file_text, file_error = _read(self.path)
        if self.api is None:
            return self._pick(FILE, "", file_text, self.path, file_error)
        seen = self.api.seen()
        if seen.listed and (seen.healthy or file_text == self.file_beside_api):
            if seen.healthy:
                self.file_beside_api = file_text
            detail = "" if seen.healthy else f"the last document seen; the API server does not answer: {seen.why}"
            return self._pick(API, detail, seen.raw, self.api.label, "" if seen.raw is not None else seen.why)
        detail = (f"the API server does not answer ({seen.why})" if not seen.listed else
                  f"the kubelet's copy changed while the API server does not answer ({seen.why})")
        return self._pick(FILE, detail, file_text, self.path, file_error)

    def _pick(self, source: str, detail: str, text: str | None, where: str,
              error: str) -> tuple[str | None, str, str]:
        if (source, detail) != (self.source, self.detail) and (self.api is not None or detail):
            level = logging.WARNING if source == FILE else logging.INFO
            log.log(level, "configuration source: %s%s", where, f" ({detail})" if detail else "")
        self.source, self.detail, self.where = source, detail, where
        return text, where, error

    def read(self) -> bool:
        """Re-read; True when the usable configuration changed. A malformed document keeps the last good one."""
        raw, where, error = self.current()
        self.was_read = True
        if raw is None:
            if self.last_raw is not None or self.entries is None or error != self.last_error:
                log.error("cannot read %s: %s; keeping the last good configuration", where, error)
            self.last_raw, self.last_error = None, error
            if self.entries is None:
                self.entries, self.expose_all = [], False
                return True
            return False
        self.last_error = None
        if raw == self.last_raw:
            return False
        self.last_raw = raw
        try:
            cfg = dpconfig.parse(raw, where=where)
        except dpconfig.MalformedConfigError as exc:
            log.error("%s; keeping the last good configuration", exc.message)
            self.problems = [exc.message]
            if self.on_read:
                self.on_read(None)
            if self.entries is None:
                self.entries, self.expose_all = [], False
                return True
            return False
        for notice in cfg.notices:
            log.warning("%s", notice.text)
        entries, skipped = dpconfig.usable_entries(cfg)
        for reason in skipped:
            log.error("%s", reason)
        if self.on_read:
            self.on_read(cfg)
        self.problems = skipped
        changed = (entries, cfg.expose_all) != (self.entries, self.expose_all)
        self.entries, self.expose_all = entries, cfg.expose_all
        return changed

    def document(self) -> tuple[str | None, str, str]:
        """The document last read (what the device plugin serves, or refused), for the node checks; without a
        device plugin nothing reads, so the rule's current pick."""
        if not self.was_read:
            return self.current()
        return self.last_raw, self.where, self.last_error or ""

    def state(self) -> dict[str, str]:
        """For the node report (doctor, status) and /readyz's detail."""
        return {"source": self.source, "from": self.where, **({"detail": self.detail} if self.detail else {})}


def _read(path: str) -> tuple[str | None, str]:
    try:
        return Path(path).read_text(), ""
    except OSError as exc:
        return None, exc.strerror or str(exc)
