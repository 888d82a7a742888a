package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/detect/eval"
	"github.com/chatwarden/chatwarden/internal/storetest"
)

// evalScenario writes a small scenario: three support agents and a
// marketing user over three hours, with a bulk export by a1 and a
// marketing read of a customer who withdrew consent; labels for both plus
// one attack the scenario never performs (it must be missed).
func evalScenario(t *testing.T, dir string) (events, labels string) {
	t.Helper()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var b strings.Builder
	n := 0
	line := func(ts time.Time, actor, typ, action string, records int, purpose, subject string, fields ...string) {
		n++
		f, _ := json.Marshal(fields)
		fmt.Fprintf(&b, `{"event_id":"t-%d","ts":%q,"tenant":"default","actor":{"id":%q,"type":%q,"role":"support"},"action":%q,"store":"crm","resource":{"type":"customer_profile","id":"r-%d"},"subject_id":%q,"records":%d,"fields":%s,"purpose":%q,"result":"allowed","client":{"country":"US"}}`+"\n",
			n, ts.Format(time.RFC3339), actor, typ, action, n, subject, records, f, purpose)
	}
	fmt.Fprintf(&b, `{"schema":"consent.v1","event_id":"c-1","ts":%q,"tenant":"default","subject_id":"cust-9","purpose":"marketing","granted":false}`+"\n",
		start.Format(time.RFC3339))
	for m := 0; m < 180; m++ {
		ts := start.Add(time.Duration(m)*time.Minute + 10*time.Second)
		for i, a := range []string{"a1", "a2", "a3"} {
			line(ts.Add(time.Duration(i)*time.Second), a, "human", "read", 1, "support", fmt.Sprintf("cust-%d", m%40), "name", "email")
		}
		switch m {
		case 100:
			line(ts.Add(5*time.Second), "a1", "human", "export", 4000, "support", "", "name", "email")
		case 120:
			line(ts.Add(5*time.Second), "m1", "human", "read", 1, "marketing", "cust-9", "email")
		}
	}
	events = filepath.Join(dir, "events.jsonl")
	labels = filepath.Join(dir, "labels.jsonl")
	lab := func(id, kind, actor string, from, to int) string {
		return fmt.Sprintf(`{"id":%q,"kind":%q,"tenant":"default","actor_id":%q,"start":%q,"end":%q}`+"\n", id, kind, actor,
			start.Add(time.Duration(from)*time.Minute).Format(time.RFC3339), start.Add(time.Duration(to)*time.Minute).Format(time.RFC3339))
	}
	ls := lab("atk-1", "bulk_export", "a1", 100, 105) + lab("atk-2", "consent_violation", "m1", 120, 125) +
		lab("atk-3", "volume_spike", "a3", 150, 160)
	if err := os.WriteFile(events, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(labels, []byte(ls), 0o644); err != nil {
		t.Fatal(err)
	}
	return events, labels
}

func TestEvalSummaryAgreesWithAlerts(t *testing.T) {
	t.Setenv("CHATWARDEN_CLICKHOUSE_ADDR", storetest.Addr())
	dir := t.TempDir()
	events, labels := evalScenario(t, dir)
	alertsPath := filepath.Join(dir, "alerts.jsonl")
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"eval", "-events", events, "-labels", labels, "-alerts-out", alertsPath, "-format", "json"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("eval exited %d: %s", code, stderr.String())
	}
	var sum eval.Summary
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatalf("summary is not JSON: %v\n%s", err, stdout.String())
	}
	f, err := os.Open(alertsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var alerts []eval.Alert
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var a eval.Alert
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatalf("alert line %q: %v", sc.Text(), err)
		}
		alerts = append(alerts, a)
	}
	if sum.Alerts != len(alerts) {
		t.Errorf("summary counts %d alerts, the file holds %d", sum.Alerts, len(alerts))
	}
	if sum.Events != 180*3+2 || sum.Consents != 1 || sum.Rejected != 0 {
		t.Errorf("replayed %d events, %d consents, %d rejected; want 542, 1, 0", sum.Events, sum.Consents, sum.Rejected)
	}
	// Recompute detection from the alerts file alone.
	detected := func(actor string, from, to time.Time) bool {
		for _, a := range alerts {
			if a.ActorID == actor && !a.TS.Before(from) && !a.TS.After(to.Add(eval.Grace)) {
				return true
			}
		}
		return false
	}
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	m := func(n int) time.Time { return start.Add(time.Duration(n) * time.Minute) }
	want := map[string]bool{
		"bulk_export":       detected("a1", m(100), m(105)),
		"consent_violation": detected("m1", m(120), m(125)),
		"volume_spike":      detected("a3", m(150), m(160)),
	}
	if !want["bulk_export"] || !want["consent_violation"] || want["volume_spike"] {
		t.Errorf("alerts file: detected %v; want the bulk export and the consent violation only", want)
	}
	for kind, det := range want {
		ks := sum.ByKind[kind]
		if ks == nil || (ks.Detected == 1) != det || ks.Labels != 1 {
			t.Errorf("summary for %s = %+v, alerts file says detected=%v", kind, ks, det)
		}
	}
	if got, wantR := sum.Recall, 2.0/3; got != wantR {
		t.Errorf("recall %g, want %g", got, wantR)
	}
	// True and false alerts recomputed from the file.
	trueN, falses := 0, map[string]bool{}
	for _, a := range alerts {
		switch {
		case a.ActorID == "a1" && detected("a1", m(100), m(105)) && !a.TS.Before(m(100)) && !a.TS.After(m(105).Add(eval.Grace)),
			a.ActorID == "m1" && !a.TS.Before(m(120)) && !a.TS.After(m(125).Add(eval.Grace)),
			a.ActorID == "a3" && !a.TS.Before(m(150)) && !a.TS.After(m(160).Add(eval.Grace)):
			trueN++
		default:
			falses[fmt.Sprintf("%s/%s/%d", a.ActorID, a.Detector, a.TS.Unix()/3600)] = true
		}
	}
	if trueN != sum.TrueAlerts || len(falses) != sum.FalseAlerts {
		t.Errorf("summary says %d true and %d false alerts; the file gives %d and %d", sum.TrueAlerts, sum.FalseAlerts, trueN, len(falses))
	}
	if sum.Alerts > 0 && sum.Precision != float64(sum.TrueAlerts)/float64(sum.Alerts) {
		t.Errorf("precision %g inconsistent with %d true of %d alerts", sum.Precision, sum.TrueAlerts, sum.Alerts)
	}
	if sum.TTDMedianS > 60 {
		t.Errorf("event rules should detect within seconds; median time to detect %gs", sum.TTDMedianS)
	}
	if !strings.Contains(stderr.String(), "eval: replaying") {
		t.Errorf("no progress on stderr: %q", stderr.String())
	}
}

