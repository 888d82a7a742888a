// Package bench holds chatwarden's benchmark and evaluation drivers, run by
// the separate chatwarden-bench command (cmd/chatwarden-bench) and the
// Makefile's bench-* and eval* targets: Ingest (Kafka to ClickHouse through
// `chatwarden ingest`, against ClickHouse's own loaders), Latency (an event
// produced to Kafka until its Slack message, through `chatwarden serve`),
// Query (the investigation queries on 10M events), EvalMatrix (every traffic
// model x shape x seed replayed through `chatwarden eval`), SimulateSeries
// and NABScore (labelled count series and their NAB score). They drive the
// chatwarden binary as a user would, on the local stack (scripts/stack.sh),
// and print their figures; the last line of each is its summary.
package bench

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/chatwarden/chatwarden/ingest"
	"github.com/chatwarden/chatwarden/store"
)

// Env is what a benchmark runs with: where it prints, its log, and the
// chatwarden binary it drives.
type Env struct {
	Stdout, Stderr io.Writer
	Log            *slog.Logger
	// Chatwarden is the path of the chatwarden binary (simulate, migrate,
	// ingest, serve and eval run as its subcommands).
	Chatwarden string
	// Environ, when not nil, is the whole environment of the chatwarden
	// processes eval-matrix starts (a test's, built from scratch); nil
	// passes this process's own.
	Environ []string
}

// environ is the environment of a chatwarden subprocess.
func (e *Env) environ() []string {
	if e.Environ != nil {
		return slices.Clone(e.Environ)
	}
	return os.Environ()
}

// flags returns a flag set for benchmark name that reports to e.Stderr.
func (e *Env) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("chatwarden-bench "+name, flag.ContinueOnError)
	fs.SetOutput(e.Stderr)
	return fs
}

// parseArgs parses args and refuses positional arguments.
func parseArgs(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return nil
}

// settings are the stack's addresses and credentials, as chatwarden reads
// them from its CHATWARDEN_* environment (scripts/stack.sh env prints them).
type settings struct {
	Ingest     ingest.Config
	ClickHouse store.Config
	Pseudonym  struct{ KeyFile string }
}

// settingsFromEnv reads the CHATWARDEN_* variables chatwarden's own
// configuration documents for the stack's addresses and credentials.
func settingsFromEnv() settings {
	var c settings
	set := func(dst *string, name string) {
		if v, ok := os.LookupEnv(name); ok && v != "" {
			*dst = v
		}
	}
	set(&c.ClickHouse.Addr, "CHATWARDEN_CLICKHOUSE_ADDR")
	set(&c.ClickHouse.Compression, "CHATWARDEN_CLICKHOUSE_COMPRESSION")
	set(&c.ClickHouse.Database, "CHATWARDEN_CLICKHOUSE_DATABASE")
	set(&c.ClickHouse.User, "CHATWARDEN_CLICKHOUSE_USER")
	set(&c.ClickHouse.Password, "CHATWARDEN_CLICKHOUSE_PASSWORD")
	set(&c.Ingest.SASLPassword, "CHATWARDEN_KAFKA_SASL_PASSWORD")
	set(&c.Pseudonym.KeyFile, "CHATWARDEN_PSEUDONYM_KEY_FILE")
	if v := os.Getenv("CHATWARDEN_KAFKA_BROKERS"); v != "" {
		c.Ingest.Brokers = strings.Split(v, ",")
	}
	return c
}
