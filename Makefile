.PHONY: stack stack-down stack-status test

# Local stack (Kafka 4.1.x KRaft + ClickHouse on 127.0.0.1, data under .stack/): see scripts/stack.sh
stack:
	bash scripts/stack.sh up

stack-down:
	bash scripts/stack.sh down

stack-status:
	bash scripts/stack.sh status

# The whole suite against the real servers (start them with `make stack`;
# .ci/run does), then the SQL conformance check: every migration and every
# distinct query the suite just ran on ClickHouse 18.16 is replayed on
# ClickHouse 26.x (embedded libchdb.so).
STACK_ENV = eval "$$(bash scripts/stack.sh env)"
test:
	@since=$$(date +%s); $(STACK_ENV); set -e; \
	go vet ./... ; \
	go vet -tags conformance ./store/modern ; \
	go test -count=1 -timeout 20m ./... ; \
	CHATWARDEN_CONFORMANCE_SINCE=$$since go test -count=1 -tags conformance -v ./store/modern

# Investigation query benchmark: loads 10M synthetic events into a scratch
# database (bench_query), then prints p95 of actor history and data-subject
# report and the weekly report's time; last line history_p95_ms=.. dsar_p95_ms=.. weekly_ms=..
bench-query:
	go run ./dashboards/benchquery
