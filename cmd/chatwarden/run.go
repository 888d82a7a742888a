package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// env is what every subcommand gets: its output streams and a logger.
type env struct {
	stdout, stderr io.Writer
	log            *slog.Logger
	// logTo, when set (by run), is where the logger writes: loading the
	// configuration rebuilds the logger there with log.level and
	// log.format. A test that passes its own logger leaves it nil.
	logTo io.Writer
}

// loadConfig loads the configuration file and applies its log section
// (level, format; CHATWARDEN_LOG_LEVEL wins over the file) to e's logger.
func (e *env) loadConfig(path string) (Config, error) {
	c, err := loadConfig(path)
	if err == nil && e.logTo != nil {
		e.log = newLogger(e.logTo, c.Log)
	}
	return c, err
}

// newLogger builds the process logger: text (default) or JSON lines at
// the configured level (default info). The config is validated already.
func newLogger(w io.Writer, c LogConfig) *slog.Logger {
	level := slog.LevelInfo
	switch c.Level {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

// commands lists the subcommands. Each lives in its own cmd_*.go file.
func commands() map[string]command {
	return map[string]command{
		"version":   {"print the version", runVersion},
		"audit":     {"audit verify: check the audit trail's hash chains (and its Kafka copy) for dropped, edited or inserted rows", runAudit},
		"retention": {"drop partitions older than their retention now (serve does it every interval)", runRetention},
		"migrate":   {"create or upgrade the ClickHouse schema", runMigrate},
		"config":    {"config check: validate a configuration file", runConfig},
		"ingest":    {"consume access and consent events from Kafka into ClickHouse", runIngest},
		"serve":     {"run ingest and the other components with /metrics and /healthz", runServe},
		"produce":   {"send a JSONL file of events to Kafka", runProduce},
		"status":    {"show stored events, dead letters, consumer lag and server versions", runStatus},
		"eval":      {"replay a labelled scenario through a throw-away database (detection schema) and the detectors and score the alerts", runEval},
		"load":      {"store a JSONL history straight into ClickHouse (the replay path, no Kafka, no detection)", runLoad},
		"history":   {"access history of an actor or a customer (audited)", runHistory},
		"dsar":      {"data-subject access report: who accessed a customer's data (audited)", runDSAR},
		"incident":  {"incident assess -alert ID[+ID]: breach assessment of an incident (audited)", runIncident},
		"report":    {"report weekly: the weekly breach-risk summary (html, md or json)", runReport},
		"simulate":  {"generate realistic labelled chatbot-platform traffic (file or Kafka)", runSimulate},
		"token":     {"token new -name N -role R: mint an API token for the dashboards' JSON API", runToken},
	}
}

// errUsage marks an error already reported with usage text.
var errUsage = errors.New("usage")

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr, log: newLogger(stderr, LogConfig{}), logTo: stderr}
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "chatwarden: unknown command %q\n\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	if err := c.run(ctx, e, args[1:]); err != nil {
		if errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) {
			return 2
		}
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return 0 // interrupted: a clean stop
		}
		fmt.Fprintf(stderr, "chatwarden %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "usage: chatwarden <command> [flags]\n\ncommands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nrun 'chatwarden <command> -h' for the command's flags")
}

// newFlags returns a flag set that reports errors instead of exiting, with
// the common -config flag.
func newFlags(e *env, name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("chatwarden "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	cfg := fs.String("config", "", "YAML configuration file (default: built-in defaults plus CHATWARDEN_* environment)")
	return fs, cfg
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return errUsage
	}
	return nil
}

func runVersion(_ context.Context, e *env, args []string) error {
	fs, _ := newFlags(e, "version")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "chatwarden %s\n", version)
	return nil
}
