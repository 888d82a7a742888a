#!/usr/bin/env bash
# make demo: bring up the local stack, migrate, start `chatwarden serve`, and
# stream simulated chatbot-platform traffic with attacks through Kafka.
# Runs until Ctrl-C, or for DEMO_SECONDS seconds when that is set.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="/usr/local/go/bin:$PATH:/usr/sbin:/sbin"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "starting the local stack (Kafka 4.1 KRaft + ClickHouse on 127.0.0.1)"
bash scripts/stack.sh up
eval "$(bash scripts/stack.sh env)"

mkdir -p .stack/bin .stack/demo
say "building chatwarden"
go build -o .stack/bin/chatwarden ./cmd/chatwarden
cw=.stack/bin/chatwarden

# A pseudonymization key for customer ids, made once and kept under .stack/.
key=.stack/pseudonym.key
if [ ! -s "$key" ]; then
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$key"
	chmod 600 "$key"
	echo "generated a pseudonymization key in $key"
fi
export CHATWARDEN_PSEUDONYM_KEY_FILE="$PWD/$key"
export CHATWARDEN_CLICKHOUSE_DATABASE="${CHATWARDEN_CLICKHOUSE_DATABASE:-chatwarden}"
addr="${DEMO_ADDR:-127.0.0.1:8080}"

# A demo login for the web UI (plain http on 127.0.0.1), made once.
cfg=.stack/demo/chatwarden.yaml
pwfile=.stack/demo/password
if [ ! -s "$cfg" ] || [ ! -s "$pwfile" ]; then
	head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$pwfile"
	chmod 600 "$pwfile"
	hash=$(go run ./scripts/demohash < "$pwfile")
	cat > "$cfg" <<YAML
# Written by scripts/demo.sh for the demo only.
dashboards:
  insecure_cookies: true
  users:
    - name: demo
      role: admin
      password_hash: "$hash"
YAML
fi

say "migrating ClickHouse database $CHATWARDEN_CLICKHOUSE_DATABASE"
"$cw" migrate -config "$cfg"

say "creating Kafka topics"
bash scripts/stack.sh topic chatwarden.access.v1 4
bash scripts/stack.sh topic chatwarden.consent.v1 2
bash scripts/stack.sh topic chatwarden.deadletter.v1 2

serve_log=.stack/demo/serve.log
sim_log=.stack/demo/simulate.log
pids=()
cleanup() {
	trap - INT TERM EXIT
	say "stopping (serve flushes and commits before it exits)"
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	"$cw" status 2>/dev/null || true
	echo
	echo "the stack keeps running: 'make stack-down' stops it; logs: $serve_log $sim_log"
}
trap cleanup INT TERM EXIT

say "starting chatwarden serve on http://$addr (log: $serve_log)"
"$cw" serve -config "$cfg" -addr "$addr" > "$serve_log" 2>&1 &
pids+=($!)
for _ in $(seq 1 60); do
	curl -fsS "http://$addr/healthz" > /dev/null 2>&1 && break
	kill -0 "${pids[0]}" 2>/dev/null || { cat "$serve_log"; exit 1; }
	sleep 0.5
done
curl -fsS "http://$addr/healthz" > /dev/null || { echo "serve did not become healthy"; cat "$serve_log"; exit 1; }

say "streaming simulated traffic with attacks through Kafka (log: $sim_log)"
# 10 simulated seconds per second, 5x the default activity: an attack about
# every 12 s of wall time after a 12 s warm-up.
"$cw" simulate -kafka "$CHATWARDEN_KAFKA_BROKERS" -realtime -speedup 10 -rate-scale 5 \
	-warmup 2m -attack-every 2m -out-labels .stack/demo/labels.jsonl > "$sim_log" 2>&1 &
pids+=($!)

say "sending 3 malformed events, to show the dead-letter path"
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cat > .stack/demo/bad.jsonl <<JSON
{"event_id":"demo-bad-1","ts":"$now","actor":{"id":"demo","type":"robot"},"action":"read","store":"crm","resource":{"type":"customer_profile"}}
{"event_id":"demo-bad-2","ts":"$now","actor":{"id":"demo","type":"human"},"action":"read","resource":{"type":"customer_profile"}}
{"event_id":"demo-bad-3","ts":"yesterday","actor":{"id":"demo","type":"human"},"action":"read","store":"crm","resource":{"type":"customer_profile"}}
JSON
"$cw" produce -quiet -file .stack/demo/bad.jsonl

cat <<TXT

Where to look:
  http://$addr/            web UI (alerts, investigate, weekly report): user demo, password $(cat "$pwfile")
  http://$addr/metrics     Prometheus metrics (chatwarden_ingest_*, chatwarden_detect_*, chatwarden_alert_*)
  http://$addr/healthz     health
  $cw status               events stored, dead letters by reason, consumer lag
  $cw history -actor ID    who touched what (audited)
  attack labels the simulator injected: .stack/demo/labels.jsonl
TXT

start=$(date +%s)
limit="${DEMO_SECONDS:-0}"
while :; do
	sleep 10
	elapsed=$(( $(date +%s) - start ))
	say "after ${elapsed}s"
	"$cw" status 2>/dev/null | grep -E '^(events|last event|dead letters|group)' || true
	if [ -s .stack/demo/labels.jsonl ]; then
		echo "attacks injected so far ($(wc -l < .stack/demo/labels.jsonl)):"
		sed -E 's/.*"kind":"([^"]*)".*"actor_id":"([^"]*)".*/    \1 by \2/' .stack/demo/labels.jsonl | tail -5
	fi
	echo "alerts raised so far ($(grep 'msg="alert' "$serve_log" | grep -c ' detector=' || true)):"
	grep 'msg="alert' "$serve_log" | grep ' detector=' | sed -E 's/.*detector=([^ ]+).*actor=([^ ]+) severity=([^ ]+).*summary="([^"]*)".*/    [\3] \1 \2: \4/' | tail -5 || true
	for p in "${pids[@]}"; do
		kill -0 "$p" 2>/dev/null || { echo "a demo process exited; see $serve_log and $sim_log"; exit 1; }
	done
	if [ "$limit" -gt 0 ] && [ "$elapsed" -ge "$limit" ]; then
		break
	fi
done
