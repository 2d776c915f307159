#!/usr/bin/env bash
# Start/stop a real RabbitMQ and a real Redis on loopback for kitapp's integration tests.
# Idempotent; works without systemd (no PID 1 init needed).
#
#   bash app/tests/integration/services.sh start        install if missing, start, create vhost+user
#   bash app/tests/integration/services.sh stop         stop both
#   bash app/tests/integration/services.sh status       exit 0 only if both answer
#   bash app/tests/integration/services.sh start-redis | stop-redis   (used by the tests)
#
# Ports and credentials can be overridden; the test suite reads the same variables.
set -euo pipefail

AMQP_PORT="${KITAPP_TEST_AMQP_PORT:-5672}"
REDIS_PORT="${KITAPP_TEST_REDIS_PORT:-6379}"
VHOST="${KITAPP_TEST_VHOST:-kitapp_test}"
AMQP_USER="${KITAPP_TEST_AMQP_USER:-kitapp_test}"
AMQP_PASSWORD="${KITAPP_TEST_AMQP_PASSWORD:-kitapp_test}"
REDIS_DIR="${KITAPP_TEST_REDIS_DIR:-/tmp/kitapp-test-redis}"

log() { printf 'services.sh: %s\n' "$*" >&2; }

need_root() {
    if [ "$(id -u)" != 0 ]; then
        log "must run as root (installs packages and starts RabbitMQ as the rabbitmq user)"
        exit 1
    fi
}

install_packages() {
    local missing=()
    command -v rabbitmq-server >/dev/null 2>&1 || missing+=(rabbitmq-server)
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq
        # policy-rc.d 101: the packages' postinst must not try to start services itself.
        local policy=/usr/sbin/policy-rc.d created_policy=0
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\nexit 101\n' >"$policy"
            chmod 755 "$policy"
            created_policy=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
        # (an if, not `[ ] && rm`: as the function's last command a false test made it return 1,
        # and set -e then ended the script where a policy-rc.d already existed)
        if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi
    fi
}

rabbit_running() { rabbitmqctl -q status >/dev/null 2>&1; }

start_rabbitmq() {
    if rabbit_running; then
        log "rabbitmq already running"
    else
        log "starting rabbitmq on 127.0.0.1:${AMQP_PORT}"
        mkdir -p /var/log/rabbitmq /var/lib/rabbitmq
        chown rabbitmq:rabbitmq /var/log/rabbitmq /var/lib/rabbitmq
        # The Debian wrapper switches to the rabbitmq user with su, keeping these variables.
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$AMQP_PORT" \
            rabbitmq-server -detached
    fi
    # The node registers with epmd a few seconds after -detached returns.
    local registered=0
    for _ in $(seq 1 60); do
        if rabbitmq-diagnostics -q ping >/dev/null 2>&1; then registered=1; break; fi
        sleep 1
    done
    if [ "$registered" != 1 ] || ! timeout 120 rabbitmqctl -q await_startup --timeout 110 >/dev/null; then
        log "rabbitmq did not start; see /var/log/rabbitmq/"
        tail -n 30 /var/log/rabbitmq/rabbit@*.log >&2 2>/dev/null || true
        exit 1
    fi
    if ! rabbitmqctl -q list_vhosts | grep -qx "$VHOST"; then
        rabbitmqctl -q add_vhost "$VHOST"
    fi
    if rabbitmqctl -q list_users | awk '{print $1}' | grep -qx "$AMQP_USER"; then
        rabbitmqctl -q change_password "$AMQP_USER" "$AMQP_PASSWORD" >/dev/null
    else
        rabbitmqctl -q add_user "$AMQP_USER" "$AMQP_PASSWORD" >/dev/null
    fi
    rabbitmqctl -q set_permissions -p "$VHOST" "$AMQP_USER" ".*" ".*" ".*" >/dev/null
    log "rabbitmq ready: amqp://${AMQP_USER}:***@127.0.0.1:${AMQP_PORT}/${VHOST}"
}

stop_rabbitmq() {
    if rabbit_running; then
        log "stopping rabbitmq"
        rabbitmqctl -q stop >/dev/null || true
    else
        log "rabbitmq not running"
    fi
}

redis_running() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

start_redis() {
    if redis_running; then
        log "redis already running on 127.0.0.1:${REDIS_PORT}"
        return
    fi
    log "starting redis on 127.0.0.1:${REDIS_PORT}"
    mkdir -p "$REDIS_DIR"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" \
        --dir "$REDIS_DIR" --save '' --appendonly no \
        --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log"
    for _ in $(seq 1 50); do
        redis_running && { log "redis ready"; return; }
        sleep 0.2
    done
    log "redis did not start; see $REDIS_DIR/redis.log"
    exit 1
}

stop_redis() {
    if redis_running; then
        log "stopping redis"
        redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
        for _ in $(seq 1 50); do
            redis_running || return 0
            sleep 0.1
        done
    else
        log "redis not running"
    fi
}

case "${1:-start}" in
    start)
        need_root
        install_packages
        start_redis
        start_rabbitmq
        ;;
    stop)
        stop_redis
        stop_rabbitmq
        ;;
    status)
        rc=0
        if rabbit_running; then log "rabbitmq: running"; else log "rabbitmq: down"; rc=1; fi
        if redis_running; then log "redis: running"; else log "redis: down"; rc=1; fi
        exit "$rc"
        ;;
    start-redis) start_redis ;;
    stop-redis) stop_redis ;;
    *)
        echo "usage: $0 start|stop|status|start-redis|stop-redis" >&2
        exit 2
        ;;
esac
