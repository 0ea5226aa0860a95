"""`--network <TAB>` in a real bash offers the NADs of the current namespace, read from the cluster."""

from __future__ import annotations

from tests.cli.test_completions import bash_complete


def test_bash_completes_network_with_the_clusters_nads(control_plane, cli) -> None:
    admin = str(control_plane.admin_kubeconfig)
    for name in ("dataplane", "storage"):
        assert cli("--kubeconfig", admin, "nad", "create", name, "--resource", name).exit_code == 0
    from macvtapctl.kube.resources import NAMESPACE

    with control_plane.kube() as k:
        if k.get_or_none(NAMESPACE, "team") is None:
            k.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    assert cli("--kubeconfig", admin, "nad", "create", "other", "-n", "team", "--resource", "x").exit_code == 0
    try:
        env = {"KUBECONFIG": admin}
        assert bash_complete("macvtapctl vm create web --network ", env) == ["dataplane", "storage"]
        assert bash_complete("macvtapctl vm create web --network da", env) == ["dataplane"]
        assert bash_complete("macvtapctl -n team vm create web --network ", env) == ["other"]
        # No cluster: nothing offered, and no error on the terminal.
        assert bash_complete("macvtapctl vm create web --network ", {"KUBECONFIG": "/nonexistent"}) == []
    finally:
        for name in ("dataplane", "storage"):
            cli("--kubeconfig", admin, "nad", "delete", name)
        cli("--kubeconfig", admin, "nad", "delete", "other", "-n", "team")
