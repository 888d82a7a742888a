.PHONY: stack stack-down stack-status test

# Local stack (Kafka 4.1.x KRaft + ClickHouse on 127.0.0.1, data under .stack/): see scripts/stack.sh
stack:
	bash scripts/stack.sh up

stack-down:
	bash scripts/stack.sh down

stack-status:
	bash scripts/stack.sh status

# Placeholder; owners of the test suite will expand it.
test:
	go test ./...
