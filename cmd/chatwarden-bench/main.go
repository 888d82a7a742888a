// Command chatwarden-bench runs chatwarden's benchmarks on the local stack
// (scripts/stack.sh), driving a chatwarden binary as a user would:
//
//	chatwarden-bench ingest [-events N] ...   Kafka to ClickHouse through `chatwarden ingest`
//	chatwarden-bench latency [-samples N] ... event produced to Kafka until its Slack message
//	chatwarden-bench query [-events N] ...    the investigation queries on a large data set
//	chatwarden-bench cluster [-events N] ...  ingest and queries on the local ClickHouse cluster and the single server
//	chatwarden-bench eval-matrix [-seeds N] ... every traffic model x shape x seed through `chatwarden eval`
//	chatwarden-bench simulate-series ...      labelled seasonal count series for `chatwarden eval`
//	chatwarden-bench nab-score ...            NAB's standard score of eval's alerts on those series
//
// The Makefile's bench-ingest, bench-latency, bench-query, eval, eval-quick
// and eval-series targets run it; the last line of each is its summary. The
// drivers live in internal/bench, outside the product's command package.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/chatwarden/chatwarden/internal/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

var benches = map[string]func(context.Context, *bench.Env, []string) error{
	"ingest":  bench.Ingest,
	"latency": bench.Latency,
	"query":   bench.Query,
	"cluster": bench.Cluster,
	// the detectors' evaluation tools
	"eval-matrix":     bench.EvalMatrix,
	"simulate-series": bench.SimulateSeries,
	"nab-score":       bench.NABScore,
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chatwarden-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cw := fs.String("chatwarden", "", "the chatwarden binary to drive (default: chatwarden next to this one)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: chatwarden-bench [-chatwarden PATH] ingest|latency|query|cluster|eval-matrix|simulate-series|nab-score [flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 || benches[fs.Arg(0)] == nil {
		fs.Usage()
		return 2
	}
	if *cw == "" {
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintln(stderr, "chatwarden-bench:", err)
			return 1
		}
		*cw = filepath.Join(filepath.Dir(self), "chatwarden")
	}
	e := &bench.Env{Stdout: stdout, Stderr: stderr, Log: slog.New(slog.NewTextHandler(stderr, nil)), Chatwarden: *cw}
	if err := benches[fs.Arg(0)](ctx, e, fs.Args()[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "chatwarden-bench %s: %v\n", fs.Arg(0), err)
		return 1
	}
	return 0
}
