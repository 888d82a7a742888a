# Go 1.26.11: 1.26.8 (the machine's) has standard-library vulnerabilities that
# govulncheck reports; the go command fetches 1.26.11 from the module proxy.
export GOTOOLCHAIN := go1.26.11

.PHONY: lint stack stack-down stack-status stack-cluster stack-cluster-down test-cluster drills-cluster test eval eval-quick eval-scenario eval-series bench-detect demo bench bench-ingest bench-cluster fuzz-short drills

# Local stack (Kafka 4.1.x KRaft + ClickHouse on 127.0.0.1, data under .stack/): see scripts/stack.sh
stack:
	bash scripts/stack.sh up

stack-down:
	bash scripts/stack.sh down

stack-status:
	bash scripts/stack.sh status

# The local ClickHouse cluster (docs/scaling.md): ZooKeeper and 4
# ClickHouse 18.16 servers, 2 shards x 2 replicas, on 127.0.0.1 ports
# 12181 and 29001-29004 (data under .stack-cluster/). Idempotent.
stack-cluster:
	bash scripts/stack.sh cluster-up

stack-cluster-down:
	bash scripts/stack.sh cluster-down

# The tests of every package whose tests query ClickHouse through
# internal/storetest (the store, the weekly report, the pages, alerting's
# state, ingest, detection) against the local cluster (started if it is not
# running): every test database is created ON CLUSTER with the cluster
# schema (clickhouse.cluster), so each query those tests run goes through
# the Distributed and replicated tables. Not ./cmd/...: its tests start
# chatwarden with configurations that name no cluster (docs/scaling.md).
CLUSTER_TEST_PKGS ?= ./store/ ./report/... ./dashboards/... ./alert/... ./ingest/... ./detect/...
test-cluster:
	@bash scripts/stack.sh cluster-up
	@eval "$$(bash scripts/stack.sh cluster-env)"; set -e; \
	CHATWARDEN_CLICKHOUSE_ADDR=$$CHATWARDEN_CLUSTER_ADDR CHATWARDEN_TEST_CLUSTER=$$CHATWARDEN_CLUSTER_NAME \
		go test -count=1 -timeout 30m $(CLUSTER_TEST_PKGS)

# The whole suite against the real servers, then the SQL conformance check:
# every migration and every distinct query the suite just ran on ClickHouse
# 18.16 is replayed on ClickHouse 26.x (embedded libchdb.so). `make test`
# alone works on a fresh machine: it installs what the tests need
# (scripts/deps.sh: chromium, poppler-utils) and starts the local stack if it is not
# running (scripts/stack.sh up is idempotent; it leaves a running stack as it
# is). `make stack-down` stops the stack afterwards.
STACK_ENV = eval "$$(bash scripts/stack.sh env)"
test:
	@bash scripts/deps.sh
	@bash scripts/stack.sh up
	@since=$$(date +%s); $(STACK_ENV); set -e; \
	go vet ./... ; \
	go vet -tags conformance ./store/modern ; \
	go test -count=1 -timeout 20m ./... ; \
	(cd deploy/prometheus && go vet ./... && go test -count=1 ./...) ; \
	CHATWARDEN_CONFORMANCE_SINCE=$$since go test -count=1 -tags conformance -v ./store/modern

# golangci-lint (pinned, installed once per machine by scripts/lint.sh)
# with .golangci.yml: errorlint, depguard (the layering), forbidigo
# (time.Now in detect and alert), gocognit (> 50). CI runs it.
lint:
	bash scripts/lint.sh

# Investigation query benchmark: loads 10M synthetic events into a scratch
# database (bench_query), then prints p95 of actor history and data-subject
# report and the weekly report's time; last line history_p95_ms=.. dsar_p95_ms=.. weekly_ms=..
# (the line before: load rate and bytes on disk per event). BENCH_EVENTS=n
# loads n events instead (check df first: see the bytes per event).
bench-query:
	go run ./cmd/chatwarden-bench query $${BENCH_EVENTS:+-events $$BENCH_EVENTS}

# Detection quality, as a matrix: two independently written traffic models
# (office: package sim; rota: package sim/rota) x six traffic shapes that
# differ in structure (low volume, high volume, three tenants in three time
# zones, no vendors, sparse weekly actors, cold start) x 5 seeds; every cell
# is generated, replayed by `chatwarden eval` (chatwarden-bench eval-matrix
# drives it) through a fresh ClickHouse database and the whole detection
# engine on a simulated clock, and scored on its own. Prints one
# row per cell, worst first, with ok/FAIL per target: recall >= 0.95, <= 1
# false alert per 1,000 actor-days, median time to detect <= 2 windows, no
# rejected line; exits non-zero when a cell misses one. About 20-30 minutes
# on 2 cores (files under .eval/matrix, JSON in .eval/matrix.json).
# EVAL_SEEDS, EVAL_SHAPES, EVAL_MODELS narrow it.
EVAL_SEEDS ?= 5
EVAL_SHAPES ?= all
EVAL_MODELS ?= office,rota
eval:
	@$(STACK_ENV); set -e; mkdir -p .bench .eval; \
	go build -o .bench/chatwarden ./cmd/chatwarden; go build -o .bench/chatwarden-bench ./cmd/chatwarden-bench; \
	.bench/chatwarden-bench eval-matrix -seeds $(EVAL_SEEDS) -shapes $(EVAL_SHAPES) -models $(EVAL_MODELS) \
		-work .eval/matrix -json .eval/matrix.json

