#!/usr/bin/env bash
# The embedded cluster on this machine, for the large-fleet benchmark (BENCHMARKS.md §5) and to try the
# topology by hand: a throwaway PostgreSQL and Redis on loopback, then REPLICAS coordinator processes
# (embedded Aedes clustered through Redis, one PostgreSQL store, one artifacts directory, one signing
# key and operator token). Replica 1 starts first and leads. Prints the bench's topology flags, then
# waits; Ctrl-C (or SIGTERM) stops everything and removes the directory.
#
#   bash simulator/bench/cluster-topology.sh            # REPLICAS=4 BASE_PORT=18800 by default
#   npm run bench -- --only scale --devices 50000 <the printed flags>
#
# NODE_ARGS are given to each coordinator's node (e.g. "--cpu-prof --cpu-prof-dir /tmp/prof");
# FLEET_MQTT_MAX_CONNECTING and FLEET_MQTT_CONNECTS_PER_SECOND (each node's CONNECT admission) pass through.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPLICAS=${REPLICAS:-4}
read -r -a node_args <<<"${NODE_ARGS:-}"
BASE_PORT=${BASE_PORT:-18800}
TOKEN=${FLEET_ADMIN_TOKEN:-cluster-bench-operator-token-$(openssl rand -hex 8)}
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
DIR=$(mktemp -d /tmp/fleet-cluster-XXXXXX)
chmod 755 "$DIR"
pids=()
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  as_postgres "$PG_BIN/pg_ctl" -D "$DIR/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

pg_port=$((BASE_PORT)); redis_port=$((BASE_PORT + 1))
mkdir -p "$DIR/pg" && [ "$(id -u)" = 0 ] && chown postgres: "$DIR/pg"
as_postgres "$PG_BIN/initdb" -D "$DIR/pg" -U postgres -A trust -E UTF8 --no-sync >/dev/null
as_postgres "$PG_BIN/pg_ctl" -D "$DIR/pg" -l "$DIR/pg/log" -w -o "-p $pg_port -k $DIR/pg -c listen_addresses=127.0.0.1 -c max_connections=400 -c synchronous_commit=off" start >/dev/null
STORE="postgres://postgres@127.0.0.1:$pg_port/postgres"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >"$DIR/redis.log" 2>&1 &
pids+=($!)
node cli/dist/fleet.js firmware keygen --out "$DIR/keys" --name fleet >/dev/null

brokers=()
for i in $(seq 1 "$REPLICAS"); do
  mqtt=$((BASE_PORT + 10 + i)); http=$((BASE_PORT + 30 + i))
  FLEET_ADMIN_TOKEN=$TOKEN FLEET_CREDENTIAL_COST=${FLEET_CREDENTIAL_COST:-4} node "${node_args[@]}" cli/dist/fleet.js coordinator start \
    --data-dir "$DIR/r$i" --replica-id "r$i" --store "$STORE" --cluster-redis "redis://127.0.0.1:$redis_port" \
    --mqtt-port "$mqtt" --http-port "$http" --signing-key "$DIR/keys/fleet.key" --artifacts-dir "$DIR/artifacts" \
    --public-url "http://127.0.0.1:$((BASE_PORT + 31))" --log-format json --log-level warn >"$DIR/r$i.log" 2>&1 &
  pids+=($!)
  brokers+=("mqtt://127.0.0.1:$mqtt")
  # Replica 1 leads: the others start once it answers.
  for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$http/v1/health" >/dev/null 2>&1 && break; sleep 0.2; done
done
admin="http://127.0.0.1:$((BASE_PORT + 31))"
curl -sf -H "authorization: Bearer $TOKEN" "$admin/v1/cluster" || true
echo
echo "--brokers $(IFS=,; echo "${brokers[*]}") --admin $admin --token $TOKEN --trust $DIR/r1/trust"
echo "logs: $DIR/r*.log; Ctrl-C stops the cluster"
wait "${pids[@]}"
