#!/usr/bin/env bash
# make demo: bring up the local stack, load a few days of simulated history
# straight into ClickHouse, start `chatwarden serve` (which back-fills every
# actor's baseline from that history), and stream the same simulated
# chatbot platform's live traffic with attacks through Kafka, so that the
# statistical window detectors alert next to the event rules.
# Runs until Ctrl-C, or for DEMO_SECONDS seconds when that is set.
# DEMO_ADDR (127.0.0.1:8080), DEMO_ACTORS (60), DEMO_HISTORY_DAYS (5),
# DEMO_TOPIC_PREFIX (chatwarden) and CHATWARDEN_CLICKHOUSE_DATABASE
# (chatwarden) let a second demo share a stack without colliding.
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
prefix="${DEMO_TOPIC_PREFIX:-chatwarden}"
actors="${DEMO_ACTORS:-60}"
hist_days="${DEMO_HISTORY_DAYS:-5}"

# A demo login for the web UI (plain http on 127.0.0.1), made once.
pwfile=.stack/demo/password
hashfile=.stack/demo/password.bcrypt
if [ ! -s "$pwfile" ]; then
	head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$pwfile"
	chmod 600 "$pwfile"
fi
if [ ! -s "$hashfile" ] || [ "$pwfile" -nt "$hashfile" ]; then
	go run ./scripts/demohash < "$pwfile" > "$hashfile"
fi

# The simulated platform's own purpose policy and vendor contract.
"$cw" simulate -actors "$actors" -days 0.001 -attacks none -out-events /dev/null -out-config .stack/demo/sim.yaml 2>/dev/null

# The demo's configuration: the web login, its own topics, the simulated
# platform's purpose policy and vendor contract (simulate --out-config:
# they are not product defaults), and detection windows that close on
# event time, because the live stream runs 10 simulated seconds a second.
cfg=.stack/demo/chatwarden.yaml
{
	cat <<YAML
# Written by scripts/demo.sh for the demo only.
dashboards:
  insecure_cookies: true
  users:
    - name: demo
      role: admin
      password_hash: "$(cat "$hashfile")"
ingest:
  access_topic: $prefix.access.v1
  consent_topic: $prefix.consent.v1
  dead_letter_topic: $prefix.deadletter.v1
  group: $prefix-ingest
YAML
	sed -n '/^detect:/,$p' .stack/demo/sim.yaml
	# back-fill only the days the history holds (the default, 28 days,
	# would spend the demo's first minutes learning empty windows)
	printf '    clock: events\n    allowed_lateness: 30s\n    backfill_days: %d\n' "$((hist_days + 1))"
} > "$cfg"

say "migrating ClickHouse database $CHATWARDEN_CLICKHOUSE_DATABASE"
"$cw" migrate -config "$cfg"

# History: a few days of the same simulated platform as the live stream
# below (same seed and actors), ending now, without attacks, straight into
# ClickHouse through eval's replay path (chatwarden load: seconds, no
# Kafka). serve's start-up back-fill learns every actor's baseline from it,
# so the statistical detectors judge the live traffic from the first
# minute. A database that already holds events (an earlier demo) keeps them
# as its history.
stored=$("$cw" status -config "$cfg" -json 2>/dev/null | sed -nE 's/^ *"events": ([0-9]+),?$/\1/p' | head -1 || true)
if [ "${stored:-0}" -gt 0 ]; then
	say "database $CHATWARDEN_CLICKHOUSE_DATABASE already holds $stored events: they are the history (drop the database for a fresh one)"
else
	say "simulating ${hist_days} days of history for ${actors} actors and loading it into ClickHouse (chatwarden load)"
	hist=.stack/demo/history.jsonl
	hist_start=$(date -u -d "-${hist_days} days" +%Y-%m-%dT%H:%M:00Z)
	"$cw" simulate -actors "$actors" -start "$hist_start" -days "$hist_days" -attacks none -out-events "$hist"
	"$cw" load -config "$cfg" -events "$hist"
fi

say "creating Kafka topics"
bash scripts/stack.sh topic "$prefix.access.v1" 4
bash scripts/stack.sh topic "$prefix.consent.v1" 2
bash scripts/stack.sh topic "$prefix.deadletter.v1" 2

serve_log=.stack/demo/serve.log
sim_log=.stack/demo/simulate.log
pids=()
cleanup() {
	trap - INT TERM EXIT
	say "stopping (serve flushes and commits before it exits)"
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	"$cw" status -config "$cfg" 2>/dev/null || true
	echo
	echo "the stack keeps running: 'make stack-down' stops it; logs: $serve_log $sim_log"
}
trap cleanup INT TERM EXIT

say "starting chatwarden serve on http://$addr (log: $serve_log); it back-fills the baselines from the history"
"$cw" serve -config "$cfg" -addr "$addr" > "$serve_log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do
	curl -fsS "http://$addr/healthz" > /dev/null 2>&1 && break
	kill -0 "${pids[0]}" 2>/dev/null || { cat "$serve_log"; exit 1; }
	sleep 0.5
