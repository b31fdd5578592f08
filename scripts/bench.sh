#!/usr/bin/env bash
# make bench: the performance report (≤ 15 min on a 2-core machine).
#   1. Go benchmarks of the hot paths (crdt merge and delta extraction,
#      derived queries, event encoding, fan-out, raft writes, propagation,
#      kill -9 → stale over 20 kills);
#   2. presence-bench: 3 nodes, 58,500 idle WebSocket sessions (19.5k per
#      node) from worker processes on several 127.0.x.y addresses, then
#      propagation, fan-out, churn and kill -9 phases, and seed 001's
#      Redis-TTL design beside presenced (redis-server is installed from
#      Debian when missing and we are root).
# Usage: scripts/bench.sh [report.md]   (JSON goes next to it)
set -euo pipefail
out=${1:-bin/bench-report.md}
GO=${GO:-go}
mkdir -p "$(dirname "$out")" bin
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bench: installing redis-server (Debian) for the seed-001 baseline"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    # The package starts a system redis on 6379; the benchmark runs its own.
    (service redis-server stop || systemctl stop redis-server || true) >/dev/null 2>&1
  else
    echo "bench: redis-server is not installed; the seed-001 baseline will be skipped"
  fi
fi
$GO build -o bin/presenced ./cmd/presenced
$GO build -o bin/presence-bench ./cmd/presence-bench

gb=bin/gobench.txt
: > "$gb"
echo "bench: Go benchmarks (output in $gb)"
run() { $GO test -run '^$' "$@" | tee -a "$gb" | grep -E '^Benchmark' || true; }
run -bench 'MergeDelta10Into100k|DeltaSince|DeltaCodec10|MemoryPerEntry' -benchtime 1s ./crdt/
run -bench 'RoomMembers10k|RoomUsers10k|RoomCounts10k|UsersPresence100|EnterLeave|FanOut1k|EncodeUpdateEvent' -benchtime 1s ./session/
run -bench 'OriginFailed20k' -benchtime 5x ./session/
run -bench 'HTTPRoomMembers10k|HTTPRoomCounts10k|HTTPUsersBatch100' -benchtime 1s ./gateway/
run -bench 'MetaPut$' -benchtime 3s ./cluster/
run -bench 'CrossNodePropagation' -benchtime 2000x ./cluster/
run -bench 'Kill9ToStale' -benchtime 20x ./cmd/presenced/

echo "bench: load generator"
bin/presence-bench --bin bin/presenced --go-bench "$gb" --md "$out" --json "${out%.md}.json" ${BENCH_FLAGS:-}
echo "bench: report written to $out (JSON: ${out%.md}.json)"
