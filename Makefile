# macvtapctl: `make demo` and `make test` are all a new machine needs (Python 3.11+, Go, a C compiler).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEVCLUSTER := .devcluster
# The KubeVirt to run: a pinned release (KUBEVIRT_PINS in tests/controlplane/pins.env) runs its own CRDs and
# admission; any other version runs the newest pin with the KubeVirt CR reporting it. Empty: cluster-up runs the
# newest pin, the tests run every pin.
KUBEVIRT_VERSION ?=
export KUBEVIRT_VERSION

SHIM := macvtapctl/agent/shim/macvtap
# As root, the real node (and KubeVirt's own components on it) join the demo and the tests.
DEMO_NODE := $(shell [ "$$(id -u)" = 0 ] && echo yes)

.PHONY: controlplane demo-stopped help prereqs shim proto venv testenv nodeenv kubevirtenv kubevirt-up lint typecheck unit integration datapath e2e compat test demo cluster-up image \
        cluster-down node-up node-down completions docs krew clean bench

help:
	@echo "make demo          start a local control plane and run macvtapctl against it (root: NODES=2 migrates)"
	@echo "make test          lint, type checks, unit, integration and (as root) datapath tests"
	@echo "make cluster-up    start the local control plane in the background ($(DEVCLUSTER)/kubeconfig)"
	@echo "make cluster-down  stop it (and the node)"
	@echo "make node-up       join a real node (kubelet, containerd, runc, Multus) to it (root; NODES=2: two)"
	@echo "make kubevirt-up   KubeVirt's own components on that node, deployed by virt-operator (root; NODES=2)"
	@echo "make node-down     stop the node and undo everything it changed on the host"
	@echo "make e2e           the real-node tests (root; part of make test)"
	@echo "make compat        the agent beside the real upstream macvtap-cni (root; needs ../shared/upstream)"
	@echo "make bench         every benchmark, one table of ratios vs kubectl and upstream (root; ~30 min)"

# The system prerequisites (Debian packages), one list for make demo, make test and .ci/run (tools/prereqs.py):
# installed as root, named with the command that installs them otherwise, before any build starts.
PREREQS_FOR ?= test
prereqs:
	@$(PYTHON) tools/prereqs.py $(PREREQS_FOR)

# The static CNI shim (C, no dependencies); the agent installs it as <cni-bin-dir>/macvtap.
$(SHIM): macvtapctl/agent/shim/macvtap.c
	$${CC:-cc} -O2 -static -Wall -Wextra -Werror -o $@ $<

shim: $(SHIM)

# The kubelet device-plugin and pod-resources API stubs (checked in; tests/unit/test_proto_stubs.py fails when
# they are stale).
proto: venv
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. --pyi_out=. \
	  macvtapctl/agent/deviceplugin/api.proto macvtapctl/agent/deviceplugin/podresources.proto

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

# kube-apiserver, etcd, kubectl, cnitool and the node's Kubernetes binaries (tests/controlplane/build.sh): what
# cluster-up runs. The KubeVirt fixture it serves is built by the harness on first use (make demo builds one pin).
controlplane:
	bash tests/controlplane/build.sh >/dev/null

# ...and the KubeVirt fixture of every pin, which the tests run, and network-resources-injector (install --injector's webhook).
testenv: controlplane
	. tests/controlplane/pins.env && for v in $$KUBEVIRT_PINS; do bash tests/kubevirt/build.sh $$v >/dev/null; done
	bash tests/injector/build.sh >/dev/null

# containerd, the runc shim, the CNI reference plugins and Multus (tests/node/pins.env).
nodeenv:
	bash tests/node/build.sh >/dev/null

lint: venv
	$(BIN)/ruff check macvtapctl tests benchmarks tools

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest tests/unit tests/cli

integration: venv testenv
	$(BIN)/pytest tests/integration

e2e: venv testenv nodeenv shim
	$(BIN)/pytest tests/e2e

# The real upstream kubevirt/macvtap-cni beside the agent (needs ../shared/upstream; not part of `make test`).
compat: venv shim
	MACVTAPCTL_COMPAT=1 $(BIN)/pytest tests/compat -p no:cacheprovider -rA

test: prereqs demo-stopped venv testenv nodeenv $(if $(DEMO_NODE),kubevirtenv) shim lint typecheck
	$(BIN)/pytest

