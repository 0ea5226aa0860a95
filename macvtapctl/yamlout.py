"""A small, fast block-YAML emitter for the plain data macvtapctl prints (dicts, lists, str, int, bool, None).

PyYAML's representer walks every node in Python and costs ~0.4 ms per VirtualMachine; this emitter is a
few times faster and needs no import. Output matches PyYAML's block style (indentless sequences under keys,
literal blocks for multi-line strings); every string that is not trivially safe is double-quoted, so a
YAML 1.1 reader never turns a value into a bool, number or date. tests/unit/test_yamlout.py checks that
PyYAML reads back exactly what was written.
"""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Any

_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./-]*\Z")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?[A-Za-z]+\Z")  # 1Gi, 100m, 1.5Gi: never a YAML number or date
# YAML 1.1 words a reader would turn into bools or null.
_RESERVED = {"y", "yes", "n", "no", "true", "false", "on", "off", "null"}
# Characters YAML does not allow unescaped (JSON already escapes those below 0x20).
_NON_PRINTABLE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")  # and YAML 1.1 line breaks
_BLOCK_SAFE = re.compile(r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff]*\Z")


@functools.lru_cache(maxsize=4096)  # keys and most values repeat across objects
def _string(text: str) -> str:
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED and not text.endswith(("-", ".")):
        return text
    if _QUANTITY.fullmatch(text) and not text.lower().startswith(("0x", "0b", "0o")):
        return text
    quoted = json.dumps(text, ensure_ascii=False)
    return _NON_PRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


def scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return json.dumps(value) if math.isfinite(value) else _special_float(value)
    if isinstance(value, str):
        return _string(value)
    raise TypeError(f"cannot emit {type(value).__name__} as YAML")


def _special_float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    return ".inf" if value > 0 else "-.inf"


def _literal(text: str, indent: int) -> str | None:
    """A literal block (|, |- or |+) for multi-line text, or None when it cannot be one safely."""
    if "\n" not in text or not _BLOCK_SAFE.match(text) or text[:1] in (" ", "\n") or "\r" in text:
        return None
    body = text.rstrip("\n")
    trailing = len(text) - len(body)
    if any(line != line.rstrip(" \t") for line in body.split("\n")):
        return None
    chomp = "-" if trailing == 0 else ("" if trailing == 1 else "+")
    pad = " " * indent
    lines = [pad + line if line else "" for line in body.split("\n")]
    out = f"|{chomp}\n" + "\n".join(lines)
    if chomp == "+":
        out += "\n" * (trailing - 1)
    return out


def _emit(value: Any, indent: int, out: list[str], prefix: str) -> None:
    """Append lines for `value`; `prefix` is what precedes it on its first line ("key:" or "- ")."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            out.append(f"{prefix} {{}}" if prefix.endswith(":") else f"{prefix}{{}}")
            return
        first = True
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError("YAML keys must be strings here")
            head = f"{_string(key)}:"
            if first and prefix.startswith("-"):
                line_prefix, child_pad = prefix + head, indent
            else:
                if first and prefix:
                    out.append(prefix)
                line_prefix, child_pad = pad + head, indent
            first = False
            _emit_member(item, child_pad, out, line_prefix)
        return
    if isinstance(value, list):
        if not value:
            out.append(f"{prefix} []" if prefix.endswith(":") else f"{prefix}[]")
            return
        if prefix:
            out.append(prefix)
        for item in value:
            _emit_item(item, indent, out)
        return
    out.append(f"{prefix}{scalar(value)}" if not prefix.endswith(":") else f"{prefix} {scalar(value)}")


def _emit_member(item: Any, indent: int, out: list[str], head: str) -> None:
    """`key: value` where key is already in `head` (indent = the key's column)."""
    if isinstance(item, dict) and item:
        out.append(head)
        _emit(item, indent + 2, out, "")
    elif isinstance(item, list) and item:
        out.append(head)
        for sub in item:
            _emit_item(sub, indent, out)  # indentless sequence, like PyYAML
    elif isinstance(item, str) and "\n" in item and (block := _literal(item, indent + 2)) is not None:
        out.append(f"{head} {block}")
    else:
        _emit(item, indent, out, head)


def _emit_item(item: Any, indent: int, out: list[str]) -> None:
    pad = " " * indent
    if isinstance(item, dict) and item:
        keys = list(item.items())
        k0, v0 = keys[0]
        _emit_member(v0, indent + 2, out, f"{pad}- {_string(k0)}:")
        for key, value in keys[1:]:
            _emit_member(value, indent + 2, out, f"{pad}  {_string(key)}:")
    elif isinstance(item, list) and item:
        out.append(f"{pad}-")
        for sub in item:
            _emit_item(sub, indent + 2, out)
    elif isinstance(item, str) and "\n" in item and (block := _literal(item, indent + 2)) is not None:
        out.append(f"{pad}- {block}")
    else:
        _emit(item, indent, out, f"{pad}- ")


def dump(value: Any) -> str:
    """One YAML document (no leading ---)."""
    out: list[str] = []
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _emit_member(item, 0, out, f"{_string(key)}:")
    elif isinstance(value, list) and value:
        for item in value:
            _emit_item(item, 0, out)
    else:
        _emit(value, 0, out, "")
    return "\n".join(out) + "\n"


def dump_all(docs: Any) -> str:
    return "---\n".join(dump(d) for d in docs)
