"""The API layer against a real kube-apiserver: patch types, dry-run, conflicts, error mapping."""

from __future__ import annotations

import json
import uuid

import pytest

from macvtapctl.errors import ExitCode, ForbiddenError, InvalidObjectError, NotFoundError, PreconditionError
from macvtapctl.kube.errors import AlreadyExistsError, StaleError
from macvtapctl.kube.options import DryRun
from macvtapctl.kube.resources import CONFIGMAP, Resource
from macvtapctl.kube.retry import retry_on_conflict
from tests.harness.concurrency import all_at_once


def _cm(name: str, data: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data or {}}


@pytest.fixture
def kube(control_plane):
    with control_plane.kube() as k:
        yield k


@pytest.fixture
def name() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def test_create_get_and_field_manager(kube, name) -> None:
    kube.create(CONFIGMAP, _cm(name, {"a": "1"}), "default")
    got = kube.get(CONFIGMAP, name, "default")
    assert got["data"] == {"a": "1"}
    assert {m["manager"] for m in got["metadata"]["managedFields"]} == {"macvtapctl"}
    with pytest.raises(AlreadyExistsError):
        kube.create(CONFIGMAP, _cm(name), "default")


def test_merge_patch_guarded_by_resource_version(kube, name) -> None:
    created = kube.create(CONFIGMAP, _cm(name, {"a": "1"}), "default")
    rv = created["metadata"]["resourceVersion"]
    kube.merge_patch(CONFIGMAP, name, {"metadata": {"resourceVersion": rv}, "data": {"b": "2"}}, "default")
    with pytest.raises(StaleError) as info:
        kube.merge_patch(CONFIGMAP, name, {"metadata": {"resourceVersion": rv}, "data": {"c": "3"}}, "default")
    assert info.value.exit_code == ExitCode.CONFLICT
    assert kube.get(CONFIGMAP, name, "default")["data"] == {"a": "1", "b": "2"}


def test_json_patch_with_test_op(kube, name) -> None:
    created = kube.create(CONFIGMAP, _cm(name, {"a": "1"}), "default")
    rv = created["metadata"]["resourceVersion"]
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": rv},
           {"op": "add", "path": "/data/b", "value": "2"}]
    kube.json_patch(CONFIGMAP, name, ops, "default")
    with pytest.raises(InvalidObjectError):  # the failed test op is a 422, not a conflict
        kube.json_patch(CONFIGMAP, name, ops, "default")
    assert kube.get(CONFIGMAP, name, "default")["data"] == {"a": "1", "b": "2"}


def test_server_side_apply_and_server_dry_run(kube, name) -> None:
    dry = kube.apply(CONFIGMAP, _cm(name, {"x": "y"}), "default", dry_run=DryRun.SERVER)
    assert dry["data"] == {"x": "y"}
    assert kube.get_or_none(CONFIGMAP, name, "default") is None  # nothing was persisted
    applied = kube.apply(CONFIGMAP, _cm(name, {"x": "y"}), "default")
    managers = {(m["manager"], m["operation"]) for m in applied["metadata"]["managedFields"]}
    assert managers == {("macvtapctl", "Apply")}
    again = kube.apply(CONFIGMAP, _cm(name, {"x": "y"}), "default")
    assert again["metadata"]["resourceVersion"] == applied["metadata"]["resourceVersion"]


def test_client_dry_run_never_reaches_the_server(kube, name) -> None:
    with pytest.raises(AssertionError):
        kube.create(CONFIGMAP, _cm(name), "default", dry_run=DryRun.CLIENT)
    assert kube.get_or_none(CONFIGMAP, name, "default") is None


def test_strict_field_validation_rejects_unknown_fields(kube, name) -> None:
    bad = {**_cm(name), "spec": {"oops": True}}
    with pytest.raises(InvalidObjectError, match="unknown field"):
        kube.create(CONFIGMAP, bad, "default")


def test_invalid_object_is_usage_error(kube) -> None:
    with pytest.raises(InvalidObjectError) as info:
        kube.create(CONFIGMAP, _cm("Not_A_Valid_Name"), "default")
    assert info.value.exit_code == ExitCode.USAGE
    assert "Not_A_Valid_Name" in info.value.message


def test_not_found_and_missing_resource_type(kube) -> None:
    with pytest.raises(NotFoundError) as info:
        kube.get(CONFIGMAP, "does-not-exist", "default")
    assert info.value.message == 'configmaps "does-not-exist" not found in namespace "default"'
    widgets = Resource("example.com", "v1", "widgets", "Widget")
    with pytest.raises(PreconditionError) as info2:
        kube.list(widgets)
    assert not isinstance(info2.value, NotFoundError)
    assert "widgets.example.com/v1" in info2.value.message


def test_forbidden_names_verb_resource_namespace(control_plane, name) -> None:
    with control_plane.kube(unprivileged=True) as k, pytest.raises(ForbiddenError) as info:
        k.create(CONFIGMAP, _cm(name), "default")
    assert info.value.exit_code == ExitCode.FORBIDDEN
    assert info.value.message.startswith(
        'forbidden: the current user cannot create configmaps in namespace "default"')
    assert 'User "jane"' in info.value.message


def test_retry_on_conflict_loses_no_update(control_plane, name) -> None:
    """20 concurrent read-modify-write cycles on one ConfigMap all land."""
    with control_plane.kube() as k:
        k.create(CONFIGMAP, _cm(name, {"entries": "[]"}), "default")

    def add(i: int) -> None:
        with control_plane.kube() as k:
            def attempt() -> None:
                cm = k.get(CONFIGMAP, name, "default")
                entries = json.loads(cm["data"]["entries"])
                entries.append(i)
                k.merge_patch(CONFIGMAP, name, {
                    "metadata": {"resourceVersion": cm["metadata"]["resourceVersion"]},
                    "data": {"entries": json.dumps(entries)}}, "default")
            retry_on_conflict(attempt, what=f"configmap/{name}", attempts=30)

    assert all_at_once(add, 20) == []
    with control_plane.kube() as k:
        assert sorted(json.loads(k.get(CONFIGMAP, name, "default")["data"]["entries"])) == list(range(20))


def test_retry_gives_up_with_conflict_code() -> None:
    calls = []

    def always_stale() -> None:
        calls.append(1)
        raise StaleError("x")

    from macvtapctl.errors import ConflictError

    with pytest.raises(ConflictError) as info:
        retry_on_conflict(always_stale, what="thing", attempts=3, base_delay=0)
    assert len(calls) == 3
    assert info.value.exit_code == ExitCode.CONFLICT
    assert not isinstance(info.value, StaleError)