# `make demo` leaves its cluster running, and as root its node; the tests start a node of their own, and a host runs
# one at a time (tests/harness/node.py OWNER): the README's order, demo then test, stops the demo's first and says so.
demo-stopped:
	@if [ -f $(DEVCLUSTER)/node/state.json ]; then \
	  echo "make test: stopping the cluster make demo left running ($(DEVCLUSTER), make cluster-down): the tests" \
	       "start a node of their own, and this host runs one node at a time"; \
	  $(MAKE) --no-print-directory cluster-down; fi

# Timings live here, never in tests: start-up, rendering, scale reads/writes vs kubectl, CNI and device plugin vs
# upstream (its Go stand-in without ../shared/upstream), the agent under churn. BENCH_ARGS=--quick: a smoke run.
bench: venv testenv shim
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# kubevirt: the pinned KubeVirt's CRDs and admission (no KubeVirt components); runtime: a control plane ready for
# KubeVirt's own components (make kubevirt-up): in-cluster API access, service-account tokens.
CLUSTER_CRDS ?= kubevirt
cluster-up: venv controlplane
	$(BIN)/python -m tests.harness.controlplane up --dir $(DEVCLUSTER) --crds $(CLUSTER_CRDS) $(CLUSTER_IN_CLUSTER)

cluster-down: venv node-down
	$(BIN)/python -m tests.harness.controlplane down --dir $(DEVCLUSTER)

node-up: PREREQS_FOR = demo
# A node's pods reach the API server at the `kubernetes` Service, as in a real cluster (the agent's ConfigMap watch).
node-up: CLUSTER_IN_CLUSTER = --in-cluster
# NODES=2: a second node in namespaces of its own (tests/harness/second_node.py), on the same LAN.
NODES ?= 1
node-up: prereqs cluster-up nodeenv shim
	@case "$(NODES)" in 1|2) ;; *) echo "NODES=$(NODES): 1 or 2" >&2; exit 2;; esac
	$(BIN)/python -m tests.harness.node up --dir $(DEVCLUSTER)
	$(if $(filter 2,$(NODES)),$(BIN)/python -m tests.harness.second_node up --dir $(DEVCLUSTER))

# KubeVirt's own virt-operator, virt-api, virt-controller and virt-handler on the real node (root), built here
# (tests/kubevirt/runtime) and deployed by virt-operator from the KubeVirt CR.
kubevirtenv: venv
	bash tests/kubevirt/runtime/build.sh >/dev/null

kubevirt-up: CLUSTER_CRDS = runtime
kubevirt-up: node-up kubevirtenv
	$(BIN)/python -m tests.harness.kubevirt up --dir $(DEVCLUSTER)

node-down: venv
	$(BIN)/python -m tests.harness.node down --dir $(DEVCLUSTER)

MVC := $(BIN)/macvtapctl --kubeconfig $(DEVCLUSTER)/kubeconfig
# tests/harness/guest.py's containerDisk, imported by kubevirt-up: the demo VM's image.
DEMO_DISK := localhost/macvtapctl/guest-disk:e2e

KUBECTL := $(DEVCLUSTER)/bin/kubectl --kubeconfig $(DEVCLUSTER)/kubeconfig
# As root the demo joins a real node (kubelet, containerd, Multus) and puts a pod on macvtap; otherwise it stops at
# what the API server alone can show.
DEMO_LOWER := $(if $(DEMO_NODE),e2elan0,eth0)

demo: PREREQS_FOR = demo
demo: CLUSTER_CRDS = $(if $(DEMO_NODE),runtime,kubevirt)
demo: prereqs cluster-up $(if $(DEMO_NODE),kubevirt-up)
	@echo "+ macvtapctl version"; $(MVC) version
	@echo; echo "+ macvtapctl setup $(DEMO_LOWER) --name dataplane"; $(MVC) setup $(DEMO_LOWER) --name dataplane
	@echo; echo "+ macvtapctl setup $(DEMO_LOWER) --name dataplane   # again: nothing changes"; \
	  $(MVC) setup $(DEMO_LOWER) --name dataplane
	@echo; echo "+ macvtapctl exposed"; $(MVC) exposed
	@echo; echo "+ macvtapctl nad list -A"; $(MVC) nad list -A
