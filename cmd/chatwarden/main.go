// Command chatwarden is the security monitor for the data that customer-service
// chatbots touch: it ingests access events from Kafka into ClickHouse, detects
// illegitimate access, alerts to Slack and serves the investigation pages.
// This package only parses flags and configuration and wires the parts.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
