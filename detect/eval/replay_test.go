package eval

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/detect"
	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/store"
)

// scenario builds JSONL lines for replay tests.
type scenario struct {
	lines []string
	n     int
}

func (s *scenario) access(ts time.Time, actor, purpose, subject string, records int) {
	s.n++
	s.lines = append(s.lines, fmt.Sprintf(`{"event_id":"e-%d","ts":%q,"tenant":"default","actor":{"id":%q,"type":"human","role":"support"},"action":"read","store":"crm","resource":{"type":"customer_profile","id":"r-%d"},"subject_id":%q,"records":%d,"fields":["name","email"],"purpose":%q,"result":"allowed","client":{"country":"US"}}`,
		s.n, ts.UTC().Format(time.RFC3339), actor, s.n, subject, records, purpose))
}

func (s *scenario) consent(ts time.Time, subject, purpose string, granted bool) {
	s.n++
	s.lines = append(s.lines, fmt.Sprintf(`{"schema":"consent.v1","event_id":"c-%d","ts":%q,"tenant":"default","subject_id":%q,"purpose":%q,"granted":%t}`,
		s.n, ts.UTC().Format(time.RFC3339), subject, purpose, granted))
}

func (s *scenario) text() string { return strings.Join(s.lines, "\n") + "\n" }

func replay(t *testing.T, events string, labels []Label, cfg detect.Config) *Summary {
	t.Helper()
	var progress bytes.Buffer
	sum, err := Run(t.Context(), Options{Events: strings.NewReader(events), Labels: labels, Config: cfg,
		Store: storetest.New(t), Progress: &progress})
	if err != nil {
		t.Fatalf("replay: %v\nprogress:\n%s", err, progress.String())
	}
	return sum
}

func assertNoRejections(t *testing.T, sum *Summary, events, consents int) {
	t.Helper()
	if sum.Rejected != 0 || len(sum.RejectedByReason) != 0 {
		t.Errorf("rejected %d lines %v, e.g. %+v; want none", sum.Rejected, sum.RejectedByReason, sum.RejectedExamples)
	}
	if sum.Events != events || sum.Consents != consents || sum.Lines != events+consents {
		t.Errorf("replayed %d events and %d consents of %d lines; want %d and %d", sum.Events, sum.Consents, sum.Lines, events, consents)
	}
}

// TestReplayLowVolumeFourteenDays: a small deployment's 14 days (20 agents,
// about 1,600 events a day), the consent register first and dated a day
// before the traffic, and a 3-day gap (an outage, a holiday) in the middle.
// Every line is within the contract, so none may be rejected. Before the
// replay judged times against the events themselves, everything more than
// 24 h after the first consent was rejected as ts_future.
func TestReplayLowVolumeFourteenDays(t *testing.T) {
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	var s scenario
	for i := range 200 {
		s.consent(start.Add(-24*time.Hour+time.Duration(i)*time.Minute), fmt.Sprintf("cust-%d", i), "marketing", i%7 != 0)
	}
	events := 0
	for day := range 14 {
		if day >= 6 && day < 9 {
			continue // the gap
		}
		for m := 8 * 60; m < 18*60; m += 6 {
			for a := range 20 {
				s.access(start.Add(time.Duration(day*24*60+m)*time.Minute+time.Duration(a)*time.Second),
					fmt.Sprintf("agent-%d", a), "support", fmt.Sprintf("cust-%d", (day*97+m+a)%500), 1)
				events++
			}
		}
	}
	sum := replay(t, s.text(), nil, detect.Config{Window: 10 * time.Minute})
	assertNoRejections(t, sum, events, 200)
	if sum.ActorDays != 20*11 {
		t.Errorf("actor-days %d, want %d", sum.ActorDays, 20*11)
	}
}

