#!/usr/bin/env bash
# A local presenced cluster on 127.0.0.1, for trying things out and for
# failure drills. Node i serves HTTP on 70i0, raft on 70i1, gossip on 70i2,
# keeps data in cluster-data/n$i and logs to cluster-data/n$i.log.
#
#   scripts/cluster.sh start [N]     start nodes 1..N (default 3); 2..N join node 1
#   scripts/cluster.sh stop          SIGTERM every node (graceful: clients told to reconnect)
#   scripts/cluster.sh kill I        kill -9 node I
#   scripts/cluster.sh restart I     start node I again (a new incarnation), joining the others
#   scripts/cluster.sh status        which nodes run, and their /readyz
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./bin/presenced
dir=cluster-data
[ -x "$bin" ] || make build >/dev/null
mkdir -p "$dir"

http_port() { echo $((7000 + $1 * 10)); }

start_node() {
  local i=$1 join=${2:-}
  local p; p=$(http_port "$i")
  if [ -f "$dir/n$i.pid" ] && kill -0 "$(cat "$dir/n$i.pid")" 2>/dev/null; then
    echo "n$i already running"; return
  fi
  "$bin" --node-name "n$i" --listen "127.0.0.1:$p" --raft-addr "127.0.0.1:$((p + 1))" \
    --gossip-addr "127.0.0.1:$((p + 2))" --gossip-profile local --data-dir "$dir/n$i" \
    ${join:+--join "$join"} >>"$dir/n$i.log" 2>&1 &
  echo $! >"$dir/n$i.pid"
  for _ in $(seq 1 100); do curl -sf "127.0.0.1:$p/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
  echo "n$i  http://127.0.0.1:$p  (pid $(cat "$dir/n$i.pid"))"
}

running() { for f in "$dir"/n*.pid; do [ -e "$f" ] || continue; i=${f##*/n}; i=${i%.pid}; kill -0 "$(cat "$f")" 2>/dev/null && echo "$i"; done; }

peers_except() { # gossip addresses of running nodes other than $1
  local out=() i
  for i in $(running); do [ "$i" = "$1" ] || out+=("127.0.0.1:$(( $(http_port "$i") + 2 ))"); done
  (IFS=,; echo "${out[*]}")
}

case "${1:-}" in
  start)
    n=${2:-3}
    start_node 1
    for i in $(seq 2 "$n"); do start_node "$i" "127.0.0.1:$(( $(http_port 1) + 2 ))"; done ;;
  stop)
    for i in $(running); do kill "$(cat "$dir/n$i.pid")"; done
    for i in $(running); do for _ in $(seq 1 100); do kill -0 "$(cat "$dir/n$i.pid")" 2>/dev/null || break; sleep 0.1; done; done
    echo "stopped" ;;
  kill)
    kill -9 "$(cat "$dir/n$2.pid")"; echo "n$2 killed (-9)" ;;
  restart)
    start_node "$2" "$(peers_except "$2")" ;;
  status)
    for i in $(running); do p=$(http_port "$i"); echo "n$i  http://127.0.0.1:$p  $(curl -s "127.0.0.1:$p/readyz")"; done ;;
  *)
    sed -n '2,12p' "$0"; exit 2 ;;
esac
