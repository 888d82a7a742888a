package main

import (
	"regexp"
	"strings"
	"testing"
)

// configFieldOrPosition matches an error line that names where the problem
// is: a parse position ("line 3", "line 3 column 7") or a configuration
// field ("ingest.batch_size: ...", "alert.routes[0].channel ...").
var configFieldOrPosition = regexp.MustCompile(`line \d+|(^|[\s"'(])[a-z][a-z0-9_]*(\[\d+\])?(\.[a-z0-9_]+(\[\d+\])?)+(:|\s|$)`)

// checkConfigError fails when err does not say where the problem is. A
// YAML error names its line (yaml.v3's type errors list one "line N:" entry
// each, and a quoted value may span lines); validation errors, joined one
// per line, each name their field.
func checkConfigError(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "yaml: unmarshal errors:\n"):
		if !regexp.MustCompile(`^yaml: unmarshal errors:\n  line \d+: `).MatchString(msg) {
			t.Fatalf("config type error without a line: %v", err)
		}
	case msg == "yaml: document contains excessive aliasing": // about the whole document
	case strings.HasPrefix(msg, "yaml: "):
		if !regexp.MustCompile(`^yaml: line \d+`).MatchString(msg) {
			t.Fatalf("config syntax error without a line: %v", err)
		}
	default:
		for line := range strings.SplitSeq(msg, "\n") {
			if !configFieldOrPosition.MatchString(line) {
				t.Fatalf("config error line %q names no field (whole error: %v)", line, err)
			}
		}
	}
}

// FuzzConfig feeds arbitrary bytes to the strict config decoder and the
// validation: it must never panic, and a rejection must say where (a line or
// the field's dotted name). Seeds: the f.Add calls and
// testdata/fuzz/FuzzConfig (one per section and typical mistakes).
func FuzzConfig(f *testing.F) {
	for _, s := range configSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Config
		err := decodeStrict(b, &c)
		if err == nil {
			err = c.Validate()
		}
		if err != nil {
			checkConfigError(t, err)
		}
	})
}

var configSeeds = []string{
	"",
	"clickhouse:\n  addr: 127.0.0.1:9000\n  database: chatwarden\npseudonym:\n  key_file: /etc/chatwarden/pseudonym.key\ningest:\n  brokers: [127.0.0.1:9092]\n  batch_size: 20000\n  linger: 200ms\n  retention: 2160h\nserve:\n  addr: 127.0.0.1:8080\n",
	"clickhouse:\n  adr: x\n",
	"ingest:\n  batch_size: many\n",
	"ingest:\n  linger: -5s\n",
	"serve:\n  addr: nohostport\n",
	"log:\n  level: loud\n",
	"pseudonym:\n  key_id: \"12\"\n  old_keys:\n    - id: \"\"\n",
	"a: 1\n---\nb: 2\n",
	"clickhouse: [1, 2]\n",
	"x: &a [*a, *a]\n",
	"a: &a [\"lol\",\"lol\",\"lol\",\"lol\"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n",
	"clickhouse:\n\taddr: x\n",
	"clickhouse:\n  addr: \"\x00\"\n",
	"\xff\xfe",
	"{clickhouse: {addr: 1}}",
	"alert:\n  routes:\n    - channel: \"\"\n",
	"dashboards:\n  users:\n    - name: a\n      role: god\n",
	"detect:\n  window: 0s\n",
	"!!binary AAAA",
	"clickhouse: !!int 3\n",
	"? [a]\n: b\n",
}

// TestConfigErrorsNameTheirPlace runs typical mistakes through the same
// check as the fuzz target, so a message without a field or position fails
// here and not only under -fuzz.
func TestConfigErrorsNameTheirPlace(t *testing.T) {
	bad := []string{
		"clickhouse:\n  adr: x\n",
		"ingest:\n  batch_size: many\n",
		"serve:\n  addr: nohostport\n",
		"log:\n  level: loud\n",
		"a: 1\n---\nb: 2\n",
		"log:\n  level: info\n---\nlog: {}\n",
		"clickhouse:\n\taddr: x\n",
		"\"",
		"[",
		"log: {level: [}",
		"clickhouse:\n  addr: \"a\x01b\"\n",
		"clickhouse:\n  addr: a\xffb\n",
		"a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n",
	}
	for _, s := range bad {
		t.Run(strings.ReplaceAll(s, "\n", "|"), func(t *testing.T) {
			var c Config
			err := decodeStrict([]byte(s), &c)
			if err == nil {
				err = c.Validate()
			}
			if err == nil {
				t.Fatal("accepted")
			}
			checkConfigError(t, err)
		})
	}
}