// TestEvalExitsNonZeroOnRejections: eval fails when more than 0.1% of the
// lines are rejected (the scores would not describe the file), printing the
// rejected lines by reason code; -max-rejected raises the limit, and
// exactly 0.1% passes.
func TestEvalExitsNonZeroOnRejections(t *testing.T) {
	t.Setenv("CHATWARDEN_CLICKHOUSE_ADDR", storetest.Addr())
	dir := t.TempDir()
	events, labels := evalScenario(t, dir) // 542 valid lines
	good, err := os.ReadFile(events)
	if err != nil {
		t.Fatal(err)
	}
	// 458 more valid lines: 1,000 with the scenario's.
	var more strings.Builder
	ts := time.Date(2026, 3, 2, 13, 0, 0, 0, time.UTC)
	for i := range 458 {
		fmt.Fprintf(&more, `{"event_id":"x-%d","ts":%q,"actor":{"id":"a4","type":"human","role":"support"},"action":"read","store":"crm","resource":{"type":"customer_profile"}}`+"\n",
			i, ts.Add(time.Duration(i)*time.Second).Format(time.RFC3339))
	}
	bad := `{"event_id":"bad-1","ts":"2026-03-02T10:00:00Z","actor":{"id":"x","type":"robot"},"action":"read","store":"crm","resource":{"type":"customer_profile"}}` + "\n"
	write := func(name string, nBad int) string {
		p := filepath.Join(dir, name)
		body := string(good) + more.String()
		if nBad == 1 {
			body = string(good) + more.String()[strings.Index(more.String(), "\n")+1:] + bad // 999 good + 1 bad
		} else {
			body += strings.Repeat(bad, nBad) // 1,000 good + nBad bad
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name     string
		bad      int
		args     []string
		wantCode int
	}{
		{"one in a thousand passes", 1, nil, 0},
		{"two in 1002 fail", 2, nil, 1},
		{"a raised limit passes", 2, []string{"-max-rejected", "0.01"}, 0},
		{"a lowered limit fails", 1, []string{"-max-rejected", "0"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := write(strings.ReplaceAll(tc.name, " ", "_")+".jsonl", tc.bad)
			var stdout, stderr bytes.Buffer
			args := append([]string{"eval", "-events", path, "-labels", labels}, tc.args...)
			code := run(t.Context(), args, &stdout, &stderr)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), fmt.Sprintf("rejected %d", tc.bad)) || !strings.Contains(stdout.String(), fmt.Sprintf("bad_enum=%d", tc.bad)) {
				t.Errorf("stdout does not count %d rejected lines by reason:\n%s", tc.bad, stdout.String())
			}
			if !strings.Contains(stdout.String(), `bad_enum: field "actor.type"`) {
				t.Errorf("stdout does not show the rejected line's reason and field:\n%s", stdout.String())
			}
			if tc.wantCode != 0 && !strings.Contains(stderr.String(), "-max-rejected") {
				t.Errorf("the failure does not name -max-rejected:\n%s", stderr.String())
			}
		})
	}
}

// TestEvalAnyWindow: `eval --window` accepts every window from 10s to 1h
// with the default settings (30m used to be refused: enum_every 10m was not
// a whole number of windows) and replays the scenario through the whole
// engine; the event rules find the same attacks at every window.
func TestEvalAnyWindow(t *testing.T) {
	t.Setenv("CHATWARDEN_CLICKHOUSE_ADDR", storetest.Addr())
	dir := t.TempDir()
	events, labels := evalScenario(t, dir)
	for _, w := range []string{"10s", "15s", "30s", "1m", "2m", "5m", "10m", "15m", "20m", "30m", "1h"} {
		t.Run(w, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), []string{"eval", "--events", events, "--labels", labels, "--window", w, "--json"}, &stdout, &stderr)
			if code != 0 {
				t.Fatalf("eval --window %s exited %d: %s", w, code, stderr.String())
			}
			var sum eval.Summary
			if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
				t.Fatalf("summary is not JSON: %v\n%s", err, stdout.String())
			}
			want, _ := time.ParseDuration(w)
			if sum.WindowS != want.Seconds() || sum.Events != 542 || sum.Rejected != 0 {
				t.Errorf("window %gs, %d events, %d rejected; want %gs, 542, 0", sum.WindowS, sum.Events, sum.Rejected, want.Seconds())
			}
			for _, k := range []string{"bulk_export", "consent_violation"} {
				if ks := sum.ByKind[k]; ks == nil || ks.Detected != 1 {
					t.Errorf("%s not detected with window %s: %+v", k, w, ks)
				}
			}
		})
	}
}
