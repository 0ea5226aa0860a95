"""The checked-in device-plugin stubs match api.proto (regenerate with `make proto`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PKG = Path("macvtapctl/agent/deviceplugin")


@pytest.mark.parametrize("stem", ["api", "podresources"])
def test_stubs_are_not_stale(tmp_path: Path, stem: str) -> None:
    (tmp_path / PKG).mkdir(parents=True)
    shutil.copy(REPO / PKG / f"{stem}.proto", tmp_path / PKG / f"{stem}.proto")
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I.", "--python_out=.", "--grpc_python_out=.",
                    "--pyi_out=.", str(PKG / f"{stem}.proto")], cwd=tmp_path, check=True)
    for name in (f"{stem}_pb2.py", f"{stem}_pb2.pyi", f"{stem}_pb2_grpc.py"):
        fresh = (tmp_path / PKG / name).read_text()
        assert (REPO / PKG / name).read_text() == fresh, f"{PKG / name} is stale: run `make proto`"


def test_field_numbers_match_the_published_api() -> None:
    from macvtapctl.agent.deviceplugin import api_pb2 as pb

    def numbers(msg: type) -> dict[str, int]:
        return {f.name: f.number for f in msg.DESCRIPTOR.fields}

    assert numbers(pb.RegisterRequest) == {"version": 1, "endpoint": 2, "resource_name": 3, "options": 4}
    assert numbers(pb.Device) == {"ID": 1, "health": 2, "topology": 3}
    assert numbers(pb.ContainerAllocateResponse) == {"envs": 1, "mounts": 2, "devices": 3, "annotations": 4,
                                                     "cdi_devices": 5}
    assert numbers(pb.DeviceSpec) == {"container_path": 1, "host_path": 2, "permissions": 3}
    assert numbers(pb.ContainerPreferredAllocationRequest) == {
        "available_deviceIDs": 1, "must_include_deviceIDs": 2, "allocation_size": 3}
    assert pb.DESCRIPTOR.package == "v1beta1"
    assert [m.name for m in pb.DESCRIPTOR.services_by_name["DevicePlugin"].methods] == [
        "GetDevicePluginOptions", "ListAndWatch", "GetPreferredAllocation", "Allocate", "PreStartContainer"]


def test_pod_resources_field_numbers_match_the_published_api() -> None:
    from macvtapctl.agent.deviceplugin import podresources_pb2 as pb

    def numbers(msg: type) -> dict[str, int]:
        return {f.name: f.number for f in msg.DESCRIPTOR.fields}

    assert pb.DESCRIPTOR.package == "v1"
    assert numbers(pb.ListPodResourcesResponse) == {"pod_resources": 1}
    assert numbers(pb.PodResources) == {"name": 1, "namespace": 2, "containers": 3}
    assert numbers(pb.ContainerResources) == {"name": 1, "devices": 2}
    assert numbers(pb.ContainerDevices) == {"resource_name": 1, "device_ids": 2}
    assert [m.name for m in pb.DESCRIPTOR.services_by_name["PodResourcesLister"].methods] == ["List"]