// TestReplayAnyOrderSpanningDays: 60,000 lines over three days, a chunk's
// worth spanning more than a day, in random order; a consent withdrawal
// that comes last in the file precedes, in time, a marketing read it makes
// a violation. The replay sorts by time: nothing is rejected and the
// violation is found.
func TestReplayAnyOrderSpanningDays(t *testing.T) {
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	var s scenario
	events := 0
	for i := range 60000 {
		ts := start.Add(time.Duration(i) * 3 * 24 * time.Hour / 60000)
		s.access(ts, fmt.Sprintf("agent-%d", i%30), "support", fmt.Sprintf("cust-%d", i%1000), 1)
		events++
	}
	withdrawn := start.Add(30 * time.Hour)
	read := start.Add(50 * time.Hour)
	s.access(read, "marketer", "marketing", "cust-withdrawn", 1)
	events++
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(s.lines), func(i, j int) { s.lines[i], s.lines[j] = s.lines[j], s.lines[i] })
	s.consent(withdrawn, "cust-withdrawn", "marketing", false) // last line, earlier time
	labels := []Label{{ID: "atk-1", Kind: "consent_violation", Tenant: "default", ActorID: "marketer",
		Start: read.Add(-time.Minute), End: read.Add(5 * time.Minute)}}
	sum := replay(t, s.text(), labels, detect.Config{Window: 10 * time.Minute})
	assertNoRejections(t, sum, events, 1)
	if ks := sum.ByKind["consent_violation"]; ks == nil || ks.Detected != 1 {
		t.Errorf("consent violation after a withdrawal listed later in the file: %+v; want detected", ks)
	}
}

// TestReplayFiveMinuteCountSeries: one actor's count series, one event per
// 5-minute point with records = value, 14 days (4,032 points in one chunk
// spanning 14 days; the old replay judged a chunk against the clock before
// it and rejected every point after the first day). Every point is
// replayed.
func TestReplayFiveMinuteCountSeries(t *testing.T) {
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	var s scenario
	const points = 14 * 24 * 12
	for i := range points {
		ts := start.Add(time.Duration(i) * 5 * time.Minute)
		v := 100 + 50*((i/12)%24)/23 // a daily ramp
		s.access(ts, "series-1", "support", "", v)
	}
	sum := replay(t, s.text(), nil, detect.Config{Window: 5 * time.Minute})
	assertNoRejections(t, sum, points, 0)
	if want := points; sum.Windows != want {
		t.Errorf("windows %d, want %d", sum.Windows, want)
	}
}

// TestReplaySpansMoreDaysThanOneInsert: an hourly series over 65 days, more
// daily partitions than one chunk's insert may touch (maxChunkDays), so the
// replay splits it by days, not only by lines. Every point is replayed. (An
// hourly window keeps it to 1,560 windows; the 5-minute series above checks
// the short windows.)
func TestReplaySpansMoreDaysThanOneInsert(t *testing.T) {
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	var s scenario
	const points = 65 * 24
	if points/24 <= maxChunkDays {
		t.Fatalf("the series spans %d days, not more than maxChunkDays (%d)", points/24, maxChunkDays)
	}
	for i := range points {
		s.access(start.Add(time.Duration(i)*time.Hour), "series-1", "support", "", 100+i%24)
	}
	sum := replay(t, s.text(), nil, detect.Config{Window: time.Hour})
	assertNoRejections(t, sum, points, 0)
	if want := points; sum.Windows != want {
		t.Errorf("windows %d, want %d", sum.Windows, want)
	}
}

