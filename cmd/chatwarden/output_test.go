package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
)

func TestFormatFlag(t *testing.T) {
	for _, tc := range []struct {
		name, want, note, err string
		args                  []string
	}{
		{name: "default", args: nil, want: "text"},
		{name: "json", args: []string{"-format", "json"}, want: "json"},
		{name: "deprecated -json", args: []string{"-json"}, want: "json", note: "-json is deprecated"},
		{name: "old value name", args: []string{"-format", "table"}, want: "text", note: "-format table is deprecated"},
		{name: "unknown", args: []string{"-format", "xml"}, err: `-format "xml": want text, csv, json`},
		{name: "both", args: []string{"-json", "-format", "csv"}, err: "-json and -format csv: give one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			f := addFormatFlag(fs, "text", "csv", "json").withJSONAlias(fs).withAlias("table", "text")
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			got, err := f.get(&stderr)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want || !strings.Contains(stderr.String(), tc.note) {
				t.Fatalf("%q %v (stderr %q), want %q and a note %q", got, err, stderr.String(), tc.want, tc.note)
			}
		})
	}
}

// TestOneOutputFlag: every command that prints a result takes -format;
// where -json remains it is marked deprecated.
func TestOneOutputFlag(t *testing.T) {
	for _, args := range [][]string{{"status"}, {"eval"}, {"history"}, {"dsar"}, {"report", "weekly"}, {"audit", "verify"}} {
		var stderr bytes.Buffer
		code := run(t.Context(), append(args, "-h"), io.Discard, &stderr)
		help := stderr.String()
		if code != 2 || !strings.Contains(help, "-format") {
			t.Errorf("%v -h (exit %d) has no -format:\n%s", args, code, help)
		}
		if strings.Contains(help, "  -json\n") && !strings.Contains(help, "deprecated: use -format json") {
			t.Errorf("%v: -json is not marked deprecated:\n%s", args, help)
		}
	}
}

// TestOneDashStyle: the README, the docs and the Makefile write chatwarden's
// flags with one dash, as its help and errors do.
func TestOneDashStyle(t *testing.T) {
	files, _ := filepath.Glob("../../docs/*.md")
	files = append(files, "../../README.md", "../../Makefile")
	cmdLine := regexp.MustCompile(`chatwarden (\w[\w-]*)[^|\x60]*?(?:^|\s|\[)--([a-z][a-z-]*)`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if m := cmdLine.FindStringSubmatch(line); m != nil && m[2] != "help" {
				t.Errorf("%s:%d: chatwarden %s ... --%s: write -%s", f, i+1, m[1], m[2], m[2])
			}
		}
	}
}

// TestStatusWatch: status -watch refreshes until interrupted, then exits 0;
// not on a terminal, each refresh is a dated block (no screen clearing).
func TestStatusWatch(t *testing.T) {
	t.Parallel()
	s := storetest.New(t) // a database of its own; addresses from the stack's env
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	yaml := "clickhouse:\n  database: " + s.Database() + "\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	// Interrupted once two refreshes are out (not after a fixed 2.5 s: one
	// status under heavy load can take longer than the 1 s interval).
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr syncBuffer
	exit := make(chan int, 1)
	go func() { exit <- run(ctx, []string{"status", "-config", cfg, "-watch", "1s"}, &stdout, &stderr) }()
	var code int
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if strings.Count(stdout.String(), "chatwarden status at ") >= 2 {
			cancel()
			code = <-exit
			break
		}
		select {
		case code = <-exit:
			t.Fatalf("status -watch exited (%d) before its second refresh:\n%s\n%s", code, stdout.String(), stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no second refresh after 3 minutes:\n%s", stdout.String())
		}
	}
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	out := stdout.String()
	if n := strings.Count(out, "chatwarden status at "); n < 2 || strings.Contains(out, "\033") {
		t.Errorf("%d refreshes (want at least 2, no escape codes):\n%s", n, out)
	}
	if !strings.Contains(out, "clickhouse   ") || !strings.Contains(out, "kafka        reachable") {
		t.Errorf("no status in:\n%s", out)
	}
}
