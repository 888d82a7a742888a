package eval

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/detect"
	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/store"
)

// TestReplayReadsNoUnfilledTable: chatwarden eval replays into a database
// with the detection schema (store.DetectionSchema), whose rollup tables
// of ingest's dedupe, the pages and the reports stay empty. The replay of
// a scenario with consents that raises bulk, enumeration, volume, peer,
// vendor and new-destination alerts sends no query that names one of those tables (read from the server's
// query log), and raises the same alerts, byte for byte, as on the full
// schema. Were a view that detection reads left out (actor_minute_mv,
// say), its table would be among the empty ones and the replay's reads of
// it would fail the test. (On a cluster the shard-local reads run on other
// nodes, whose query logs are not read here.)
func TestReplayReadsNoUnfilledTable(t *testing.T) {
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	var s scenario
	for i := range 30 {
		s.consent(start.Add(time.Duration(i)*time.Minute), fmt.Sprintf("cust-%d", i), "marketing", true)
	}
	s.consent(start.Add(54*time.Hour), "cust-3", "marketing", false)
	for day := range 3 {
		for m := 8 * 60; m < 18*60; m += 2 {
			at := start.Add(time.Duration(day*24*60+m) * time.Minute)
			for a := range 5 {
				purpose, records := "support", 1
				if a == 4 && m%30 == 0 {
					purpose = "marketing"
				}
				if a == 2 && day == 2 && m >= 14*60 && m < 14*60+20 {
					records = 5000 // bulk reads
				}
				s.access(at.Add(time.Duration(a)*time.Second), fmt.Sprintf("agent-%d", a), purpose, fmt.Sprintf("cust-%d", (m/2+a)%30), records)
			}
			if m%60 == 0 { // a vendor's support desk, and shares to a known destination, then to a new one
				s.n++
				s.lines = append(s.lines, fmt.Sprintf(`{"event_id":"v-%d","ts":%q,"tenant":"default","actor":{"id":"desk-1","type":"human","role":"support","vendor":"acme-bpo"},"action":"read","store":"crm","resource":{"type":"customer_profile","id":"r-%d"},"subject_id":"cust-%d","records":1,"fields":["name"],"purpose":"support","result":"allowed"}`,
					s.n, at.Add(10*time.Second).Format(time.RFC3339), s.n, m%30))
				dest := "partner.example"
				if day == 2 && m >= 15*60 {
					dest = "unknown-drop.example"
				}
				s.n++
				s.lines = append(s.lines, fmt.Sprintf(`{"event_id":"s-%d","ts":%q,"tenant":"default","actor":{"id":"agent-1","type":"human","role":"support"},"action":"share","store":"crm","resource":{"type":"customer_profile","id":"r-%d"},"subject_id":"cust-%d","records":40,"fields":["name","email"],"purpose":"support","destination":%q,"result":"allowed"}`,
					s.n, at.Add(20*time.Second).Format(time.RFC3339), s.n, m%30, dest))
			}
		}
		if day == 2 {
			for i := range 400 { // an evening burst of one agent over many customers
				s.access(start.Add(time.Duration(day*24*60+20*60)*time.Minute+time.Duration(i)*time.Second), "agent-0", "support", fmt.Sprintf("cust-x%d", i), 3)
			}
		}
	}
	run := func(sc store.Schema) (alerts string, queries []string) {
		cfg := storetest.Config(t) // queries logged
		st := storetest.OpenSchema(t, cfg, sc)
		// The log's times are whole seconds: the replay starts in a
		// second after the migration's.
		since := time.Now().Truncate(time.Second).Add(time.Second)
		time.Sleep(time.Until(since))
		var out, progress bytes.Buffer
		if _, err := Run(t.Context(), Options{Events: strings.NewReader(s.text()), Config: detect.Config{Window: 10 * time.Minute},
			Store: st, Alerts: &out, Progress: &progress, ChunkEvents: 500}); err != nil {
			t.Fatalf("replay with the %s schema: %v\nprogress:\n%s", sc, err, progress.String())
		}
		qs, err := st.QueriesSince(t.Context(), since)
		if err != nil {
			t.Fatal(err)
		}
		return out.String(), qs
	}
	full, _ := run(store.FullSchema)
	if strings.Count(full, "\n") < 3 {
		t.Fatalf("the scenario raised too little to compare:\n%s", full)
	}
	dets := map[string]int{}
	for _, m := range regexp.MustCompile(`"detector":"([a-z_]+)"`).FindAllStringSubmatch(full, -1) {
		dets[m[1]]++
	}
	names := func(tables ...string) *regexp.Regexp {
		return regexp.MustCompile(`\b(` + strings.Join(tables, "|") + `)\b`)
	}
	// The pass-through schema keeps no raw events either: the replay
	// (with no Reset to fall back on) answers every read of them itself.
	schemas := []store.Schema{store.DetectionSchema, store.PassThroughSchema}
	if cluster := storetest.Cluster() != ""; cluster {
		schemas = schemas[:1] // the pass-through schema is for one server
	} else if !PassThrough(detect.Config{Window: 10 * time.Minute}, cluster) {
		t.Fatal("the scenario's configuration is not one for the pass-through schema")
	}
	for _, sc := range schemas {
		got, queries := run(sc)
		t.Logf("%s schema: %d alerts %v; %d queries of the replay logged", sc, strings.Count(full, "\n"), dets, len(queries))
		if got != full {
			t.Errorf("alerts differ:\nfull schema:\n%s\n%s schema:\n%s", full, sc, got)
		}
		empty, err := sc.Unfilled()
		if err != nil {
			t.Fatal(err)
		}
		if len(empty) == 0 {
			t.Fatalf("the %s schema leaves no table empty", sc)
		}
		// (as a table: actor_minute has a column named events)
		reads, seen := regexp.MustCompile(`(?i)\b(?:FROM|JOIN)\s+(?:\w+\.)?(`+strings.Join(empty, "|")+`)\b`), map[string]int{}
		for _, q := range queries {
			if m := reads.FindString(q); m != "" && seen[m] < 3 {
				seen[m]++
				t.Errorf("the replay names %s, which the %s schema leaves empty:\n%s", m, sc, q)
			}
		}
		// The log holds the replay's queries: those of the tables it reads.
		for _, table := range []string{"events", "consents", "actor_minute", "shares", "findings"} {
			n := 0
			for _, q := range queries {
				if names(table).MatchString(q) {
					n++
				}
			}
			if n == 0 {
				t.Errorf("no logged query of the replay names %s: the query log was not read right", table)
			}
		}
	}
}
