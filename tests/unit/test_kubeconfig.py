from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from macvtapctl.errors import UsageError
from macvtapctl.kube.kubeconfig import context_entry, default_namespace, kubeconfig_paths, load_merged
from macvtapctl.kube.resources import CONFIGMAP, KUBEVIRT, NODE


def write(path: Path, current: str, contexts: dict[str, str | None]) -> Path:
    path.write_text(yaml.safe_dump({
        "current-context": current,
        "contexts": [{"name": n, "context": {"cluster": "c", "user": "u", **({"namespace": ns} if ns else {})}}
                     for n, ns in contexts.items()],
        "clusters": [{"name": "c", "cluster": {"server": "https://x"}}], "users": [{"name": "u", "user": {}}]}))
    return path


def test_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path}/a:{tmp_path}/b")
    assert kubeconfig_paths("/explicit") == [Path("/explicit")]
    assert kubeconfig_paths(None) == [tmp_path / "a", tmp_path / "b"]
    monkeypatch.delenv("KUBECONFIG")
    assert kubeconfig_paths(None) == [Path("~/.kube/config").expanduser()]


def test_merge_first_file_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    a = write(tmp_path / "a", "one", {"one": "ns-a"})
    b = write(tmp_path / "b", "two", {"one": "ns-b", "two": None})
    merged = load_merged([a, b], explicit=False)
    assert merged["current-context"] == "one"
    assert context_entry(merged, None) == ("one", {"cluster": "c", "user": "u", "namespace": "ns-a"})
    assert context_entry(merged, "two")[0] == "two"


def test_unknown_context_lists_the_available_ones(tmp_path: Path) -> None:
    merged = load_merged([write(tmp_path / "a", "one", {"one": None, "zed": None})], explicit=True)
    with pytest.raises(UsageError, match=r'context "nope" does not exist .*available: one, zed'):
        context_entry(merged, "nope")


def test_default_namespace(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = write(tmp_path / "a", "one", {"one": "team-a", "two": None})
    assert default_namespace(str(cfg), None) == "team-a"
    assert default_namespace(str(cfg), "two") == "default"
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    assert default_namespace(None, None) == "default"


def test_a_kubeconfig_is_parsed_once_until_it_changes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A command reads its namespace and then connects: one parse of the file, not two."""
    from macvtapctl.kube import kubeconfig

    parses: list[str] = []
    real = yaml.load
    monkeypatch.setattr(kubeconfig.yaml, "load", lambda text, **kw: parses.append(text) or real(text, **kw))
    cfg = write(tmp_path / "a", "one", {"one": "team-a"})
    assert default_namespace(str(cfg), None) == "team-a"
    merged = load_merged([cfg], explicit=True)
    merged["contexts"][0]["context"]["namespace"] = "changed by a caller"  # callers get their own copy
    assert default_namespace(str(cfg), None) == "team-a"
    assert len(parses) == 1
    write(cfg, "one", {"one": "team-b-is-longer"})
    assert default_namespace(str(cfg), None) == "team-b-is-longer"
    assert len(parses) == 2


def test_a_malformed_kubeconfig_names_the_line(tmp_path: Path) -> None:
    from macvtapctl.errors import MacvtapctlError

    cfg = tmp_path / "bad"
    cfg.write_text("clusters:\n  - name: c\n   bad: [\n")
    with pytest.raises(MacvtapctlError, match=r'(?s)cannot read kubeconfig .*line 3') as info:
        load_merged([cfg], explicit=True)
    assert "bad: [" in str(info.value)  # the pure-Python loader's message, with the offending line


def test_resource_paths() -> None:
    assert CONFIGMAP.path("ns", "x") == "/api/v1/namespaces/ns/configmaps/x"
    assert KUBEVIRT.path() == "/apis/kubevirt.io/v1/kubevirts"
    assert KUBEVIRT.path("kubevirt", "kv", "status") == "/apis/kubevirt.io/v1/namespaces/kubevirt/kubevirts/kv/status"
    assert NODE.path("ignored", "n1") == "/api/v1/nodes/n1"
