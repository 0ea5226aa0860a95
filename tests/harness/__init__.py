"""Everything the tests (and benchmarks) run besides macvtapctl itself, in one home (as pip's tests/lib):

- controlplane: a real kube-apiserver + etcd (+ scheduler, controller manager), KubeVirt's CRDs and admission
- node, second_node, node_init: real nodes (kubelet, containerd, runc, kube-proxy, Multus); the second in
  namespaces of its own with an init of its own; images: the images they import; guest: the VM's disk
- kubevirt: KubeVirt's own components on the node(s); kubevirt_images: their images, built here
- cluster: the one lifecycle (control plane -> nodes -> KubeVirt -> plugin -> teardown) and what tests do to it
- host_state (what a node changed on the host), l2probe (pings and the LAN's FDB), kubelet (the device-plugin
  kubelet stand-in), upstream, upstream_node (the real macvtap-cni), standin (a loopback API-server stand-in)
- paths: where the non-Python recipes and sources sit (tests/controlplane, tests/node, tests/kubevirt)

Import as `from tests.harness.node import Node`; run the command-line ones from the repository as
`python -m tests.harness.node up` (the Makefile does)."""