# The matrix with one seed per (model, shape): 12 cells, about 5 minutes.
eval-quick:
	@$(MAKE) --no-print-directory eval EVAL_SEEDS=1

# One scenario, the office model's 14 days of 120 actors with every attack
# and hard negative and the payload PII windows (scored by their dead
# letters), with its replay speed (issue 12's target: >= 100,000 events/s; docs/scaling.md
# has the figures).
eval-scenario:
	@$(STACK_ENV); set -e; mkdir -p .bench .eval; \
	go build -o .bench/chatwarden ./cmd/chatwarden; \
	.bench/chatwarden simulate -days 14 -actors 120 -attacks all -hard-negatives -payload-pii \
		-out-events .eval/events.jsonl -out-labels .eval/labels.jsonl -out-negatives .eval/negatives.jsonl \
		-out-config .eval/config.yaml; \
	.bench/chatwarden eval -config .eval/config.yaml -events .eval/events.jsonl -labels .eval/labels.jsonl \
		-negatives .eval/negatives.jsonl -alerts-out .eval/alerts.jsonl

# Count series: generate labelled seasonal count series (daily and weekly
# cycles, trend, Poisson or overdispersed noise; spikes, dips, level shifts
# up and down, drifts) with 5-minute points (6 series x 60 days) and
# 30-minute points (6 series x 120 days), replay each set through
# `chatwarden eval` (real store and engine, -window = the point spacing,
# shipped defaults) and score the alerts with NAB's standard profile.
# SERIES_SEED picks the set (default 11: not one of the tuning seeds 1-3,
# see docs/detectors.md). Last line nab_standard=<0..100>.
SERIES_SEED ?= 11
eval-series:
	@$(STACK_ENV); set -e; mkdir -p .bench .eval-series; \
	go build -o .bench/chatwarden ./cmd/chatwarden; go build -o .bench/chatwarden-bench ./cmd/chatwarden-bench; \
	for step in 5m 30m; do \
		days=60; [ $$step = 30m ] && days=120; \
		.bench/chatwarden-bench simulate-series -seed $(SERIES_SEED) -step $$step -count 6 -days $$days \
			-out-events .eval-series/events-$$step.jsonl -out-labels .eval-series/labels-$$step.jsonl \
			-out-series .eval-series/series-$$step.json; \
		cfg=""; [ $$step = 30m ] && cfg="-config detect/eval/testdata/series-30m.yaml"; \
		.bench/chatwarden eval $$cfg -window $$step -events .eval-series/events-$$step.jsonl \
			-labels .eval-series/labels-$$step.jsonl -alerts-out .eval-series/alerts-$$step.jsonl \
			> .eval-series/eval-$$step.txt; \
		cat .eval-series/eval-$$step.txt; \
	done; \
	.bench/chatwarden-bench nab-score -series .eval-series/series-5m.json,.eval-series/series-30m.json \
		-alerts .eval-series/alerts-5m.jsonl,.eval-series/alerts-30m.jsonl

# One detection cycle over 100,000 active actors (aggregates generated in
# memory): wall and CPU time per cycle, heap in use (heap-MB) and after a
# collection (live-MB). Targets: <= 2 s, <= 250 MB. BENCH_ACTORS=1000000:
# <= 5 s, <= 2.5 GB (the set-up of a million actors takes minutes, hence
# the timeout).
bench-detect:
	go test -run '^$$' -bench BenchmarkDetectCycle -benchtime 3x -timeout 30m ./detect/

# End-to-end alert latency through the real serve components in-process
# (ingest, event rules, window detectors, alerting) on the local stack, a
# scratch database and topics, Slack on slack-go's slacktest: an event
# produced to Kafka until its Slack message arrives, p50/p95 for an event
# rule (bot_cross_customer) and a window detector (volume spike after a
# warmed baseline, default 60 s window), the latter twice: with streaming
# detection (serve's default: judged on the open window) and, after a
# restart of serve with detect.stream_every: -1s, the window detectors
# alone (about 12 minutes). Targets: p95 <= 5 s, <= 10 s streaming and
# <= one window + 10 s alone. Last line
# event_rule_p95_ms=.. window_p95_ms=.. window_stream_p95_ms=..
bench-latency:
	@$(STACK_ENV); set -e; mkdir -p .bench; \
	go build -o .bench/chatwarden ./cmd/chatwarden; go build -o .bench/chatwarden-bench ./cmd/chatwarden-bench; \
	.bench/chatwarden-bench latency

