# The kit's commands. The README's two: `make up` (local cluster with the example app running)
# and `make test` (every test: lint, unit, integration, cluster; the cluster is torn down after).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible/ansible.cfg
export VAGRANT_DEFAULT_PROVIDER ?= lxc
export CELERYKIT_LXC_BOX ?= $(shell sed -n 's/^ *lxc: *\([^ #]*\).*/\1/p' vagrant/hosts.yml | head -n 1)

.PHONY: help setup venv host box up provision down test test-matrix lint unit integration cluster-test bench broker-upgrade-drill broker-move-drill

help:
	@echo "make up      bring the local cluster up and deploy the example app (installs what it needs)"
	@echo "make test    run every test: lint, unit (+ bad-inventory checks), integration (alongside the cluster coming up), cluster (up, provision x2, testinfra, e2e, fault scenarios, down)"
	@echo "make down    destroy the local cluster"
	@echo "make test-matrix  the cluster test on what CI does not run (Debian 12; systemd; plain AMQP)"
	@echo "make bench   benchmark the running cluster (table, bench/results/<run>.json and .png)"
	@echo "make broker-upgrade-drill  on the running cluster: upgrade-brokers.yml's guard, and its rolling restart under load (ledger)"
	@echo "make broker-move-drill  on a running Debian 12 cluster: move-brokers.yml moves it to new Debian 13 brokers under load (ledger)"

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt app/pyproject.toml
	@echo "[setup] control-node virtualenv $(VENV)"
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt -e './app[test]'
	touch $@

host: venv
	vagrant/host-setup.sh $(VENV)/bin/python

box: host
	vagrant/build-box.sh $(CELERYKIT_LXC_BOX)

setup: venv host box

up: setup
	tests/cluster.sh up

provision: venv
	vagrant provision

down:
	vagrant destroy -f --parallel
	rm -rf .cache/ansible-facts

lint: venv
	yamllint -s .
	python tests/lint/role_specs.py
	cd ansible && ansible-lint --profile production
	ruff check app tests ansible/inventories ansible/roles ansible/plugins bench
	ruff format --check app tests ansible/inventories ansible/roles ansible/plugins bench

# Pure logic, and site.yml's refusal of bad inventories (no hosts needed: it stops first).
unit: venv
	pytest -q app/tests/unit bench/test_report.py bench/test_pyspy_profile.py bench/test_machine_cpu.py bench/test_cluster.py tests/unit tests/preflight tests/faults/test_ledger_batch.py

integration: venv
	app/tests/integration/services.sh start
	pytest -q app/tests/integration

cluster-test: setup
	tests/cluster.sh test

# lint, unit and integration run alongside the cluster's bring-up and first provision (which
# mostly wait on the containers); the cluster test shows their output and fails with them.
test: setup
	tests/cluster.sh test "$(MAKE) --no-print-directory lint unit integration"

# What CI does not run (CI: Debian 13 boxes, supervisor, broker TLS): the same cluster test,
# one combination at a time, for each BOX:PROCESS_MANAGER:BROKER_TLS in MATRIX (boxes built
# locally by vagrant/build-box.sh, like the default one; BROKER_TLS 1 or 0).
MATRIX ?= celerykit/debian12:supervisor:0 celerykit/debian13:systemd:1 celerykit/debian12:systemd:0
test-matrix: venv host
	for combo in $(MATRIX); do \
	  IFS=: read -r box manager tls <<<"$$combo"; \
	  echo "==> [matrix] cluster test on $$box with $$manager, broker TLS $$tls"; \
	  CELERYKIT_LXC_BOX=$$box vagrant/build-box.sh $$box; \
	  CELERYKIT_LXC_BOX=$$box CELERYKIT_PROCESS_MANAGER=$$manager CELERYKIT_BROKER_TLS=$$tls \
	    tests/cluster.sh test; \
	done

# Benchmarks of the running cluster (`make up` first); see README.md "Benchmarks". Knobs, as
# environment or make variables: BENCH_TASKS (10000), BENCH_AMQP_MESSAGES (20000),
# BENCH_AMQP_CONSUMERS, BENCH_HAND_CONCURRENCY, BENCH_HAND_PREFETCH (4), BENCH_MAX_SECONDS (180),
# BENCH_WRK_DURATION/CONNECTIONS/THREADS (10/8/2), BENCH_E2E_RATE/SECONDS (5/20),
# BENCH_PHASES, BENCH_PROVISION=1, BENCH_SWEEP=1 (BENCH_SWEEP_TASKS), BENCH_SCALE=1,
# BENCH_PROFILE=1 (BENCH_PROFILE_SECONDS/TASKS: 15/8000), BENCH_INVENTORY.
bench: venv
	python bench/run.py

# By hand, on a cluster brought up by `make up` (it restarts every broker, so it is not part of
# the cluster test): tests/faults/test_broker_upgrade.py.
broker-upgrade-drill: venv
	pytest -v tests/faults/test_broker_upgrade.py --ansible-inventory=ansible/inventories/vagrant

# By hand, on a Debian 12 cluster (`CELERYKIT_LXC_BOX=celerykit/debian12 make up`): the drill's
# three new brokers (Debian 13) come up beside it and move-brokers.yml moves the site to them
# under load (tests/faults/test_broker_move.py; README, "Broker upgrades"). `make down` after.
broker-move-drill: venv host
	vagrant/build-box.sh celerykit/debian13
	vagrant up --no-provision $$(ruby -ryaml -e 'puts YAML.load_file("vagrant/hosts.yml")["machines"].select { |m| m["blue_green"] }.map { |m| m["name"] }.join(" ")')
	pytest -v tests/faults/test_broker_move.py --ansible-inventory=tests/broker_move/vagrant
