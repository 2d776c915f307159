#!/usr/bin/env bash
# Bring the local cluster up and provision it (`up`), or run the whole cluster test (`test`):
# up, first provision, second provision that must report changed=0, testinfra, end-to-end,
# fault scenarios, the same machines as a worker-only site, then teardown whether the tests
# passed or not. Prints each phase with its
# elapsed time and writes the timings to tests/results/phases.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:?usage: tests/cluster.sh up|test [checks command]}
# `test` only: a command (make test's lint, unit and integration) run in the background while the
# machines come up and take their first provision, which mostly wait on the containers; its
# output is shown, and its failure fails the test, once that provision has ended.
checks=${2:-}
results=tests/results
inventory=ansible/inventories/vagrant
infra_processes=${KIT_INFRA_PROCESSES:-3}
mkdir -p "$results"
: >"$results/phases.txt"

phase_start=$SECONDS
phase_name=""
phase() {
  if [ -n "$phase_name" ]; then
    printf '%-42s %5ss\n' "$phase_name" "$((SECONDS - phase_start))" | tee -a "$results/phases.txt"
  fi
  phase_name=$1
  phase_start=$SECONDS
  printf '\n==> [%s] %s (total +%ss)\n' "$(date +%H:%M:%S)" "$phase_name" "$SECONDS"
}

# Ansible's fact cache (ansible.cfg) describes machines by name; new machines under the same
# names (another box, another release) must not inherit it: a Debian 13 cache made a Debian 12
# cluster look for /usr/bin/python3.13.
fact_cache=.cache/ansible-facts

# The test sessions below resolve the deployment's variables once per inventory
# (tests/cluster_runs.py resolve_vars); the folder holds the secrets too, and goes at teardown.
if [ "$mode" = test ]; then
  KIT_RESOLVED_VARS_CACHE=$(mktemp -d -t kit-resolved-vars.XXXXXX)
  export KIT_RESOLVED_VARS_CACHE
fi

teardown() {
  status=$?
  if [ -n "${checks_pid:-}" ] && kill -0 "$checks_pid" 2>/dev/null; then
    kill -- "-$checks_pid" 2>/dev/null || kill "$checks_pid" 2>/dev/null || true
  fi
  rm -rf "${KIT_RESOLVED_VARS_CACHE:-/nonexistent}"
  phase "teardown (vagrant destroy -f --parallel)"
  vagrant destroy -f --parallel >/dev/null 2>&1 || true
  rm -rf "$fact_cache"
  phase "done"
  if [ "$status" -eq 0 ]; then echo "cluster test PASSED in ${SECONDS}s"; else echo "cluster test FAILED (exit $status) after ${SECONDS}s"; fi
  exit "$status"
}

# Prints "HOST changed=N" for each host of a PLAY RECAP; fails if any host has changed > 0.
assert_no_changes() {
  local recap
  recap=$(sed -n '/PLAY RECAP/,$p' "$1" | grep -E 'ok=[0-9]+ +changed=' || true)
  [ -n "$recap" ] || { echo "no PLAY RECAP in $1" >&2; return 1; }
  echo "$recap"
  if echo "$recap" | grep -Eq 'changed=[1-9]|failed=[1-9]|unreachable=[1-9]'; then
    echo "second run of site.yml was not idempotent (changed tasks above):" >&2
    grep -E '^changed:' "$1" >&2 || true
    return 1
  fi
}

provision() {
  # vagrant provision runs the Vagrantfile's ansible provisioner (site.yml, all hosts); the
  # profile callbacks end the log with the slowest tasks and roles (where a deploy's time goes).
  ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks,ansible.posix.profile_roles \
    PROFILE_TASKS_TASK_OUTPUT_LIMIT=25 vagrant provision 2>&1 | tee "$1"
}

# LXC containers under this cluster's names that this checkout's Vagrant does not own (a run
# from another clone, or one cut off before its teardown) make `vagrant up` refuse. The cluster
# test owns those names and destroys them, saying so; `up` stops and says how to remove them.
clear_foreign_containers() {
  [ "${VAGRANT_DEFAULT_PROVIDER:-lxc}" = lxc ] || return 0
  local prefix names name container
  prefix=$(ruby -ryaml -e 'puts YAML.load_file("vagrant/hosts.yml")["lxc_container_prefix"]')
  names=$(ruby -ryaml -e 'puts YAML.load_file("vagrant/hosts.yml")["machines"].map { |m| m["name"] }')
  for name in $names; do
    container="$prefix$name"
    sudo lxc-info -n "$container" >/dev/null 2>&1 || continue
    [ "$(cat ".vagrant/machines/$name/lxc/id" 2>/dev/null)" = "$container" ] && continue
    if [ "$mode" = test ]; then
      echo "destroying container $container: left by another checkout or an interrupted run"
      sudo lxc-destroy -f -n "$container" >/dev/null
    else
      echo "container $container exists but this checkout did not create it;" \
        "remove it with: sudo lxc-destroy -f -n $container" >&2
      exit 1
    fi
  done
}

