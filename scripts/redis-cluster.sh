#!/usr/bin/env bash
# redis-cluster.sh: a Redis Cluster on loopback for faultline's cluster store: 3 masters and 3 replicas
# (Debian's redis-server 7), each in its own folder under DIR, stopped by process id. The cluster tests
# start it once per ctest run (a FIXTURES_SETUP test) and `faultline bench` measures its rows against it.
#
#   scripts/redis-cluster.sh start DIR [BASE_PORT]   # ports BASE..BASE+5 (default 7300); prints the seeds
#   scripts/redis-cluster.sh stop DIR                # kills the servers by their pid files, removes DIR
#   scripts/redis-cluster.sh restart DIR PORT        # starts that node again (it rejoins as a replica)
#   scripts/redis-cluster.sh wait-healthy DIR        # until every slot is served and every master has a
#                                                    # replica in sync (after a failover and a restart)
#   scripts/redis-cluster.sh seeds DIR               # the seeds, for FAULTLINE_REDIS_CLUSTER
#
# The servers keep nothing on disk beyond their cluster configuration (no RDB, no AOF), run with
# maxmemory-policy noeviction (a full cluster refuses writes: a failed write-back, never a lost page) and
# cluster-node-timeout 1000 ms (a dead master's replica is promoted within about 2 s). Start refuses a
# port already taken; a DIR left by an earlier run is stopped first.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
[[ -n $cmd && -n $dir ]] || { sed -n '2,14p' "$0" >&2; exit 2; }
dir=$(realpath -m "$dir")
cli() { redis-cli -h 127.0.0.1 -p "$1" "${@:2}"; }

start_node() {  # $1: port
  local p=$1 d=$dir/node-$1
  mkdir -p "$d"
  redis-server --port "$p" --bind 127.0.0.1 --dir "$d" --daemonize yes --pidfile "$d/redis.pid" \
    --logfile "$d/redis.log" --cluster-enabled yes --cluster-config-file nodes.conf \
    --cluster-node-timeout 1000 --save '' --appendonly no --maxmemory-policy noeviction \
    --protected-mode no --cluster-replica-validity-factor 0 >/dev/null
  for _ in $(seq 100); do
    cli "$p" ping >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "redis-cluster: the server on port $p did not start (see $d/redis.log)" >&2
  return 1
}

ports() { cat "$dir/ports"; }

healthy() {  # every slot served, 3 masters, each with a replica online and in sync
  local p masters=0 info
  for p in $(ports); do
    info=$(cli "$p" cluster info 2>/dev/null) || continue
    grep -q 'cluster_state:ok' <<<"$info" || return 1
    grep -q 'cluster_slots_ok:16384' <<<"$info" || return 1
    info=$(cli "$p" info replication 2>/dev/null) || return 1
    if grep -q 'role:master' <<<"$info"; then
      grep -qE 'slave0:.*state=online' <<<"$info" || return 1
      masters=$((masters + 1))
    else
      grep -q 'master_link_status:up' <<<"$info" || return 1
      grep -q 'master_sync_in_progress:0' <<<"$info" || return 1
    fi
  done
  [ "$masters" -eq 3 ] || return 1
  # ... and every node has heard of it (CLUSTER SLOTS lists the replicas)
  info=$(redis-cli --cluster check "127.0.0.1:$(ports | head -1)" 2>/dev/null) || return 1
  [ "$(grep -c '1 additional replica' <<<"$info")" -eq 3 ] && grep -q 'All nodes agree' <<<"$info"
}

wait_healthy() {
  for _ in $(seq 300); do
    healthy && return 0
    sleep 0.1
  done
  echo "redis-cluster: not healthy after 30 s" >&2
  for p in $(ports); do echo "--- $p"; cli "$p" cluster nodes 2>&1 | head -8; done >&2
  return 1
}

stop_all() {
  [ -d "$dir" ] || return 0
  local f pids=()
  for f in "$dir"/node-*/redis.pid; do
    [ -r "$f" ] || continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null && grep -q redis-server "/proc/$pid/cmdline" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$dir"
}

case $cmd in
  start)
    base=${3:-7300}
    command -v redis-server >/dev/null || { echo "redis-cluster: redis-server is not installed (scripts/setup.sh)" >&2; exit 1; }
    stop_all
    mkdir -p "$dir"
    seq "$base" $((base + 5)) >"$dir/ports"
    for p in $(ports); do
      if cli "$p" ping >/dev/null 2>&1; then
        echo "redis-cluster: port $p is taken by another server" >&2
        exit 1
      fi
    done
    for p in $(ports); do start_node "$p"; done
    nodes=()
    for p in $(ports); do nodes+=("127.0.0.1:$p"); done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 ||
      { cat "$dir/create.log" >&2; exit 1; }
    wait_healthy
    (IFS=,; echo "${nodes[*]}") >"$dir/seeds"
    cat "$dir/seeds"
    ;;
  stop) stop_all ;;
  restart)
    port=${3:?port}
    start_node "$port"
    ;;
  wait-healthy) wait_healthy ;;
  seeds) cat "$dir/seeds" ;;
  *) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac
