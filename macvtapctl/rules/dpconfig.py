"""The device-plugin configuration (DP_MACVTAP_CONF): parse as upstream reads it, validate, edit, render. No I/O.

Format (kubevirt/macvtap-cni): a JSON array of {name, lowerDevice, mode, capacity}; `[]` (or `null`) exposes every
physical link or bond under its own name.

A drop-in must read every document upstream's device plugin reads, the same way: Go's encoding/json matches keys
case-insensitively (the last of two spellings wins), ignores unknown keys, keeps the last entry of a duplicated
name and treats `capacity: 0` (the zero value) as the default. Those are accepted here too, each with a warning
and a kind (counted in the agent's /metrics). Trailing commas, which upstream refuses by crash-looping, are
accepted as well: the KubeVirt user guide's own example has one. What upstream accepts but then silently serves
nothing for (no lowerDevice — e.g. `master` —, an empty name, an unknown mode) is refused by entry, loudly.
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
KEY_HINTS = {"master": "lowerDevice", "lower_device": "lowerDevice", "device": "lowerDevice",
             "macvtapMode": "mode", "count": "capacity"}
DEFAULT_MODE = "bridge"
DEFAULT_CAPACITY = 100
PASSTHRU = "passthru"

# Kinds of input upstream accepts that are read here with a warning (label values of the agent's counter).
TRAILING_COMMA = "trailing_comma"
KEY_CASE = "key_case"
UNKNOWN_KEY = "unknown_key"
DUPLICATE_KEY = "duplicate_key"
DUPLICATE_NAME = "duplicate_name"
CAPACITY_ZERO = "capacity_zero"
NULL_DOCUMENT = "null_document"
PASSTHRU_CAPACITY = "passthru_capacity"
TOLERATED_KINDS = (TRAILING_COMMA, KEY_CASE, UNKNOWN_KEY, DUPLICATE_KEY, DUPLICATE_NAME, CAPACITY_ZERO,
                   NULL_DOCUMENT, PASSTHRU_CAPACITY)


class MalformedConfigError(PreconditionError):
    """The stored text cannot be read as a configuration at all: refuse to write anything over it."""


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


@dataclass(frozen=True)
class Notice:
    kind: str
    text: str


@dataclass
class Config:
    items: list[dict[str, Any]] = field(default_factory=list)  # as stored; known keys in their canonical case
    notices: list[Notice] = field(default_factory=list)  # upstream-accepted quirks, read with a warning
    problems: list[str] = field(default_factory=list)  # entries refused by name (nothing would be served)
    rewritten: bool = False  # render() differs in meaning-preserving ways (commas, key case) from the stored text

    @property
    def warnings(self) -> list[str]:
        return [n.text for n in self.notices] + self.problems

    @property
    def expose_all(self) -> bool:
        return not self.items

    def names(self) -> list[str]:
        return [str(i.get("name", "")) for i in self.items]

    def find(self, name: str) -> dict[str, Any] | None:
        """The entry that is served for `name`: the last one, as upstream."""
        return next((i for i in reversed(self.items) if i.get("name") == name), None)

    def render(self) -> str:
        return json.dumps(self.items, indent=2) + "\n" if self.items else "[]"


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as written: every key in order, duplicates included."""


def _plain(value: Any) -> Any:
    if isinstance(value, _Pairs):
        return {k: _plain(v) for k, v in value}  # later duplicates win, as in Go
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


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


