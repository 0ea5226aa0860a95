"""Everything the CLI prints: data on stdout (json, yaml, name, tables), messages on stderr.

One place for the shapes kubectl users know: `kind.group/name created`, `Warning: ...`, `error: ...`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

from macvtapctl import yamlout


def _color_enabled(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR") or os.environ.get("MACVTAPCTL_NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _paint(text: str, code: str, stream: TextIO) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if _color_enabled(stream) else text


def to_yaml(obj: Any) -> str:
    return yamlout.dump(obj)


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=4, ensure_ascii=False) + "\n"


def resource_label(obj: Mapping[str, Any]) -> str:
    """kubectl's `kind.group/name` (core kinds have no group)."""
    api_version = str(obj.get("apiVersion", ""))
    kind = str(obj.get("kind", "")).lower()
    group = api_version.split("/", maxsplit=1)[0] if "/" in api_version else ""
    name = obj.get("metadata", {}).get("name", "")
    return f"{kind}.{group}/{name}" if group else f"{kind}/{name}"


def strip_managed_fields(obj: Any) -> Any:
    if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
        meta = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
        return {**obj, "metadata": meta}
    return obj


class Printer:
    """Writes data to stdout and everything else to stderr."""

    def __init__(
        self, out: TextIO | None = None, err: TextIO | None = None, *, verbosity: int = 0
    ) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.verbosity = verbosity

    # --- messages (stderr) ---
    def status(self, label: str, operation: str, suffix: str = "") -> None:
        """A kubectl status line: `configmap/x configured (server dry run)`."""
        if self.verbosity >= 0:
            print(f"{label} {operation}{suffix}", file=self.err)

    def info(self, message: str) -> None:
        if self.verbosity >= 0:
            print(message, file=self.err)

    def debug(self, message: str) -> None:
        if self.verbosity > 0:
            print(message, file=self.err)

    def warn(self, message: str) -> None:
        print(f"{_paint('Warning:', '33', self.err)} {message}", file=self.err)

    def error(self, message: str) -> None:
        print(f"{_paint('error:', '31', self.err)} {message}", file=self.err)

    # --- data (stdout) ---
    def data(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def objects(self, objs: Sequence[Mapping[str, Any]], fmt: str, *, as_list: bool = False) -> None:
        """Print API objects as json/yaml (a List for several or when listing, like kubectl) or name."""
        clean = [strip_managed_fields(o) for o in objs]
        if fmt == "name":
            self.data("".join(resource_label(o) + "\n" for o in clean))
        elif fmt in ("json", "yaml"):
            single = len(clean) == 1 and not as_list
            doc: Any = clean[0] if single else {"apiVersion": "v1", "kind": "List", "items": clean}
            self.data(to_json(doc) if fmt == "json" else to_yaml(doc))
        else:
            raise ValueError(f"objects() cannot print {fmt}")

    def document(self, doc: Any, fmt: str) -> None:
        """Print a plain (non-object) document, e.g. version info."""
        self.data(to_json(doc) if fmt == "json" else to_yaml(doc))

    def yaml_stream(self, docs: Iterable[Any]) -> None:
        """A multi-document YAML stream (GitOps-friendly)."""
        self.data(yamlout.dump_all(strip_managed_fields(d) for d in docs))

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """kubectl-style aligned columns, three spaces apart, no borders."""
        cells = [[str(h).upper() for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
        lines = ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
        self.data("\n".join(lines) + "\n")