[ "$mode" = test ] && trap teardown EXIT

clear_foreign_containers

echo "box: ${CELERYKIT_LXC_BOX:-default of vagrant/hosts.yml} (provider ${VAGRANT_DEFAULT_PROVIDER:-lxc}), process manager: ${CELERYKIT_PROCESS_MANAGER:-supervisor}"
if [ "$mode" = test ] && [ -n "$checks" ]; then
  echo "lint, unit and integration tests run alongside (output: $results/checks.log): $checks"
  set -m
  bash -c "$checks" >"$results/checks.log" 2>&1 &
  checks_pid=$!
  set +m
fi
phase "vagrant up ($(ruby -ryaml -e 'puts YAML.load_file("vagrant/hosts.yml")["machines"].reject { |m| m["scale_out"] || m["blue_green"] }.map { |m| m["name"] }.join(" ")'))"
# No cached facts from earlier machines (see fact_cache above); the first run gathers them.
rm -rf "$fact_cache"
vagrant up --no-provision
phase "provision: first run of site.yml"
provision "$results/provision-1.log"
[ "$mode" = up ] && { phase "cluster is up"; vagrant status; exit 0; }

if [ -n "${checks_pid:-}" ]; then
  phase "lint, unit, integration (run alongside the phases above)"
  checks_status=0
  wait "$checks_pid" || checks_status=$?
  checks_pid=""
  cat "$results/checks.log"
  [ "$checks_status" -eq 0 ] || { echo "lint, unit or integration tests failed (exit $checks_status)" >&2; exit 1; }
fi

phase "provision: second run of site.yml (expect changed=0)"
provision "$results/provision-2.log"
assert_no_changes "$results/provision-2.log"

phase "testinfra (tests/infra) on every host"
# Each test module names its own groups (testinfra_hosts); --sudo: checks run as root. The
# checks only read the hosts' state, so they run in $infra_processes processes side by side
# (most of their time is spent waiting on the hosts).
pytest -v -n "$infra_processes" --durations=15 tests/infra --sudo --ansible-inventory="$inventory" \
  --junitxml="$results/infra.xml"

phase "end-to-end (tests/e2e)"
pytest -v --durations=15 tests/e2e --ansible-inventory="$inventory" --junitxml="$results/e2e.xml"

phase "fault scenarios (tests/faults): kills, stops, restarts, rolling deploy, hostile input"
# Prints the table (submitted / completed / lost / duplicated / recovery) and writes
# tests/results/faults.json.
pytest -v --durations=15 tests/faults --ignore=tests/faults/test_broker_upgrade.py --ignore=tests/faults/test_broker_move.py --ansible-inventory="$inventory" --junitxml="$results/faults.xml"

# Last, because it narrows the cluster: the same machines as a site without web hosts
# (tests/worker_only/vagrant: the inventory less its web and monitoring groups). site.yml
# deploys it (the brokers' and the result store's firewall then admit the worker hosts only)
# and the testinfra modules of the roles such a site has pass against it.
phase "worker-only site (no web hosts): site.yml, testinfra"
worker_only=tests/worker_only/vagrant
(cd ansible && ansible-playbook -i "../$worker_only" site.yml) >"$results/provision-worker-only.log" 2>&1 \
  || { tail -n 60 "$results/provision-worker-only.log"; echo "site.yml failed on the worker-only inventory" >&2; exit 1; }
sed -n '/PLAY RECAP/,/^$/p' "$results/provision-worker-only.log"
pytest -v -n "$infra_processes" --durations=5 --sudo --ansible-inventory="$worker_only" --junitxml="$results/worker-only.xml" \
  tests/infra/test_rabbitmq.py tests/infra/test_redis.py tests/infra/test_celery_app.py \
  tests/infra/test_celery_worker.py tests/infra/test_celery_beat.py \
  tests/infra/test_process_manager.py tests/infra/test_firewall.py tests/infra/test_secrets.py