def _decode(text: str, where: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_Pairs, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        before = text[:exc.pos].rstrip()
        if before.endswith(","):
            comma = len(before) - 1
            line = text.count("\n", 0, comma) + 1
            col = comma - (text.rfind("\n", 0, comma) + 1) + 1
            what, lineno, colno = "trailing comma", line, col
        else:
            what, lineno, colno = exc.msg, exc.lineno, exc.colno
        raise MalformedConfigError(f"{where} is not valid JSON: {what} at line {lineno} column {colno}"
                                   f"{_context(text, lineno)}") from None
    except ValueError as exc:
        raise MalformedConfigError(f"{where} is not valid JSON: {exc}") from None


def parse(text: str | None, *, where: str = CONFIG_KEY) -> Config:
    """Read DP_MACVTAP_CONF as upstream does (see the module doc); raise MalformedConfigError when no reading
    exists (broken JSON, not an array, an entry that is not an object)."""
    if text is None or not text.strip():
        return Config(notices=[Notice(NULL_DOCUMENT, f"{where} is empty; treating it as [] (every physical link "
                                                     "or bond)")])
    notices: list[Notice] = []
    try:
        try:
            doc = _decode(text, where)
        except MalformedConfigError as exc:
            fixed = without_trailing_commas(text)
            if fixed == text:
                raise
            doc = _decode(fixed, where)
            notices.append(Notice(TRAILING_COMMA, exc.message.replace(" is not valid JSON: ", " has a ", 1)
                                  + ": read without it (upstream's device plugin exits on it; macvtapctl writes "
                                  "the document back without it)"))
    except MalformedConfigError as exc:
        raise MalformedConfigError(f"{exc.message}; fix it by hand (macvtapctl will not overwrite it)") from None
    if doc is None:
        notices.append(Notice(NULL_DOCUMENT, f"{where} is null; read as [] (every physical link or bond)"))
        doc = []
    if isinstance(doc, _Pairs) or not isinstance(doc, list):
        raise MalformedConfigError(f"{where} must be a JSON array of entries, not {_json_type(doc)}; "
                                   "fix it by hand (macvtapctl will not overwrite it)")
    cfg = Config(notices=notices, rewritten=bool(notices))
    for index, raw in enumerate(doc):
        if not isinstance(raw, _Pairs):
            raise MalformedConfigError(f"{where} entry {index} is not a JSON object but {_json_type(raw)}; "
                                       "fix it by hand (macvtapctl will not overwrite it)")
        item, entry_notices = _canonical(raw, index)
        cfg.items.append(item)
        cfg.notices.extend(entry_notices)
        cfg.rewritten = cfg.rewritten or any(n.kind in (KEY_CASE, DUPLICATE_KEY) for n in entry_notices)
    _check_entries(cfg)
    return cfg


def _json_type(value: Any) -> str:
    return {dict: "an object", _Pairs: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def _label(name: Any, index: int) -> str:
    return f"entry {name!r}" if isinstance(name, str) and name else f"entry {index}"


def _canonical(pairs: _Pairs, index: int) -> tuple[dict[str, Any], list[Notice]]:
    """Known keys in any case under their canonical spelling (the last spelling wins, as Go's decoder)."""
    fold = {k.lower(): k for k in KNOWN_KEYS}
    item: dict[str, Any] = {}
    renamed: list[str] = []
    duplicated: list[str] = []
    for key, value in pairs:
        canonical = key if key in KNOWN_KEYS else fold.get(key.lower(), key)
        if canonical != key:
            renamed.append(f"{key!r} as {canonical!r}")
        if canonical in item:
            duplicated.append(canonical)
            del item[canonical]  # keep the position of the last spelling
        item[canonical] = _plain(value)
    label = _label(item.get("name"), index)
    notices = []
    if renamed:
        notices.append(Notice(KEY_CASE, f"{label}: read {', '.join(renamed)} (JSON keys are case-insensitive to "
                                        "the device plugin; write them as shown)"))
    for key in duplicated:
        notices.append(Notice(DUPLICATE_KEY, f"{label}: key {key!r} appears more than once; the last one is used"))
    for key in item:
        if key not in KNOWN_KEYS and (key not in KEY_HINTS or KEY_HINTS[key] in item):  # else: refused, named
            notices.append(Notice(UNKNOWN_KEY, f"{label}: unknown key {key!r} is ignored"))
    return item, notices


def _check_entries(cfg: Config) -> None:
    """Refused entries into cfg.problems; duplicate names (the last wins) and capacity 0 into notices."""
    last: dict[str, int] = {}
    for index, item in enumerate(cfg.items):
        name = item.get("name")
        if isinstance(name, str) and name:
            last[name] = index
    for index, item in enumerate(cfg.items):
        name = item.get("name")
        label = _label(name, index)
        if isinstance(name, str) and name and last[name] != index:
            cfg.notices.append(Notice(DUPLICATE_NAME, f"{label} (entry {index}): duplicate name; entry {last[name]}"
                                                      " is used (the last one, as upstream)"))
            continue
        problems = entry_problems(item, index)
        if problems:
            cfg.problems.append(f"{label}: " + "; ".join(problems) + " (entry refused)")
            continue
        if "capacity" in item and not item["capacity"]:
            cfg.notices.append(Notice(CAPACITY_ZERO, f"{label}: capacity 0 means the default, "
                                                     f"{DEFAULT_CAPACITY} (as upstream); write it out"))
        if item.get("mode") == PASSTHRU and item.get("capacity") and _capacity(item) > 1:
            cfg.notices.append(Notice(PASSTHRU_CAPACITY, f"{label}: mode passthru gives the whole of "
                                      f"{item.get('lowerDevice')} to one macvtap: capacity "
                                      f"{_capacity(item)} served as 1"))


def entry_problems(item: dict[str, Any], index: int = 0) -> list[str]:
    """Why this entry cannot be served (each problem names the value and the rule). Empty: it can."""
    problems = []
    for key, canonical in KEY_HINTS.items():
        if key in item and canonical not in item:
            problems.append(f"key {key!r} is not read by the device plugin: write {canonical!r}")
    name = item.get("name")
    cap = item.get("capacity")
    cap = 0 if cap is None else cap  # absent or null: Go's zero value, the default
    if not isinstance(name, str) or not name:
        problems.append("missing name (the resource would be macvtap.network.kubevirt.io/, which no pod can "
                        "request)")
    else:
        problem = validate.resource_name_problem(name, _capacity(item))
        if problem:
            problems.append(f"name {problem}")
    lower = item.get("lowerDevice")
    if not isinstance(lower, str) or not lower:
        problems.append("empty lowerDevice: no device would ever be advertised")
    else:
        problem = validate.interface_name_problem(lower)
        if problem:
            problems.append(f"lowerDevice {lower!r} {problem}")
    mode = item.get("mode", DEFAULT_MODE)
    if mode not in ("", None, *validate.MACVTAP_MODES):
        problems.append(f"mode {mode!r} is not one of {', '.join(validate.MACVTAP_MODES)} (every Allocate would "
                        "fail)")
    if not isinstance(cap, int) or isinstance(cap, bool) or not (
            cap == 0 or validate.CAPACITY_RANGE[0] <= cap <= validate.CAPACITY_RANGE[1]):
        problems.append(f"capacity {cap!r} is not an integer from {validate.CAPACITY_RANGE[0]} to "
                        f"{validate.CAPACITY_RANGE[1]} (0 or absent: {DEFAULT_CAPACITY})")
    return problems


def _capacity(item: dict[str, Any]) -> int:
    cap = item.get("capacity")
    if not isinstance(cap, int) or isinstance(cap, bool) or cap <= 0:
        return DEFAULT_CAPACITY
    return cap


def served(item: dict[str, Any]) -> Entry:
    """What the device plugin serves for a valid entry: defaults filled in, passthru capped at one device."""
    mode = item.get("mode") or DEFAULT_MODE
    capacity = 1 if mode == PASSTHRU else _capacity(item)
    return Entry(name=item["name"], lower_device=item["lowerDevice"], mode=mode, capacity=capacity)


def upsert(cfg: Config, entry: Entry) -> tuple[Config, str]:
    """Add or replace the entry with this name; returns the new config and created|configured|unchanged.

    Duplicates of the name collapse into the one entry (it is the one that would be served anyway)."""
    new = entry.to_json()
    items: list[dict[str, Any]] = []
    op = "created"
    for item in cfg.items:
        if item.get("name") != entry.name:
            items.append(item)
        elif op == "created":
            items.append(new)
            op = "configured"
    if op == "created":
        items.append(new)
    elif [i for i in cfg.items if i.get("name") == entry.name] == [new] and not cfg.rewritten:
        op = "unchanged"
    return Config(items=items), op


def remove(cfg: Config, name: str) -> tuple[Config, bool]:
    items = [i for i in cfg.items if i.get("name") != name]
    return Config(items=items), len(items) != len(cfg.items)


def entries_for_display(cfg: Config) -> list[dict[str, Any]]:
    """Entries with defaults filled in and the full resource name, for `exposed`."""
    return [{
        "name": i.get("name"), "lowerDevice": i.get("lowerDevice"), "mode": i.get("mode") or DEFAULT_MODE,
        "capacity": _capacity(i) if i.get("mode") != PASSTHRU else 1,
        "resource": validate.full_resource_name(str(i.get("name"))),
    } for i in cfg.items]


def usable_entries(cfg: Config) -> tuple[list[Entry], list[str]]:
    """The entries the device plugin serves (the last of a duplicated name), and why each refused one is."""
    last = {item.get("name"): index for index, item in enumerate(cfg.items)}
    entries = [served(item) for index, item in enumerate(cfg.items)
               if last[item.get("name")] == index and not entry_problems(item)]
    return entries, list(cfg.problems)


def _context(text: str, lineno: int) -> str:
    lines = text.splitlines()
    if 1 <= lineno <= len(lines) and lines[lineno - 1].strip():
        return f" ({lines[lineno - 1].strip()!r})"
    if lineno >= 2 and lineno - 2 < len(lines):
        return f" (after {lines[lineno - 2].strip()!r})"
    return ""


def digest(text: str | None) -> str | None:
    """Which configuration a node report judged: the agent hashes the text it read, doctor the ConfigMap's value
    (the kubelet mounts it byte for byte), so a report older than the ConfigMap is told apart."""
    import hashlib  # here: only doctor and the agent take it, and loading it is ~2.5 ms of every command's start

    return None if text is None else hashlib.sha256(text.encode()).hexdigest()[:16]