// TestReplayRejectsOnlyContractBreaks: lines that break the contract are
// rejected with ingest's reason codes and their line numbers; a time far
// from the others is not a reason.
func TestReplayRejectsOnlyContractBreaks(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var s scenario
	for i := range 100 {
		s.access(start.Add(time.Duration(i)*time.Minute), "a1", "support", "cust-1", 1)
	}
	s.access(start.Add(40*24*time.Hour), "a1", "support", "cust-1", 1) // far ahead: fine in a replay
	s.lines = append(s.lines,
		`{"event_id":"bad-1","ts":"2026-03-02T10:00:00Z","actor":{"id":"x","type":"robot"},"action":"read","store":"crm","resource":{"type":"customer_profile"}}`,
		`{"event_id":"bad-2","ts":"yesterday","actor":{"id":"x","type":"human"},"action":"read","store":"crm","resource":{"type":"customer_profile"}}`,
		`{"event_id":"bad-3","ts":"2200-01-01T00:00:00Z","actor":{"id":"x","type":"human"},"action":"read","store":"crm","resource":{"type":"customer_profile"}}`,
		`not json`)
	sum := replay(t, s.text(), nil, detect.Config{Window: 10 * time.Minute})
	if sum.Events != 101 || sum.Lines != 105 || sum.Rejected != 4 {
		t.Errorf("events %d, lines %d, rejected %d; want 101, 105, 4", sum.Events, sum.Lines, sum.Rejected)
	}
	want := map[string]int{"bad_enum": 1, "bad_value": 2, "bad_json": 1}
	if fmt.Sprint(sum.RejectedByReason) != fmt.Sprint(want) {
		t.Errorf("rejected by reason %v, want %v", sum.RejectedByReason, want)
	}
	lines := []int{}
	for _, x := range sum.RejectedExamples {
		lines = append(lines, x.Line)
	}
	if fmt.Sprint(lines) != "[102 103 104 105]" {
		t.Errorf("rejected line numbers %v, want [102 103 104 105]", lines)
	}
	if r := sum.RejectedRatio(); r != 4.0/105 {
		t.Errorf("rejected ratio %g", r)
	}
}

func TestNextChunkBoundsDays(t *testing.T) {
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var items []item
	for d := range 150 {
		items = append(items, item{ts: start.Add(time.Duration(d) * 24 * time.Hour)}, item{ts: start.Add(time.Duration(d)*24*time.Hour + time.Hour)})
	}
	seq := seqOf(items[:7], items[7:150], nil, items[150:])
	var sizes []int
	for from := 0; from < len(items); {
		to := nextChunk(seq, from, 1000)
		first, last := items[from].ts.Truncate(24*time.Hour), items[to-1].ts.Truncate(24*time.Hour)
		if days := int(last.Sub(first)/(24*time.Hour)) + 1; days > maxChunkDays {
			t.Fatalf("chunk [%d,%d) spans %d days", from, to, days)
		}
		sizes = append(sizes, to-from)
		from = to
	}
	if fmt.Sprint(sizes) != "[120 120 60]" {
		t.Errorf("chunk sizes %v, want [120 120 60]", sizes)
	}
	if to := nextChunk(seq, 0, 7); to != 7 {
		t.Errorf("size bound: %d, want 7", to)
	}
}

// TestReplayScoresPayloadPII (issue 14 item 4): a line rejected as
// pii_in_payload is what chatwarden raises against its producer store (a
// dead letter; a finding with ingest.pii: pseudonymize): it detects a
// payload_pii label naming that store in its tenant and time (time to
// detect from the label's start), and outside any label it is a false
// alert of pii_in_payload. The lines are still counted as rejected.
func TestReplayScoresPayloadPII(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var s scenario
	for i := range 60 {
		s.access(start.Add(time.Duration(i)*time.Minute), "a1", "support", "cust-1", 1)
	}
	pii := func(id string, ts time.Time, store, resource string) string {
		return fmt.Sprintf(`{"event_id":%q,"ts":%q,"tenant":"default","actor":{"id":"a1","type":"human"},"action":"read","store":%q,"resource":{"type":"order","id":%q}}`,
			id, ts.Format(time.RFC3339), store, resource)
	}
	s.lines = append(s.lines,
		pii("pii-1", start.Add(10*time.Minute+30*time.Second), "orders", "4111111111111111"),
		pii("pii-2", start.Add(12*time.Minute), "orders", "4111111111111111"),
		pii("pii-3", start.Add(50*time.Minute), "crm", "jane.doe@example.com")) // no label: false
	labels := []Label{{ID: "pii-1", Kind: "payload_pii", Tenant: "default", ActorID: "orders", Start: start.Add(10 * time.Minute), End: start.Add(20 * time.Minute)}}
	sum := replay(t, s.text(), labels, detect.Config{Window: time.Minute})
	ks := sum.ByKind["payload_pii"]
	if ks == nil || ks.Detected != 1 || ks.Detectors["pii_in_payload"] != 1 {
		t.Fatalf("payload_pii: %+v, want detected once by pii_in_payload", ks)
	}
	if sum.FalseByDetector["pii_in_payload"] != 1 || sum.Rejected != 3 || sum.RejectedByReason["pii_in_payload"] != 3 {
		t.Errorf("false by detector %v, rejected %d %v; want 1 false pii_in_payload, 3 rejected", sum.FalseByDetector, sum.Rejected, sum.RejectedByReason)
	}
	if sum.TTDMedianS != 30 {
		t.Errorf("time to detect %gs, want 30s (the first dead letter, 30 s into the label)", sum.TTDMedianS)
	}
}

