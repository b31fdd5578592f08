#!/usr/bin/env bash
# Smoke test of a running node: the README's five-minute tour, checked.
# Usage: scripts/smoke.sh [http://127.0.0.1:7070]   (the node must be in open dev mode)
set -euo pipefail
base=${1:-http://127.0.0.1:7070}
fail() { echo "FAIL: $*" >&2; exit 1; }
expect() { # expect NAME CMD... : run CMD, require its output to contain NAME
  local want=$1; shift
  local got
  got=$("$@") || fail "$* exited $?"
  [[ $got == *"$want"* ]] || fail "$*: want $want, got $got"
  echo "pass  $want"
}
expect '"status":"ok"' curl -sf "$base/healthz"
for _ in $(seq 1 100); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.1; done
expect '"status":"ready"' curl -sf "$base/readyz"
expect '{"success":true}' curl -sf -XPOST "$base/api/presence?user=alice" -d '{"status":"online","metadata":{"page":"/doc"}}'
expect '{"success":true}' curl -sf -XPOST "$base/api/presence/room/project-1?user=alice" -d '{"action":"join"}'
expect '"alice":{"userId":"alice","status":"online"' curl -sf "$base/api/presence?userIds=alice,bob"
expect '"bob":null' curl -sf "$base/api/presence?userIds=alice,bob"
expect '"state":"active"' curl -sf "$base/v1/users/alice"
expect '"user":"alice"' curl -sf "$base/v1/rooms/project-1/users"
expect '"online":{"connections":' curl -sf "$base/v1/rooms/project-1/counts"
agent=$(curl -sf -XPOST "$base/v1/agents" -d '{"user":"summarizer","rooms":[{"room":"project-1","data":{"task":"notes"}}]}')
[[ $agent == *'"session":'* ]] || fail "agent: $agent"
sid=$(sed -E 's/.*"session":"([^"]+)".*/\1/' <<<"$agent")
echo "pass  agent $sid"
expect '"user":"summarizer"' curl -sf "$base/v1/rooms/project-1/members"
curl -sf -XDELETE "$base/v1/agents/$sid" || fail "delete agent"
echo "pass  agent removed"
expect '{"success":true}' curl -sf -XPOST "$base/api/presence?user=alice" -H 'Content-Type: text/plain' -d '{"status":"offline"}'
expect '"online":false' curl -sf "$base/v1/users/alice/last-seen"
expect '"alice":null' curl -sf "$base/api/presence?userIds=alice"
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/v1/users?ids=$(seq -s, 1 101)")
[[ $code == 400 ]] || fail "101 ids: $code"
echo "pass  101 ids -> 400"
echo "smoke: every check of the tour passed"