# The demo: stack up, migrate, `chatwarden serve`, simulated traffic with
# attacks through Kafka; until Ctrl-C, or DEMO_SECONDS=n.
demo:
	bash scripts/demo.sh

# Ingest benchmark: 1M simulated events (BENCH_EVENTS=n to change) produced to
# fresh topics, consumed by `chatwarden ingest` into a fresh database, compared
# with ClickHouse's Kafka engine filling the same tables (events and a copy of
# each of its views, docs/scaling.md) or, when that cannot run,
# clickhouse-client loading the same events as JSONEachRow. Two rounds, the
# legs' order alternating, each leg on a settled server. Last line (the
# rounds' totals): ingest_eps=.. kafka_engine_eps=.. ratio=.. rss_mb=..
# round_ratios=..,.. (or ingest_eps=.. jsoneachrow_eps=.. ratio=.. rss_mb=..)
bench-ingest:
	@$(STACK_ENV); set -e; mkdir -p .bench; \
	go build -o .bench/chatwarden ./cmd/chatwarden; go build -o .bench/chatwarden-bench ./cmd/chatwarden-bench; \
	.bench/chatwarden-bench ingest -events $${BENCH_EVENTS:-1000000}

# Cluster benchmark (issue 11, docs/scaling.md): on the local 2x2 cluster
# (started if it is not running, as for make test-cluster) and, in the same
# run, on the single server: ingest with 2 chatwarden ingest processes in one
# consumer group (BENCH_INGEST_EVENTS, default 1M), then history and
# data-subject p95 over BENCH_EVENTS (default 10M) events through the
# Distributed tables and one detection cycle per detection shard (2). Last
# line cluster_ingest_eps=.. history_p95_ms=.. dsar_p95_ms=.. then the
# detection cycle, the single server's figures and the ratios.
bench-cluster:
	@bash scripts/stack.sh cluster-up
	@$(STACK_ENV); eval "$$(bash scripts/stack.sh cluster-env)"; set -e; mkdir -p .bench; \
	go build -o .bench/chatwarden ./cmd/chatwarden; go build -o .bench/chatwarden-bench ./cmd/chatwarden-bench; \
	.bench/chatwarden-bench cluster -events $${BENCH_EVENTS:-10000000} -ingest-events $${BENCH_INGEST_EVENTS:-1000000}

# Every bench-* target of this Makefile, one after the other.
bench:
	@set -e; for t in $$(grep -oE '^bench-[a-z0-9-]+:' Makefile | tr -d :); do \
		echo "== make $$t"; $(MAKE) --no-print-directory $$t; done

# Fault drills (docs/reliability.md): the real binary against a Kafka and a
# ClickHouse of their own (.stack-drills/, ports 19092/19093/19000/18123,
# ClickHouse data on a tmpfs; needs root for the mount; the shared stack is
# never touched), each injecting a fault and checking the invariants. About
# 45 minutes (drills 8 and 8b each wait out 10 minutes of lag); DRILLS=regexp picks drills, DRILL_SLACK_OUTAGE=5m the full
# Slack outage. The table goes to .stack-drills/drills.md.
drills:
	go test -count=1 -tags drills -timeout 75m -v -run "$${DRILLS:-Drill}" ./drills/

# Fault drills of the local ClickHouse cluster (drills/cluster; started by
# make stack-cluster if it is not running): a replica of each shard killed
# with SIGKILL during inserts, then restarted; ZooKeeper stopped for 30 s;
# a whole shard down for 60 s; one of two serve instances killed; the first
# replica of each shard killed under 4 shard-local detection engines.
# docs/reliability.md ("Cluster drills") has the results.
drills-cluster:
	@bash scripts/stack.sh cluster-up
	go test -count=1 -tags drills -timeout 20m -v -run "$${DRILLS:-Drill}" ./drills/cluster/

# Every Go fuzz target (func FuzzXxx in a *_test.go) for FUZZTIME each
# (default 10000x: 10,000 executions, under half a minute each), one after the
# other; CI runs this after `make test`. A count, not a duration: with a
# duration, Go 1.26's fuzz coordinator can fail a clean run with "context
# deadline exceeded" at the deadline on a busy machine (go.dev/issue/75804,
# fixed in Go 1.27). A crasher is written to the package's
# testdata/fuzz/<FuzzName>/ and fails the run. The longer run: make
# fuzz-short FUZZTIME=1000000x (docs/reliability.md, "Fuzzing").
FUZZTIME ?= 10000x
fuzz-short:
	@set -e; for f in $$(go list -f '{{range .TestGoFiles}}{{$$.Dir}}/{{.}} {{end}}{{range .XTestGoFiles}}{{$$.Dir}}/{{.}} {{end}}' ./... | \
		xargs grep -lE '^func Fuzz[A-Z]'); do \
		pkg=./$$(realpath --relative-to=. $$(dirname $$f)); \
		for t in $$(grep -oE '^func Fuzz[A-Za-z0-9_]+' $$f | cut -d' ' -f2); do \
			echo "== $$pkg $$t ($(FUZZTIME))"; \
			go test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done
