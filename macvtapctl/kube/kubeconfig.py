"""Reading the kubeconfig ourselves (PyYAML only): which file, which context, which namespace.

transport.py turns the selected context into a connection; this gives kubectl's precedence and clear errors,
e.g. for offline rendering that only needs the namespace.
"""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path
from typing import Any

import yaml

from macvtapctl.errors import Hint, MacvtapctlError, UsageError


def kubeconfig_paths(explicit: str | None) -> list[Path]:
    """kubectl's precedence: --kubeconfig, then $KUBECONFIG (a path list), then ~/.kube/config."""
    if explicit:
        return [Path(explicit).expanduser()]
    env = os.environ.get("KUBECONFIG", "")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path("~/.kube/config").expanduser()]


# libyaml's loader when PyYAML was built with it (its wheels are): ~10x faster than the pure-Python one.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.lru_cache(maxsize=8)
def _parsed(path: Path, mtime_ns: int, size: int) -> Any:
    """One kubeconfig file's document, read and parsed once per process (a command asks for its namespace and
    then connects); the file's mtime and size in the key: a rewritten file is read again."""
    text = path.read_text()
    try:
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader (CSafeLoader or SafeLoader)
    except yaml.YAMLError:
        return yaml.safe_load(text)  # the pure-Python loader's error, with the offending line, as before


def _document(path: Path) -> Any:
    st = path.stat()
    return copy.deepcopy(_parsed(path, st.st_mtime_ns, st.st_size))  # the caller's own copy: the cache stays as read


def load_merged(paths: list[Path], *, explicit: bool) -> dict[str, Any]:
    """Merge like kubectl: the first file to set a value wins."""
    merged: dict[str, Any] = {"contexts": [], "clusters": [], "users": []}
    seen: dict[str, set[str]] = {"contexts": set(), "clusters": set(), "users": set()}
    found = False
    for path in paths:
        if not path.exists():
            if explicit:
                raise UsageError(f'kubeconfig "{path}" does not exist', hint=Hint.KUBECONFIG)
            continue
        found = True
        try:
            doc = _document(path) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise MacvtapctlError(f'cannot read kubeconfig "{path}": {exc}') from None
        if not isinstance(doc, dict):
            raise MacvtapctlError(f'kubeconfig "{path}" is not a YAML mapping')
        if "current-context" not in merged and doc.get("current-context"):
            merged["current-context"] = doc["current-context"]
        for key in ("contexts", "clusters", "users"):
            for item in doc.get(key) or []:
                if isinstance(item, dict) and str(item.get("name")) not in seen[key]:
                    seen[key].add(str(item.get("name")))
                    # Relative paths in an entry are relative to the file that holds it (kubectl's rule).
                    merged[key].append({**item, "_dir": str(path.parent)})
    merged["_found"] = found
    return merged


def context_entry(config: dict[str, Any], context: str | None) -> tuple[str, dict[str, Any]] | None:
    """The selected context's name and body; a named context that does not exist is a usage error."""
    name = context or config.get("current-context")
    if not name:
        return None
    for item in config["contexts"]:
        if item.get("name") == name:
            return name, item.get("context") or {}
    available = ", ".join(sorted(str(c.get("name")) for c in config["contexts"])) or "none"
    if context:
        raise UsageError(f'context "{name}" does not exist in the kubeconfig (available: {available})',
                         hint=Hint.CONTEXT)
    raise UsageError(f'context "{name}" does not exist in the kubeconfig (its current-context; available: '
                     f'{available})')


def default_namespace(explicit_kubeconfig: str | None, context: str | None) -> str:
    """The namespace of the selected context, or "default" (kubectl's rule)."""
    try:
        config = load_merged(kubeconfig_paths(explicit_kubeconfig), explicit=bool(explicit_kubeconfig))
        entry = context_entry(config, context)
    except MacvtapctlError:
        if context or explicit_kubeconfig:
            raise
        return "default"
    if entry and entry[1].get("namespace"):
        return str(entry[1]["namespace"])
    in_cluster = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    if not config["_found"] and in_cluster.exists():
        return in_cluster.read_text().strip() or "default"
    return "default"