// TestReplayReportsWhereItsTimeGoes: the replay's last progress line adds
// up the time of each kind of store call with its count: three chunks, one
// then two to an INSERT, make two inserts and four flushes of findings (one a chunk,
// one at the end), and the detectors read the window aggregates.
func TestReplayReportsWhereItsTimeGoes(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var s scenario
	for i := range 4 * 60 {
		for a := range 5 {
			s.access(start.Add(time.Duration(i)*time.Minute+time.Duration(a)*time.Second), fmt.Sprintf("agent-%d", a), "support", fmt.Sprintf("cust-%d", i%50), 1)
		}
	}
	var progress bytes.Buffer
	sum, err := Run(t.Context(), Options{Events: strings.NewReader(s.text()), Config: detect.Config{Window: 10 * time.Minute},
		Store: storetest.New(t), Progress: &progress, ChunkEvents: 400, InsertChunks: 2})
	if err != nil {
		t.Fatalf("replay: %v\nprogress:\n%s", err, progress.String())
	}
	assertNoRejections(t, sum, 4*60*5, 0)
	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	last := lines[len(lines)-1]
	for _, want := range []string{`in all, decoding and sorting [0-9.]+s;`, `insert [0-9.]+s \(2\)`, `window aggregates [0-9.]+s \([1-9][0-9]*\)`,
		// the second and third chunks' windows, read ahead
		`window aggregates read ahead [0-9.]+s \(2\)`, `destinations read ahead [0-9.]+s \(2\)`} {
		if !regexp.MustCompile(want).MatchString(last) {
			t.Errorf("last progress line %q does not match %q", last, want)
		}
	}
}

