"""The device-plugin configuration (DP_MACVTAP_CONF): parse strictly, validate, edit, render. No I/O.

Format (kubevirt/macvtap-cni): a JSON array of {name, lowerDevice, mode, capacity}; `[]` exposes every
physical link or bond under its own name. Entries written by others are kept verbatim.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from macvtapctl import validate
from macvtapctl.errors import PreconditionError

CONFIGMAP_NAME = "macvtap-deviceplugin-config"
CONFIG_KEY = "DP_MACVTAP_CONF"
KNOWN_KEYS = ("name", "lowerDevice", "mode", "capacity")
KEY_HINTS = {"master": "lowerDevice", "lower_device": "lowerDevice", "lowerdevice": "lowerDevice",
             "device": "lowerDevice", "macvtapMode": "mode", "count": "capacity"}
DEFAULT_MODE = "bridge"
DEFAULT_CAPACITY = 100


class MalformedConfigError(PreconditionError):
    """The stored JSON cannot be parsed: refuse to write anything over it."""


@dataclass(frozen=True)
class Entry:
    name: str
    lower_device: str
    mode: str = DEFAULT_MODE
    capacity: int = DEFAULT_CAPACITY

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "lowerDevice": self.lower_device, "mode": self.mode, "capacity": self.capacity}

    def validated(self) -> Entry:
        validate.check_interface_name(self.lower_device, "lower device")
        validate.check_mode(self.mode)
        validate.check_capacity(self.capacity)
        validate.check_resource_name(self.name, self.capacity)
        return self


@dataclass
class Config:
    items: list[dict[str, Any]] = field(default_factory=list)  # as stored, verbatim
    warnings: list[str] = field(default_factory=list)

    @property
    def expose_all(self) -> bool:
        return not self.items

    def names(self) -> list[str]:
        return [str(i.get("name", "")) for i in self.items]

    def find(self, name: str) -> dict[str, Any] | None:
        return next((i for i in self.items if i.get("name") == name), None)

    def render(self) -> str:
        return json.dumps(self.items, indent=2) + "\n" if self.items else "[]"


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for k, v in pairs:
        if k in seen:
            raise ValueError(f"duplicate key {k!r}")
        seen[k] = v
    return seen


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def without_trailing_commas(text: str) -> str:
    """The text with every comma that directly precedes a closing ] or } removed (strings left alone)."""
    out: list[str] = []
    in_string = escaped = False
    for i, ch in enumerate(text):
        if in_string:
            in_string = not (ch == '"' and not escaped)
            escaped = ch == "\\" and not escaped
        elif ch == '"':
            in_string = True
        elif ch == "," and text[i + 1:].lstrip()[:1] in ("]", "}"):
            continue
        out.append(ch)
    return "".join(out)


def parse(text: str | None, *, where: str = CONFIG_KEY, lenient: bool = False) -> Config:
    """Strict JSON (no trailing commas, NaN or duplicate keys); problems in entries become warnings.

    `lenient` (the agent): trailing commas are accepted with a warning — the KubeVirt user guide's own example
    has one, and a node that registers nothing over a comma helps nobody.
    """
    if text is None or not text.strip():
        return Config(warnings=[f"{where} is empty; treating it as [] (every physical link or bond)"])
    if lenient:
        try:
            return parse(text, where=where)
        except MalformedConfigError as exc:
            fixed = without_trailing_commas(text)
            if fixed == text:
                raise
            cfg = parse(fixed, where=where)
            cfg.warnings.insert(0, exc.message.replace("; fix it by hand (macvtapctl will not overwrite it)", "")
                                + "; accepted without it (strict JSON parsers, upstream's included, refuse it: "
                                "remove the comma)")
            return cfg
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        before = text[:exc.pos].rstrip()
        if before.endswith(","):  # the classic: the user guide's own example has one
            comma = len(before) - 1
            line = text.count("\n", 0, comma) + 1
            col = comma - (text.rfind("\n", 0, comma) + 1) + 1
            what, lineno, colno = "trailing comma", line, col
        else:
            what, lineno, colno = exc.msg, exc.lineno, exc.colno
        raise MalformedConfigError(
            f"{where} is not valid JSON: {what} at line {lineno} column {colno}"
            f"{_context(text, lineno)}; fix it by hand (macvtapctl will not overwrite it)") from None
    except ValueError as exc:
        raise MalformedConfigError(f"{where} is not valid JSON: {exc}; fix it by hand") from None
    if not isinstance(doc, list):
        raise MalformedConfigError(f"{where} must be a JSON array of entries, not {type(doc).__name__}")
    cfg = Config()
    seen: set[str] = set()
    for index, item in enumerate(doc):
        if not isinstance(item, dict):
            raise MalformedConfigError(f"{where} entry {index} is not a JSON object")
        cfg.items.append(item)
        cfg.warnings.extend(entry_problems(item, index, seen))
    return cfg


def _context(text: str, lineno: int) -> str:
    lines = text.splitlines()
    if 1 <= lineno <= len(lines) and lines[lineno - 1].strip():
        return f" ({lines[lineno - 1].strip()!r})"
    if lineno >= 2 and lineno - 2 < len(lines):
        return f" (after {lines[lineno - 2].strip()!r})"
    return ""


def entry_problems(item: dict[str, Any], index: int, seen: set[str]) -> list[str]:
    """Why the device plugin would ignore or misread this entry (the agent skips it; upstream misbehaves)."""
    name = item.get("name")
    label = f"entry {name!r}" if isinstance(name, str) and name else f"entry {index}"
    problems = []
    for key in item:
        if key not in KNOWN_KEYS:
            hint = f" (did you mean {KEY_HINTS[key]!r}?)" if key in KEY_HINTS else ""
            problems.append(f"{label}: unknown key {key!r}{hint}; the device plugin ignores it")
    if not isinstance(name, str) or not name:
        problems.append(f"{label}: missing name")
    elif name in seen:
        problems.append(f"{label}: duplicate name; only one resource {validate.full_resource_name(name)} exists")
    else:
        seen.add(name)
        problem = validate.resource_name_problem(name, _capacity(item))
        if problem:
            problems.append(f"{label}: name {problem}")
    lower = item.get("lowerDevice")
    if not isinstance(lower, str) or not lower:
        problems.append(f"{label}: empty lowerDevice; the resource would advertise no devices")
    else:
        problem = validate.interface_name_problem(lower)
        if problem:
            problems.append(f"{label}: lowerDevice {lower!r} {problem}")
    mode = item.get("mode", DEFAULT_MODE)
    if mode not in ("", *validate.MACVTAP_MODES):
        problems.append(f"{label}: mode {mode!r} is not one of {', '.join(validate.MACVTAP_MODES)}")
    cap = item.get("capacity", DEFAULT_CAPACITY)
    if not isinstance(cap, int) or isinstance(cap, bool) or not (
            validate.CAPACITY_RANGE[0] <= cap <= validate.CAPACITY_RANGE[1]):
        problems.append(f"{label}: capacity {cap!r} is not an integer from {validate.CAPACITY_RANGE[0]} "
                        f"to {validate.CAPACITY_RANGE[1]}")
    return problems


def _capacity(item: dict[str, Any]) -> int:
    cap = item.get("capacity", DEFAULT_CAPACITY)
    return cap if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0 else 1


def upsert(cfg: Config, entry: Entry) -> tuple[Config, str]:
    """Add or replace the entry with this name, in place; returns the new config and created|configured|unchanged."""
    new = entry.to_json()
    items = []
    op = "created"
    for item in cfg.items:
        if item.get("name") == entry.name and op == "created":
            op = "unchanged" if item == new else "configured"
            items.append(new)
        else:
            items.append(item)
    if op == "created":
        items.append(new)
    return Config(items=items), op


def remove(cfg: Config, name: str) -> tuple[Config, bool]:
    items = [i for i in cfg.items if i.get("name") != name]
    return Config(items=items), len(items) != len(cfg.items)


def entries_for_display(cfg: Config) -> list[dict[str, Any]]:
    """Entries with defaults filled in and the full resource name, for `exposed`."""
    return [{
        "name": i.get("name"), "lowerDevice": i.get("lowerDevice"), "mode": i.get("mode") or DEFAULT_MODE,
        "capacity": i.get("capacity", DEFAULT_CAPACITY),
        "resource": validate.full_resource_name(str(i.get("name"))),
    } for i in cfg.items]


def usable_entries(cfg: Config) -> tuple[list[Entry], list[str]]:
    """The entries the device plugin can serve, and why each other one is skipped (named)."""
    entries: list[Entry] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for index, item in enumerate(cfg.items):
        problems = entry_problems(item, index, seen)
        if problems:
            skipped.append("; ".join(problems) + " (entry skipped)")
            continue
        mode = item.get("mode") or DEFAULT_MODE
        entries.append(Entry(name=item["name"], lower_device=item["lowerDevice"], mode=mode,
                             capacity=item.get("capacity", DEFAULT_CAPACITY)))
    return entries, skipped
