#!/usr/bin/env bash
# The docker-compose topology as native processes, for machines without a
# Docker engine: Redis, two Chorus predictors, the gateway in front (and
# Prometheus scraping it when its binary is installed, and Grafana with the
# Chorus dashboard on top when grafana-server is installed too). Logs and pids go to
# $STACK_DIR (default ~/.cache/chorus/stack).
#   scripts/stack.sh up | down | status
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${STACK_DIR:-${CHORUS_CACHE:-$HOME/.cache/chorus}/stack}
GATEWAY_PORT=${HTTP_PORT:-8080} P1=18081 P2=18082 REDIS_PORT=16379 PROM_PORT=19090 GRAFANA_PORT=13000

start() { # name, command...
  local name=$1; shift
  "$@" > "$dir/$name.log" 2>&1 &
  echo $! > "$dir/$name.pid"
}

wait_ready() { # name url
  for _ in $(seq 1 300); do
    if bin/chorus probe "$2" >/dev/null 2>&1; then echo "==> stack: $1 ready"; return; fi
    sleep 0.1
  done
  echo "stack: $1 not ready; see $dir/$1.log" >&2; exit 1
}

down() {
  for f in "$dir"/*.pid; do
    [[ -f $f ]] || continue
    kill "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
  echo "==> stack: stopped"
}

# grafana runs grafana-server with deploy/grafana's datasource (pointed at
# the local Prometheus) and dashboards, when it is installed.
grafana() {
  if ! command -v grafana-server >/dev/null; then
    echo "==> stack: no grafana-server (Grafana's own packages) to show deploy/grafana/dashboards/chorus.json"
    return
  fi
  local home=${GRAFANA_HOME:-/usr/share/grafana} prov=$dir/grafana/provisioning
  mkdir -p "$prov/datasources" "$prov/dashboards" "$dir/grafana/data"
  sed -e "s#http://prometheus:9090#http://127.0.0.1:$PROM_PORT#" \
    deploy/grafana/provisioning/datasources/prometheus.yaml > "$prov/datasources/prometheus.yaml"
  sed -e "s#/var/lib/grafana/dashboards#$PWD/deploy/grafana/dashboards#" \
    deploy/grafana/provisioning/dashboards/chorus.yaml > "$prov/dashboards/chorus.yaml"
  start grafana env GF_PATHS_PROVISIONING="$prov" GF_PATHS_DATA="$dir/grafana/data" GF_PATHS_LOGS="$dir/grafana" \
    GF_SERVER_HTTP_ADDR=127.0.0.1 GF_SERVER_HTTP_PORT=$GRAFANA_PORT \
    GF_AUTH_ANONYMOUS_ENABLED=true GF_AUTH_ANONYMOUS_ORG_ROLE=Viewer \
    GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH="$PWD/deploy/grafana/dashboards/chorus.json" \
    grafana-server --homepath "$home"
  echo "==> stack: grafana on http://127.0.0.1:$GRAFANA_PORT (the Chorus dashboard is its home page)"
}

up() {
  mkdir -p "$dir"
  down >/dev/null
  start redis redis-server --port $REDIS_PORT --bind 127.0.0.1 --save "" --appendonly no \
    --maxmemory 256mb --maxmemory-policy allkeys-lru
  for i in 1 2; do
    port=P$i
    start predictor-$i env OTEL_SERVICE_NAME=predictor-$i bin/chorus serve --config configs/stack/predictor.yaml --http_port ${!port} --grpc_port 0
  done
  sed -e "s#redis://redis:6379/0#redis://127.0.0.1:$REDIS_PORT/0#" \
      -e "s#http://predictor-1:8080#http://127.0.0.1:$P1#" -e "s#http://predictor-2:8080#http://127.0.0.1:$P2#" \
      configs/stack/gateway.yaml > "$dir/gateway.yaml"
  wait_ready predictor-1 http://127.0.0.1:$P1/v2/health/ready
  wait_ready predictor-2 http://127.0.0.1:$P2/v2/health/ready
  start gateway env OTEL_SERVICE_NAME=gateway bin/chorus serve --config "$dir/gateway.yaml" --http_port "$GATEWAY_PORT" --watch
  wait_ready gateway "http://127.0.0.1:$GATEWAY_PORT/v2/health/ready"
  if command -v prometheus >/dev/null; then
    sed -e "s#gateway:8080#127.0.0.1:$GATEWAY_PORT#" -e "s#predictor-1:8080#127.0.0.1:$P1#" -e "s#predictor-2:8080#127.0.0.1:$P2#" \
      deploy/compose/prometheus.yml > "$dir/prometheus.yml"
    start prometheus prometheus --config.file="$dir/prometheus.yml" --web.listen-address=127.0.0.1:$PROM_PORT --storage.tsdb.path="$dir/tsdb"
    echo "==> stack: prometheus on http://127.0.0.1:$PROM_PORT"
    grafana
  else
    echo "==> stack: no prometheus binary (apt-get install prometheus to add it); metrics at http://127.0.0.1:$GATEWAY_PORT/metrics"
  fi
  cat <<EOT
==> stack: up. Gateway http://localhost:$GATEWAY_PORT → predictors :$P1 and :$P2, Redis :$REDIS_PORT. Logs in $dir.
    curl -H "content-type:application/json" http://localhost:$GATEWAY_PORT/v1/models/distilbert:predict -d '{"instances": ["Hello, my dog is cute", "I am feeling sad"]}'
    make stack-down to stop.
EOT
}

case ${1:-up} in
  up) up ;;
  down) down ;;
  status) for f in "$dir"/*.pid; do [[ -f $f ]] && { n=$(basename "$f" .pid); kill -0 "$(cat "$f")" 2>/dev/null && echo "$n: running" || echo "$n: dead"; }; done ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
