"""Reading the kubeconfig ourselves (PyYAML only): which file, which context, which namespace.

transport.py turns the selected context into a connection; this gives kubectl's precedence and clear errors,
e.g. for offline rendering that only needs the namespace.
"""

from __future__ import annotations

import base64
import copy
import functools
import os
from dataclasses import dataclass, field
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


# --- The selected context's cluster and user, typed as client-go's clientcmd/api/v1 types them --------------------
# client-go decodes a kubeconfig into Go structs: a field of the wrong type (the string "false" for a bool, a number
# for a string) makes the whole file invalid, unknown fields are ignored, null is the zero value. Then it confirms
# the selected context usable (clientcmd/validation.go: validateClusterInfo, validateAuthInfo). Both are done here,
# each failure one line naming the entry and the field.

_EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
INTERACTIVE_MODES = ("Never", "IfAvailable", "Always")


def _invalid(message: str) -> MacvtapctlError:
    return MacvtapctlError(f"invalid kubeconfig: {message}")


class _Fields:
    """One mapping of the kubeconfig, read field by field with Go's JSON types."""

    def __init__(self, body: Any, where: str) -> None:
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise _invalid(f"{where} must be a mapping")
        self.body, self.where = body, where

    def _wrong(self, key: str, want: str) -> MacvtapctlError:
        value = self.body[key]
        shown = f'the string "{value}"' if isinstance(value, str) else f"{type(value).__name__} {value!r}"
        return _invalid(f"{self.where}.{key} must be {want}, not {shown}")

    def string(self, key: str) -> str:
        value = self.body.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self._wrong(key, "a string")
        return value

    def boolean(self, key: str) -> bool:
        value = self.body.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):  # "false" in quotes is a string: client-go refuses the file
            raise self._wrong(key, "true or false")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.body.get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._wrong(key, "a list of strings")
        return tuple(value)

    def data(self, key: str) -> bytes | None:
        """A []byte field: base64 in the file (Go's encoding/json: standard alphabet, padded, newlines ignored)."""
        text = self.string(key)
        if not text:
            return None
        try:
            return base64.b64decode(text.replace("\n", "").replace("\r", ""), validate=True)
        except ValueError:
            raise _invalid(f"{self.where}.{key} is not base64") from None

    def mapping(self, key: str) -> _Fields | None:
        value = self.body.get(key)
        return None if value is None else _Fields(value, f"{self.where}.{key}")

    def string_lists(self, key: str) -> dict[str, tuple[str, ...]]:
        value = self.body.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, list) and all(isinstance(s, str) for s in v)
                for k, v in value.items()):
            raise self._wrong(key, "a mapping of names to lists of strings")
        return {k: tuple(v) for k, v in value.items()}


@dataclass(frozen=True)
class ExecConfig:
    """users[].user.exec: a credential plugin (client.authentication.k8s.io)."""

    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    api_version: str = _EXEC_API_VERSIONS[0]
    install_hint: str = ""
    provide_cluster_info: bool = False
    interactive_mode: str = "IfAvailable"


@dataclass(frozen=True)
class Cluster:
    name: str
    server: str
    ca: bytes | None = None  # PEM: certificate-authority-data, else the certificate-authority file's content
    insecure: bool = False
    tls_server_name: str = ""
    proxy_url: str = ""


@dataclass(frozen=True)
class User:
    name: str = ""
    token: str = ""
    token_file: Path | None = None
    cert: bytes | None = None
    key: bytes | None = None
    username: str = ""
    password: str = ""
    impersonate: str = ""
    impersonate_uid: str = ""
    impersonate_groups: tuple[str, ...] = ()
    impersonate_extra: dict[str, tuple[str, ...]] = field(default_factory=dict)
    exec: ExecConfig | None = None
    auth_provider: dict[str, Any] | None = None


def _path(base: Path, value: str) -> Path:
    """client-go resolves a relative path against the directory of the file that holds it (no ~ expansion)."""
    path = Path(value)
    return path if path.is_absolute() else base / path