// TestReplayInsertChunksChangesNothing: how many chunks one INSERT carries
// changes neither what the replay stores (events with each chunk's
// ingested_at, the views, findings, risk scores) nor what it detects (the
// alerts file, byte for byte): two days of five agents with a consent
// withdrawal, bulk reads and an evening burst, in chunks of 500 events,
// one chunk per INSERT and four.
func TestReplayInsertChunksChangesNothing(t *testing.T) {
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	var s scenario
	for i := range 30 {
		s.consent(start.Add(time.Duration(i)*time.Minute), fmt.Sprintf("cust-%d", i), "marketing", true)
	}
	s.consent(start.Add(30*time.Hour), "cust-3", "marketing", false)
	for day := range 2 {
		for m := 8 * 60; m < 18*60; m += 2 {
			for a := range 5 {
				ts := start.Add(time.Duration(day*24*60+m)*time.Minute + time.Duration(a)*time.Second)
				purpose, records := "support", 1
				if a == 4 && m%30 == 0 {
					purpose = "marketing"
				}
				if a == 2 && day == 1 && m >= 14*60 && m < 14*60+20 {
					records = 5000 // bulk reads
				}
				s.access(ts, fmt.Sprintf("agent-%d", a), purpose, fmt.Sprintf("cust-%d", (m/2+a)%30), records)
			}
		}
		if day == 1 {
			for i := range 400 { // an evening burst of one agent over many customers
				s.access(start.Add(time.Duration(day*24*60+20*60)*time.Minute+time.Duration(i)*time.Second), "agent-0", "support", fmt.Sprintf("cust-x%d", i), 3)
			}
		}
	}
	type result struct {
		alerts string
		tables map[string]uint64
	}
	run := func(insertChunks int) result {
		cfg := storetest.Config(t)
		st := storetest.Open(t, cfg)
		var alerts, progress bytes.Buffer
		sum, err := Run(t.Context(), Options{Events: strings.NewReader(s.text()), Config: detect.Config{Window: 10 * time.Minute},
			Store: st, Alerts: &alerts, Progress: &progress, ChunkEvents: 500, InsertChunks: insertChunks})
		if err != nil {
			t.Fatalf("replay: %v\nprogress:\n%s", err, progress.String())
		}
		if sum.Events < 5*500 || sum.Consents != 31 {
			t.Fatalf("replayed %d events, %d consents", sum.Events, sum.Consents)
		}
		r := result{alerts: alerts.String(), tables: map[string]uint64{}}
		for name, q := range map[string]string{
			"events":       "SELECT sum(cityHash64(event_id, toString(ts), actor_id, subject_id, resource_id, toString(records), toString(ingested_at))) FROM events",
			"consents":     "SELECT sum(cityHash64(event_id, subject_id, toString(granted), toString(ingested_at))) FROM consents",
			"actor_minute": "SELECT sum(cityHash64(actor_id, toString(minute), n, u)) FROM (SELECT actor_id, minute, sumMerge(events) AS n, uniqExactIfMerge(subjects) AS u FROM actor_minute GROUP BY actor_id, minute)",
			"event_ids":    "SELECT sum(cityHash64(event_id)) FROM event_ids",
			"findings":     "SELECT count() FROM findings",
			"findings_by":  "SELECT sum(cityHash64(detector, actor_id, toString(window_start), toString(detected_at))) FROM findings",
			"actor_risk":   "SELECT count() FROM actor_risk",
		} {
			r.tables[name] = storetest.Count(t, cfg, q)
		}
		return r
	}
	one, four := run(1), run(4)
	if strings.Count(one.alerts, "\n") < 2 || one.tables["findings"] == 0 {
		t.Fatalf("the scenario raised too little to compare: %d findings, alerts:\n%s", one.tables["findings"], one.alerts)
	}
	t.Logf("%d alerts, tables %v", strings.Count(one.alerts, "\n"), one.tables)
	if one.alerts != four.alerts {
		t.Errorf("alerts differ:\none chunk per INSERT:\n%s\nfour:\n%s", one.alerts, four.alerts)
	}
	if fmt.Sprint(one.tables) != fmt.Sprint(four.tables) {
		t.Errorf("stored tables differ: one chunk per INSERT %v, four %v", one.tables, four.tables)
	}
}