ifeq ($(DEMO_NODE),yes)
	@echo; echo "+ macvtapctl install --image localhost/macvtapctl/agent:e2e --cni-bin-dir ... --wait   # the real node"; \
	  $(MVC) install --image localhost/macvtapctl/agent:e2e --cni-bin-dir $(CURDIR)/$(DEVCLUSTER)/node/cni/bin --wait
	@$(BIN)/python -m tests.harness.kubevirt lan-dhcp --dir $(DEVCLUSTER) >/dev/null
	@echo; echo "+ macvtapctl vm create demo-vm --network dataplane --mac auto --image $(DEMO_DISK) --memory 256Mi --apply"; \
	  $(MVC) vm create demo-vm --network dataplane --mac auto --image $(DEMO_DISK) --memory 256Mi --apply
	@echo; echo "+ macvtapctl vm check --all"; $(MVC) vm check --all
	@echo; echo "+ kubectl wait vmi/demo-vm --for=condition=Ready   # KubeVirt starts it (virt-launcher, libvirt, qemu TCG)"; \
	  for i in $$(seq 60); do $(KUBECTL) get vmi demo-vm >/dev/null 2>&1 && break; sleep 1; done; \
	  $(KUBECTL) wait vmi/demo-vm --for=condition=Ready --timeout=300s
	@echo; echo "+ kubectl get vmi demo-vm -o jsonpath='{.status.interfaces}'"; \
	  $(KUBECTL) get vmi demo-vm -o jsonpath='{.status.interfaces}'; echo
	@echo; echo "+ the guest leases from the LAN's DHCP server on its macvtap NIC, and the LAN pings it"; \
	  $(BIN)/python -m tests.harness.kubevirt lan-ping demo-vm --dir $(DEVCLUSTER)
ifeq ($(NODES),2)
	@echo; echo "+ macvtapctl vm migrate demo-vm --check"; $(MVC) vm migrate demo-vm --check
	@echo; echo "+ macvtapctl vm migrate demo-vm --wait   # to the other node, while the LAN pings it every 10 ms"; \
	  $(BIN)/python -m tests.harness.kubevirt lan-migrate demo-vm --dir $(DEVCLUSTER)
endif
	@echo; echo "+ macvtapctl status"; $(MVC) status
	@echo; echo "+ macvtapctl doctor   # every known cause of a VM without network, with its fix"; $(MVC) doctor
	@echo; echo "(stop it all with: make cluster-down)"
else
	@echo; echo "+ macvtapctl vm create demo-vm --network dataplane --mac auto --apply"; \
	  $(MVC) vm create demo-vm --network dataplane --mac auto --apply
	@echo; echo "+ macvtapctl vm check --all"; $(MVC) vm check --all
	@echo; echo "+ macvtapctl install --dry-run=server   # the agent DaemonSet, validated by the API server"; \
	  $(MVC) install --dry-run=server
	@echo; echo "+ macvtapctl status   # no node runs the agent (the real node needs root), so exit 8"; \
	  $(MVC) status || true
	@echo; echo "+ macvtapctl doctor   # names that cause (and every other), with the fix; exit 8"; \
	  $(MVC) doctor || true
	@echo; echo "(stop the local control plane with: make cluster-down)"
endif

# The agent image: the Containerfile built by buildah into build/agent-image.tar (an OCI archive), run, sized
# (tools/image.sh; BASE=... selects the base, default a Debian base bootstrapped here). Push it with:
# skopeo copy oci-archive:build/agent-image.tar docker://REGISTRY/macvtapctl/agent:TAG
image:
	bash tools/image.sh

# docs/reference.md and docs/macvtapctl.1 from the app's command tree (tests fail when they are stale).
docs: venv testenv
	$(BIN)/python tools/clidocs.py
	$(BIN)/python tools/walkthrough.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site

# The krew plugin archive and its manifest (build/krew/): see tools/krew.py.
krew: venv
	$(BIN)/python tools/krew.py $(if $(KREW_URI_BASE),--uri-base $(KREW_URI_BASE))

completions: venv
	_MACVTAPCTL_COMPLETE=source_bash $(BIN)/macvtapctl > completions/macvtapctl.bash
	_MACVTAPCTL_COMPLETE=source_zsh $(BIN)/macvtapctl > completions/_macvtapctl
	_MACVTAPCTL_COMPLETE=source_fish $(BIN)/macvtapctl > completions/macvtapctl.fish

clean: cluster-down
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