done
curl -fsS "http://$addr/healthz" > /dev/null || { echo "serve did not become healthy"; cat "$serve_log"; exit 1; }

say "waiting for serve to learn every actor's baseline from the history (the start-up back-fill)"
waited=0
until grep -q 'detection baselines ready' "$serve_log"; do
	kill -0 "${pids[0]}" 2>/dev/null || { cat "$serve_log"; exit 1; }
	if [ "$waited" -ge 900 ]; then echo "serve did not finish its back-fill in 15 minutes; see $serve_log"; exit 1; fi
	sleep 1
	waited=$((waited + 1))
done
grep 'detection baselines ready' "$serve_log" | sed -E 's/.*actors=([0-9]+) from=([^ ]+) to=([^ ]+).*/baselines of \1 actors learned from \2 to \3/'
echo "(${waited}s)"

say "streaming simulated traffic with attacks through Kafka (log: $sim_log)"
# The platform of the history, 10 simulated seconds per second: an attack
# about every 6 s of wall time after a 6 s warm-up (detection follows event
# time: detect.clock: events).
"$cw" simulate -kafka "$CHATWARDEN_KAFKA_BROKERS" -access-topic "$prefix.access.v1" -consent-topic "$prefix.consent.v1" \
	-realtime -speedup 10 -actors "$actors" -warmup 1m -attack-every 1m -out-labels .stack/demo/labels.jsonl > "$sim_log" 2>&1 &
pids+=($!)

say "sending 3 malformed events, to show the dead-letter path"
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cat > .stack/demo/bad.jsonl <<JSON
{"event_id":"demo-bad-1","ts":"$now","actor":{"id":"demo","type":"robot"},"action":"read","store":"crm","resource":{"type":"customer_profile"}}
{"event_id":"demo-bad-2","ts":"$now","actor":{"id":"demo","type":"human"},"action":"read","resource":{"type":"customer_profile"}}
{"event_id":"demo-bad-3","ts":"yesterday","actor":{"id":"demo","type":"human"},"action":"read","store":"crm","resource":{"type":"customer_profile"}}
JSON
"$cw" produce -config "$cfg" -quiet -file .stack/demo/bad.jsonl

cat <<TXT

Where to look:
  http://$addr/            web UI (alerts, investigate, weekly report): user demo, password $(cat "$pwfile")
  http://$addr/metrics     Prometheus metrics (chatwarden_ingest_*, chatwarden_detect_*, chatwarden_alert_*)
  http://$addr/healthz     health
  $cw status -config $cfg    events stored, dead letters by reason, consumer lag
  $cw history -actor ID    who touched what (audited)
  attack labels the simulator injected: .stack/demo/labels.jsonl
TXT

rules='^(bulk_access|bot_cross_customer|conversation_subjects|consent_withdrawn|purpose_category|vendor_scope|vendor_no_contract)='
start=$(date +%s)
limit="${DEMO_SECONDS:-0}"
while :; do
	sleep 10
	elapsed=$(( $(date +%s) - start ))
	say "after ${elapsed}s"
	"$cw" status -config "$cfg" 2>/dev/null | grep -E '^(events|last event|dead letters|vendors|group)' || true
	if [ -s .stack/demo/labels.jsonl ]; then
		echo "attacks injected so far ($(wc -l < .stack/demo/labels.jsonl)):"
		sed -E 's/.*"kind":"([^"]*)".*"actor_id":"([^"]*)".*/    \1 by \2/' .stack/demo/labels.jsonl | tail -5
	fi
	alerts=$(grep 'msg="alert' "$serve_log" | grep ' detector=' || true)
	echo "alerts raised so far ($(printf '%s' "$alerts" | grep -c . || true)), by detector:"
	counts=$(printf '%s\n' "$alerts" | sed -nE 's/.* detector=([^ ]+).*/\1/p' | sort | uniq -c | awk '{print $2"="$1}')
	echo "    window detectors: $(printf '%s\n' "$counts" | grep -vE "$rules" | grep . | tr '\n' ' ' || true)"
	echo "    event rules:      $(printf '%s\n' "$counts" | grep -E "$rules" | tr '\n' ' ' || true)"
	printf '%s\n' "$alerts" | grep . | sed -E 's/.*detector=([^ ]+).*actor=([^ ]+) severity=([^ ]+).*summary="([^"]*)".*/    [\3] \1 \2: \4/' | tail -5 || true
	for p in "${pids[@]}"; do
		kill -0 "$p" 2>/dev/null || { echo "a demo process exited; see $serve_log and $sim_log"; exit 1; }
	done
	if [ "$limit" -gt 0 ] && [ "$elapsed" -ge "$limit" ]; then
		break
	fi
done
