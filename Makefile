# The two front-door commands: `make demo` and `make test` (each installs what it needs first).
PYTHON ?= python3
APT_PACKAGES = iproute2 iputils-ping iputils-arping tcpdump postgresql nftables procps iperf3 \
	strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-extra-plugins \
	libstrongswan-standard-plugins openvswitch-switch ethtool wrk prometheus
# the topology page's browser test (tests/integration/test_topology_page.py): about 25 s to install
APT_PACKAGES += chromium
# what docs/deploy.md installs and tests/integration/test_deploy.py checks (systemd: its
# systemd-analyze verifies the units)
APT_PACKAGES += openssl jq python3 python3-venv systemd
# `intercloud diagnose`'s test runs one agent with its clock shifted (libfaketime)
APT_PACKAGES += faketime
# The whole suite, the benchmark's short run included (it proves `python -m bench` works; no
# timing is asserted). `make test-bench` runs only that.
PYTEST_ARGS ?=

.PHONY: install install-system install-python install-openstack demo demo-ha demo-openstack check test test-bench \
	test-unit test-functional test-integration lint format clean-lab

install: install-system install-python

install-system:
	@if [ "$$(id -u)" != 0 ]; then echo "make install needs root (apt-get, network namespaces)"; exit 1; fi
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(APT_PACKAGES)
	# Debian's postgresql package starts a cluster; the tests start their own on a free port.
	-systemctl stop postgresql 2>/dev/null || true
	# Nor may a system charon run in the host namespace: each lab gateway runs its own.
	-systemctl stop strongswan-starter strongswan 2>/dev/null || true
	# Nor Open vSwitch: the tests start an ovsdb-server and ovs-vswitchd per simulated cloud.
	-systemctl stop openvswitch-switch 2>/dev/null || true
	# Nor Prometheus: the metrics test runs its own in a lab namespace, on its own port.
	-systemctl stop prometheus prometheus-node-exporter 2>/dev/null || true

install-python:
	$(PYTHON) -m pip install -q -e '.[dev]'

# Real Keystone and Neutron for the OpenStack tests and `lab up --openstack`: their own
# virtualenvs from scripts/openstack/*.txt, cached in /var/cache/intercloud/openstack (≈ 70 s cold).
install-openstack: install-python
	$(PYTHON) -m intercloud.lab.openstack.venvs

demo: install install-openstack
	bash scripts/demo.sh

demo-ha: install
	bash scripts/demo-ha.sh

demo-openstack: install install-openstack
	bash scripts/demo-openstack.sh

# ruff (lint + format) and mypy; `make test` runs it first, so CI does too.
check:
	$(PYTHON) -m ruff check src tests bench
	$(PYTHON) -m ruff format --check src tests bench
	$(PYTHON) -m mypy

# Unit and functional tests in two processes (pytest-xdist; in-process, no shared namespaces:
# 3.7 min instead of 7 here), then integration alone: its labs share the kernel and the cores,
# and its throughput tests measure them. pytest-benchmark (a dependency of a dependency) stays
# off under xdist, where it warns, and warnings are errors here; no test uses it.
PARALLEL = -n 2 -p no:benchmark

test: install install-openstack
	$(MAKE) check
	$(PYTHON) -m pytest -q -p no:cacheprovider $(PARALLEL) --durations=10 $(PYTEST_ARGS) tests/unit tests/functional
	$(PYTHON) -m pytest -q -p no:cacheprovider --durations=30 $(PYTEST_ARGS) tests/integration

test-bench: install install-openstack
	$(PYTHON) -m pytest -q -p no:cacheprovider -m bench tests

# The tiers alone: unit (pure code and fakes, one component), functional (several agents in one
# process; no root), integration (root, namespaces, the real kernel and daemons).
test-unit:
	$(PYTHON) -m pytest -q -p no:cacheprovider $(PARALLEL) tests/unit

test-functional:
	$(PYTHON) -m pytest -q -p no:cacheprovider $(PARALLEL) tests/functional

test-integration: install install-openstack
	$(PYTHON) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) tests/integration

lint:
	$(PYTHON) -m ruff check src tests bench
	$(PYTHON) -m ruff format --check src tests bench

format:
	ruff format src tests bench
	ruff check --fix src tests bench

clean-lab:
	$(PYTHON) -m intercloud lab down --name demo