// TestReplayStreamedEqualsSorted: a file replayed while it is decoded
// (Options.Reset set, the reader seekable) stores and raises exactly what
// the replay of the file decoded whole and sorted does: for a file in time
// order (streamed to the end) and for one whose last lines go back in time
// (the streamed replay stops, the database is reset, the file decoded
// whole and replayed again). Payload PII alerts, known only at the end of a
// stream, come first in the alerts either way.
func TestReplayStreamedEqualsSorted(t *testing.T) {
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	build := func(late bool) string {
		var s scenario
		for i := range 30 {
			s.consent(start.Add(time.Duration(i)*time.Minute), fmt.Sprintf("cust-%d", i), "marketing", true)
		}
		for day := range 2 {
			if day == 1 {
				s.consent(start.Add(30*time.Hour), "cust-3", "marketing", false)
			}
			for m := 8 * 60; m < 18*60; m += 2 {
				for a := range 5 {
					ts := start.Add(time.Duration(day*24*60+m)*time.Minute + time.Duration(a)*time.Second)
					purpose, records := "support", 1
					if a == 4 && m%30 == 0 {
						purpose = "marketing"
					}
					if a == 2 && day == 1 && m >= 14*60 && m < 14*60+20 {
						records = 5000 // bulk reads
					}
					s.access(ts, fmt.Sprintf("agent-%d", a), purpose, fmt.Sprintf("cust-%d", (m/2+a)%30), records)
				}
				if m%120 == 0 { // payload PII, dead-lettered
					s.lines = append(s.lines, fmt.Sprintf(`{"event_id":"pii-%d-%d","ts":%q,"tenant":"default","actor":{"id":"bot","type":"service"},"action":"read","store":"crm","resource":{"type":"customer_profile","id":"4111 1111 1111 1111"},"records":1,"result":"allowed"}`,
						day, m, start.Add(time.Duration(day*24*60+m)*time.Minute).Format(time.RFC3339)))
				}
			}
		}
		if late { // a burst listed last, dated on the first day
			for i := range 400 {
				s.access(start.Add(20*time.Hour+time.Duration(i)*time.Second), "agent-0", "support", fmt.Sprintf("cust-x%d", i), 3)
			}
		}
		return s.text()
	}
	type result struct {
		alerts, progress string
		sum              *Summary
		tables           map[string]uint64
	}
	run := func(text string, stream bool) result {
		cfg := storetest.Config(t)
		st := storetest.Open(t, cfg)
		var alerts, progress bytes.Buffer
		opts := Options{Events: strings.NewReader(text), Config: detect.Config{Window: 10 * time.Minute},
			Store: st, Alerts: &alerts, Progress: &progress, ChunkEvents: 500, streamBlock: 97}
		if stream {
			opts.Reset = func(_ context.Context, sc store.Schema) (*store.Store, error) {
				if sc != store.DetectionSchema {
					t.Errorf("reset with the %s schema, want the detection schema", sc)
				}
				cfg = storetest.Config(t)
				return storetest.Open(t, cfg), nil
			}
		}
		sum, err := Run(t.Context(), opts)
		if err != nil {
			t.Fatalf("replay: %v\nprogress:\n%s", err, progress.String())
		}
		sum.ElapsedS, sum.EventsPerS = 0, 0
		r := result{alerts: alerts.String(), progress: progress.String(), sum: sum, tables: map[string]uint64{}}
		for name, q := range map[string]string{
			"events":       "SELECT sum(cityHash64(event_id, toString(ts), actor_id, subject_id, resource_id, toString(records), toString(ingested_at))) FROM events",
			"consents":     "SELECT sum(cityHash64(event_id, subject_id, toString(granted), toString(ingested_at))) FROM consents",
			"actor_minute": "SELECT sum(cityHash64(actor_id, toString(minute), n, u)) FROM (SELECT actor_id, minute, sumMerge(events) AS n, uniqExactIfMerge(subjects) AS u FROM actor_minute GROUP BY actor_id, minute)",
			"findings_by":  "SELECT sum(cityHash64(detector, actor_id, toString(window_start), toString(detected_at))) FROM findings",
			"actor_risk":   "SELECT count() FROM actor_risk",
		} {
			r.tables[name] = storetest.Count(t, cfg, q)
		}
		return r
	}
	for _, late := range []bool{false, true} {
		t.Run(fmt.Sprintf("late lines %t", late), func(t *testing.T) {
			text := build(late)
			whole, streamed := run(text, false), run(text, true)
			if strings.Count(whole.alerts, "\n") < 3 || !strings.HasPrefix(whole.alerts, `{"tenant":"default","actor_id":"crm","detector":"pii_in_payload"`) {
				t.Fatalf("the scenario raised too little to compare, or no payload PII alert first:\n%s", whole.alerts)
			}
			t.Logf("%d alerts, tables %v", strings.Count(whole.alerts, "\n"), whole.tables)
			if whole.alerts != streamed.alerts {
				t.Errorf("alerts differ:\nwhole:\n%s\nstreamed:\n%s", whole.alerts, streamed.alerts)
			}
			if fmt.Sprint(whole.tables) != fmt.Sprint(streamed.tables) {
				t.Errorf("stored tables differ: whole %v, streamed %v", whole.tables, streamed.tables)
			}
			if !reflect.DeepEqual(whole.sum, streamed.sum) {
				t.Errorf("summaries differ:\nwhole    %+v\nstreamed %+v", whole.sum, streamed.sum)
			}
			again := strings.Contains(streamed.progress, "not in time order")
			overlapped := strings.Contains(streamed.progress, "decoding (overlapping the replay)")
			if again != late || overlapped == late {
				t.Errorf("late lines %t: progress:\n%s", late, streamed.progress)
			}
		})
	}
}
