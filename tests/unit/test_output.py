from __future__ import annotations

import io
import json

import yaml

from macvtapctl.kube.resources import CONFIGMAP, KUBEVIRT, NAD
from macvtapctl.output import Printer, resource_label


def printer() -> tuple[Printer, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Printer(out, err), out, err


def test_resource_labels_match_kubectl() -> None:
    assert resource_label({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}) == "configmap/a"
    assert resource_label({"apiVersion": "kubevirt.io/v1", "kind": "KubeVirt", "metadata": {"name": "kubevirt"}}) \
        == "kubevirt.kubevirt.io/kubevirt"
    assert KUBEVIRT.label("kubevirt") == "kubevirt.kubevirt.io/kubevirt"
    assert CONFIGMAP.label("x") == "configmap/x"
    assert NAD.label("n") == "networkattachmentdefinition.k8s.cni.cncf.io/n"


def test_status_lines_go_to_stderr() -> None:
    p, out, err = printer()
    p.status("configmap/x", "unchanged", " (server dry run)")
    p.warn("careful")
    assert out.getvalue() == ""
    assert err.getvalue() == "configmap/x unchanged (server dry run)\nWarning: careful\n"


def test_quiet_hides_status_but_not_warnings() -> None:
    out, err = io.StringIO(), io.StringIO()
    p = Printer(out, err, verbosity=-1)
    p.status("configmap/x", "created")
    p.warn("w")
    p.error("e")
    assert err.getvalue() == "Warning: w\nerror: e\n"


def test_objects_single_and_list_and_managed_fields_stripped() -> None:
    a = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "managedFields": [{}]}}
    b = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}
    p, out, _ = printer()
    p.objects([a], "json")
    assert json.loads(out.getvalue()) == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}
    p, out, _ = printer()
    p.objects([a, b], "yaml")
    doc = yaml.safe_load(out.getvalue())
    assert doc["kind"] == "List"
    assert [i["metadata"]["name"] for i in doc["items"]] == ["a", "b"]
    p, out, _ = printer()
    p.objects([a, b], "name")
    assert out.getvalue() == "configmap/a\nconfigmap/b\n"


def test_yaml_keeps_order_and_uses_literal_blocks() -> None:
    p, out, _ = printer()
    p.document({"z": 1, "a": "line1\nline2\n"}, "yaml")
    assert out.getvalue() == "z: 1\na: |\n  line1\n  line2\n"


def test_yaml_stream_separates_documents() -> None:
    p, out, _ = printer()
    p.yaml_stream([{"a": 1}, {"b": 2}])
    assert list(yaml.safe_load_all(out.getvalue())) == [{"a": 1}, {"b": 2}]


def test_table_is_aligned_like_kubectl() -> None:
    p, out, _ = printer()
    p.table(["name", "lower device"], [["eth0", "eth0"], ["dataplane", None]])
    assert out.getvalue() == "NAME        LOWER DEVICE\neth0        eth0\ndataplane\n"