def _read(path: Path, what: str, entry: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _invalid(f'unable to read {what} "{path}" for {entry}: {exc.strerror}') from None


def cluster_of(config: dict[str, Any], context: dict[str, Any]) -> Cluster:
    """The context's cluster, typed and confirmed usable (server set; CA as data or file, not both)."""
    name = _context_ref(context, "cluster")
    item = _entry(config, "clusters", name)
    if item is None:
        raise _invalid("no configuration has been provided" + (f' (cluster "{name}" is not defined)' if name else
                                                                 " (the context names no cluster)"))
    f = _Fields(item.get("cluster"), f'clusters["{name}"].cluster')
    base = Path(str(item.get("_dir") or "."))
    server = f.string("server")
    if not server:
        raise _invalid(f'no server found for cluster "{name}"')
    ca_data, ca_file = f.data("certificate-authority-data"), f.string("certificate-authority")
    if ca_data and ca_file:
        raise _invalid(f'certificate-authority-data and certificate-authority are both set for cluster "{name}"')
    ca = ca_data or (_read(_path(base, ca_file), "certificate-authority", f'cluster "{name}"') if ca_file else None)
    f.boolean("disable-compression")
    return Cluster(name=name, server=server, ca=ca, insecure=f.boolean("insecure-skip-tls-verify"),
                   tls_server_name=f.string("tls-server-name"), proxy_url=f.string("proxy-url"))


def user_of(config: dict[str, Any], context: dict[str, Any]) -> User:
    """The context's user, typed and confirmed usable; a context without a user has no credentials. A user the
    context names but no file defines is refused (kubectl would prompt for a username and password on stdin;
    this tool never prompts)."""
    name = _context_ref(context, "user")
    item = _entry(config, "users", name) if name else None
    if item is None:
        if name:
            raise _invalid(f'user "{name}" is not defined (the context names it)')
        return User()
    where = f'users["{name}"].user'
    f = _Fields(item.get("user"), where)
    base = Path(str(item.get("_dir") or "."))
    token, token_file = f.string("token"), f.string("tokenFile")
    username, password = f.string("username"), f.string("password")
    methods = [m for m, on in (("token", token), ("basicAuth", username or password)) if on]
    if len(methods) > 1:
        raise _invalid(f'more than one authentication method found for user "{name}": {", ".join(methods)}')
    cert = _material(f, base, "client-certificate", f'user "{name}"')
    key = _material(f, base, "client-key", f'user "{name}"')
    if cert is not None and key is None:
        raise _invalid(f'client-key-data or client-key must be set for user "{name}" to use its client certificate')
    exec_f = f.mapping("exec")
    provider = f.mapping("auth-provider")
    if exec_f is not None and provider is not None:
        raise _invalid(f'user "{name}" has both exec and auth-provider')
    impersonate = f.string("as")
    groups, extra = f.strings("as-groups"), f.string_lists("as-user-extra")
    if (groups or extra) and not impersonate:
        raise _invalid(f'user "{name}" requests groups or user-extra without impersonating a user (as)')
    return User(name=name, token=token, token_file=_path(base, token_file) if token_file else None,
                cert=cert, key=key, username=username, password=password, impersonate=impersonate,
                impersonate_uid=f.string("as-uid"), impersonate_groups=groups, impersonate_extra=extra,
                exec=_exec_config(exec_f, name) if exec_f is not None else None,
                auth_provider=provider.body if provider is not None else None)


def _material(f: _Fields, base: Path, name: str, entry: str) -> bytes | None:
    data, file = f.data(f"{name}-data"), f.string(name)
    if data and file:
        raise _invalid(f"{name}-data and {name} are both set for {entry}")
    return data or (_read(_path(base, file), name, entry) if file else None)


def _exec_config(f: _Fields, user: str) -> ExecConfig:
    command, api_version = f.string("command"), f.string("apiVersion")
    if not command:
        raise _invalid(f'command must be set for user "{user}" to use an exec credential plugin')
    if not api_version:
        raise _invalid(f'apiVersion must be set for user "{user}" to use an exec credential plugin')
    env: list[tuple[str, str]] = []
    raw_env = f.body.get("env")
    if raw_env is not None and not isinstance(raw_env, list):
        raise f._wrong("env", "a list of name/value entries")
    for i, item in enumerate(raw_env or []):
        e = _Fields(item, f"{f.where}.env[{i}]")
        if not e.string("name"):
            raise _invalid(f'env variable name must be set for user "{user}" to use an exec credential plugin')
        env.append((e.string("name"), e.string("value")))
    mode = f.string("interactiveMode")
    if not mode:
        if api_version == _EXEC_API_VERSIONS[0]:
            raise _invalid(f'interactiveMode must be set for user "{user}" to use an exec credential plugin')
        mode = "IfAvailable"  # v1beta1's default
    if mode not in INTERACTIVE_MODES:
        raise _invalid(f'{f.where}.interactiveMode "{mode}" must be one of {", ".join(INTERACTIVE_MODES)}')
    return ExecConfig(command=command, args=f.strings("args"), env=tuple(env), api_version=api_version,
                      install_hint=f.string("installHint"), provide_cluster_info=f.boolean("provideClusterInfo"),
                      interactive_mode=mode)


def _context_ref(context: dict[str, Any], key: str) -> str:
    value = context.get(key)
    if value is not None and not isinstance(value, str):
        raise _invalid(f"the context's {key} must be a string")
    return value or ""


def _entry(config: dict[str, Any], key: str, name: str) -> dict[str, Any] | None:
    for item in config[key]:
        if item.get("name") == name:
            return dict(item)
    return None
