package store_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// TestWindowAggregatesAnyWindow: windows of whole minutes come from
// actor_minute, shorter ones from raw events; both give the same numbers
// for the same activity, split at the window boundaries; exports count
// export and share actions, ExportOnly the exports alone
// (actor_minute_exports, or the raw events).
func TestWindowAggregatesAnyWindow(t *testing.T) {
	s := storetest.New(t)
	ctx := t.Context()
	base := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	ev := func(id string, off time.Duration, actor string, action models.Action, records uint64, result models.Result, subject, country string, fields ...string) models.Event {
		return models.Event{EventID: id, TS: base.Add(off), Tenant: "t1", Actor: models.Actor{ID: actor, Type: models.ActorHuman, Role: "support", Vendor: "v"},
			Action: action, Store: "crm", Resource: models.Resource{Type: "customer_profile"}, SubjectID: subject, Records: records,
			Fields: fields, Result: result, Client: models.Client{Country: country}}
	}
	evs := []models.Event{
		ev("a", 5*time.Second, "a1", models.ActionRead, 2, models.ResultAllowed, "s1", "DE", "email"),
		ev("b", 12*time.Second, "a1", models.ActionExport, 40, models.ResultAllowed, "s2", "", "phone"),
		ev("f", 20*time.Second, "a1", models.ActionShare, 5, models.ResultAllowed, "", ""),
		ev("c", 40*time.Second, "a1", models.ActionRead, 1, models.ResultDenied, "s1", "FR"),
		ev("d", 65*time.Second, "a1", models.ActionRead, 7, models.ResultAllowed, "s3", "DE", "email", "address"),
		ev("e", 70*time.Second, "a2", models.ActionRead, 3, models.ResultAllowed, "", ""),
	}
	if err := s.InsertEvents(ctx, evs, base); err != nil {
		t.Fatal(err)
	}
	render := func(rows []store.WindowActivity) []string {
		var out []string
		for _, r := range rows {
			slices.Sort(r.Categories)
			slices.Sort(r.Countries)
			out = append(out, fmt.Sprintf("%s %s %s/%s/%s ev=%d rec=%d exp=%d/%d only=%d/%d den=%d subj=%d %v %v %v %v",
				r.WindowStart.Format("15:04:05"), r.ActorID, r.ActorType, r.ActorRole, r.ActorVendor, r.Events, r.Records,
				r.Exports, r.ExportRecords, r.ExportOnly, r.ExportOnlyRecords, r.Denied, r.Subjects, r.Stores, r.ResourceTypes, r.Categories, r.Countries))
		}
		return out
	}
	tests := []struct {
		window time.Duration
		want   []string
	}{
		{10 * time.Second, []string{
			"10:00:00 a1 human/support/v ev=1 rec=2 exp=0/0 only=0/0 den=0 subj=1 [crm] [customer_profile] [email] [DE]",
			"10:00:10 a1 human/support/v ev=1 rec=40 exp=1/40 only=1/40 den=0 subj=1 [crm] [customer_profile] [phone] []",
			"10:00:20 a1 human/support/v ev=1 rec=5 exp=1/5 only=0/0 den=0 subj=0 [crm] [customer_profile] [] []",
			"10:00:40 a1 human/support/v ev=1 rec=1 exp=0/0 only=0/0 den=1 subj=1 [crm] [customer_profile] [] [FR]",
			"10:01:00 a1 human/support/v ev=1 rec=7 exp=0/0 only=0/0 den=0 subj=1 [crm] [customer_profile] [address email] [DE]",
			"10:01:10 a2 human/support/v ev=1 rec=3 exp=0/0 only=0/0 den=0 subj=0 [crm] [customer_profile] [] []",
		}},
		{30 * time.Second, []string{
			"10:00:00 a1 human/support/v ev=3 rec=47 exp=2/45 only=1/40 den=0 subj=2 [crm] [customer_profile] [email phone] [DE]",
			"10:00:30 a1 human/support/v ev=1 rec=1 exp=0/0 only=0/0 den=1 subj=1 [crm] [customer_profile] [] [FR]",
			"10:01:00 a1 human/support/v ev=1 rec=7 exp=0/0 only=0/0 den=0 subj=1 [crm] [customer_profile] [address email] [DE]",
			"10:01:00 a2 human/support/v ev=1 rec=3 exp=0/0 only=0/0 den=0 subj=0 [crm] [customer_profile] [] []",
		}},
		{time.Minute, []string{
			"10:00:00 a1 human/support/v ev=4 rec=48 exp=2/45 only=1/40 den=1 subj=2 [crm] [customer_profile] [email phone] [DE FR]",
			"10:01:00 a1 human/support/v ev=1 rec=7 exp=0/0 only=0/0 den=0 subj=1 [crm] [customer_profile] [address email] [DE]",
			"10:01:00 a2 human/support/v ev=1 rec=3 exp=0/0 only=0/0 den=0 subj=0 [crm] [customer_profile] [] []",
		}},
		{2 * time.Minute, []string{
			"10:00:00 a1 human/support/v ev=5 rec=55 exp=2/45 only=1/40 den=1 subj=3 [crm] [customer_profile] [address email phone] [DE FR]",
			"10:00:00 a2 human/support/v ev=1 rec=3 exp=0/0 only=0/0 den=0 subj=0 [crm] [customer_profile] [] []",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.window.String(), func(t *testing.T) {
			rows, err := s.WindowAggregates(ctx, base, base.Add(2*time.Minute), tc.window, store.Shard{})
			if err != nil {
				t.Fatal(err)
			}
			if got := render(rows); !slices.Equal(got, tc.want) {
				t.Errorf("window %s:\n got %q\nwant %q", tc.window, got, tc.want)
			}
		})
	}
}

// TestWindowAggregatesSetsAsBefore: the sets of WindowAggregates (read as
// length-prefixed strings) are exactly the arrays the query read before,
// item for item, in the same order, empty sets as empty (not nil)
// slices, for windows read from actor_minute and from raw events, with
// items holding the encoding's own characters (digits, colons), NUL bytes,
// multi-byte letters and the empty string.
// windowTestEvents is 240 events of 7 actors over the 10 minutes from
// base, with sets whose items hold digits, colons, NUL, multi-byte letters
// and the empty string.
func windowTestEvents(base time.Time) []models.Event {
	stores := []string{"crm", "12:x", ":", "1:", "b\x00c", "Kundenstamm ü店", "", "3:abc4:defg"}
	countries := []string{"DE", "", "FR", "1:", "ÄÖ"}
	var evs []models.Event
	for i := range 240 {
		evs = append(evs, models.Event{EventID: fmt.Sprintf("e%d", i), TS: base.Add(time.Duration(i*i%600) * time.Second),
			Tenant: "t1", Actor: models.Actor{ID: fmt.Sprintf("a%d", i%7), Type: models.ActorHuman, Role: "support", Vendor: "v"},
			Action: []models.Action{models.ActionRead, models.ActionExport, models.ActionShare}[i%3], Store: stores[i%len(stores)],
			Resource: models.Resource{Type: stores[(i/3)%len(stores)] + "_t"}, SubjectID: fmt.Sprintf("s%d", i%11), Records: uint64(i % 13),
			Fields: []string{stores[(i/2)%len(stores)], countries[i%len(countries)]}[:i%3], Result: models.ResultAllowed,
			Client: models.Client{Country: countries[(i/5)%len(countries)]}})
	}
	return evs
}

// sortSets sorts the sets of every row in place.
func sortSets(rows []store.WindowActivity) {
	for i := range rows {
		for _, set := range [][]string{rows[i].Stores, rows[i].ResourceTypes, rows[i].Categories, rows[i].Countries} {
			slices.Sort(set)
		}
	}
}

// TestWindowAggregatesMinuteSplitKeys: with one-minute windows the rows of
// actor_minute are finalized one by one (WindowAggregatesMinuteSQL) except
// the keys that several INSERTs left in several rows, which are merged;
// the result is what the GROUP BY of every row gave, on one server and per
// detection shard.
func TestWindowAggregatesMinuteSplitKeys(t *testing.T) {
	cfg := storetest.Config(t)
	s := storetest.Open(t, cfg)
	ctx := t.Context()
	base := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	single := cfg.Cluster == "" // on a cluster WindowAggregatesSQL reads, and actor_minute is Distributed
	if single {
		// No merge may join the INSERTs' rows before the reads.
		storetest.Exec(t, cfg, "SYSTEM STOP MERGES actor_minute")
	}
	evs := windowTestEvents(base)
	for _, part := range [][]models.Event{evs[:70], evs[70:150], evs[150:]} {
		if err := s.InsertEvents(ctx, part, base); err != nil {
			t.Fatal(err)
		}
	}
	if split := storetest.Count(t, cfg, "SELECT count() FROM (SELECT minute FROM actor_minute GROUP BY minute, tenant, actor_id HAVING count() > 1)"); single && split == 0 {
		t.Fatal("no key of actor_minute is in several rows: the test checks no merge")
	}
	from, to := base, base.Add(10*time.Minute)
	want, err := store.WindowAggregatesArrays(ctx, s, from, to, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.WindowAggregates(ctx, from, to, time.Minute, store.Shard{})
	if err != nil {
		t.Fatal(err)
	}
	// A key merged from several rows has its sets in the order the merge
	// met the rows, which no GROUP BY fixes (the old query's neither):
	// compared as sets. Rows of one state keep their order exactly
	// (TestWindowAggregatesSetsAsBefore).
	sortSets(want)
	sortSets(got)
	if len(got) == 0 || len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("row %d\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	var sharded []store.WindowActivity
	for i := range 2 {
		part, err := s.WindowAggregates(ctx, from, to, time.Minute, store.Shard{Index: i, Count: 2})
		if err != nil {
			t.Fatal(err)
		}
		sharded = append(sharded, part...)
	}
	sortSets(sharded)
	key := func(a store.WindowActivity) string {
		return a.WindowStart.String() + "\x00" + a.Tenant + "\x00" + a.ActorID
	}
	slices.SortFunc(sharded, func(a, b store.WindowActivity) int { return strings.Compare(key(a), key(b)) })
	slices.SortFunc(want, func(a, b store.WindowActivity) int { return strings.Compare(key(a), key(b)) })
	if len(sharded) != len(want) {
		t.Fatalf("two shards: %d rows, want %d", len(sharded), len(want))
	}
	for i := range sharded {
		if !reflect.DeepEqual(sharded[i], want[i]) {
			t.Errorf("two shards: row %d\n got %+v\nwant %+v", i, sharded[i], want[i])
		}
	}
}

func TestWindowAggregatesSetsAsBefore(t *testing.T) {
	s := storetest.New(t)
	ctx := t.Context()
	base := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	evs := windowTestEvents(base)
	if err := s.InsertEvents(ctx, evs, base); err != nil {
		t.Fatal(err)
	}
	for _, window := range []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute} {
		t.Run(window.String(), func(t *testing.T) {
			got, err := s.WindowAggregates(ctx, base, base.Add(10*time.Minute), window, store.Shard{})
			if err != nil {
				t.Fatal(err)
			}
			want, err := store.WindowAggregatesArrays(ctx, s, base, base.Add(10*time.Minute), window)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 || !reflect.DeepEqual(got, want) {
				t.Errorf("window %s: %d rows\n got %+v\nwant %+v", window, len(got), got, want)
			}
			multi := 0
			for _, r := range got {
				if len(r.Stores) > 1 && len(r.Categories) > 1 {
					multi++
				}
			}
			if multi == 0 {
				t.Errorf("window %s: no row with several stores and categories: the test checks nothing", window)
			}
		})
	}
}

// TestDecodeSet: the length-prefixed sets decode item for item; a
// malformed one is an error, not a guess.
func TestDecodeSet(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", []string{}},
		{"0:", []string{""}},
		{"3:crm", []string{"crm"}},
		{"3:a:b0:2:12", []string{"a:b", "", "12"}},
		{"10:0123456789", []string{"0123456789"}},
		{"5:ü店", []string{"ü店"}},
	} {
		got, err := store.DecodeSet(tc.in)
		if err != nil || got == nil || !slices.Equal(got, tc.want) {
			t.Errorf("DecodeSet(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"3", "3:ab", ":", "x:a", "1:a2", "1:a:", "99999999999999999999999:x", "-1:"} {
		if got, err := store.DecodeSet(in); err == nil {
			t.Errorf("DecodeSet(%q) = %q, want an error", in, got)
		}
	}
}

// TestSubjectsOutsideConversation: a bot's reads of its conversations' own
// customers do not count; a read of another customer inside a
// conversation, or of any customer outside one, does, once per customer
// and only inside [from, to) and for the actor asked.
func TestSubjectsOutsideConversation(t *testing.T) {
	s := storetest.New(t)
	ctx := t.Context()
	base := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	n := 0
	ev := func(off time.Duration, actor, subject, convSubject string) models.Event {
		n++
		e := models.Event{EventID: fmt.Sprintf("e%d", n), TS: base.Add(off), Tenant: "t1", Actor: models.Actor{ID: actor, Type: models.ActorBot, Role: "assistant"},
			Action: models.ActionRead, Store: "orders", Resource: models.Resource{Type: "order"}, SubjectID: subject, Records: 1,
			Result: models.ResultAllowed}
		if convSubject != "" {
			e.Conversation = models.Conversation{ID: "cv-" + convSubject, SubjectID: convSubject}
		}
		return e
	}
	evs := []models.Event{
		ev(time.Minute, "bot", "c1", "c1"),     // its own customer
		ev(2*time.Minute, "bot", "c2", "c2"),   // its own customer
		ev(3*time.Minute, "bot", "c3", "c2"),   // another customer in c2's conversation
		ev(4*time.Minute, "bot", "c3", "c3"),   // c3 again, now in its own (still counted once)
		ev(5*time.Minute, "bot", "c4", ""),     // no conversation
		ev(6*time.Minute, "bot", "", "c5"),     // no customer
		ev(90*time.Minute, "bot", "c6", ""),    // after the range
		ev(7*time.Minute, "other", "c7", "c1"), // another actor
		ev(8*time.Minute, "bot", "c8", ""),     // refused, below
	}
	evs[len(evs)-1].Result = models.ResultDenied
	if err := s.InsertEvents(ctx, evs, base); err != nil {
		t.Fatal(err)
	}
	got, err := s.SubjectsOutsideConversation(ctx, "t1", "bot", base, base.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got != 2 {
		t.Errorf("customers outside their conversations: %d, want 2 (c3, c4; c8's read was refused)", got)
	}
}

// TestSubjectsRead: the customers whose data an actor read. A customer
// whose every access was refused does not count (actor_minute's subjects
// count it: it is a denied burst's evidence); one read once and refused
// once does, once; only inside [from, to) and for the actor asked.
func TestSubjectsRead(t *testing.T) {
	s := storetest.New(t)
	ctx := t.Context()
	base := time.Date(2026, 11, 28, 1, 0, 0, 0, time.UTC)
	n := 0
	ev := func(off time.Duration, actor, subject string, res models.Result) models.Event {
		n++
		return models.Event{EventID: fmt.Sprintf("e%d", n), TS: base.Add(off), Tenant: "t1", Actor: models.Actor{ID: actor, Type: models.ActorHuman, Role: "care-agent"},
			Action: models.ActionRead, Store: "crm", Resource: models.Resource{Type: "customer_profile"}, SubjectID: subject, Records: 1,
			Result: res}
	}
	evs := []models.Event{
		ev(time.Minute, "a1", "c1", models.ResultAllowed),
		ev(2*time.Minute, "a1", "c2", models.ResultAllowed),
		ev(3*time.Minute, "a1", "c2", models.ResultDenied), // read before: still counted once
		ev(20*time.Minute, "a1", "c3", models.ResultDenied),
		ev(21*time.Minute, "a1", "c4", models.ResultDenied),
		ev(22*time.Minute, "a1", "c4", models.ResultDenied),
		ev(23*time.Minute, "a1", "c5", models.ResultError), // not refused
		ev(24*time.Minute, "a1", "", models.ResultAllowed), // no customer
		ev(90*time.Minute, "a1", "c6", models.ResultAllowed),
		ev(5*time.Minute, "other", "c7", models.ResultAllowed),
	}
	if err := s.InsertEvents(ctx, evs, base); err != nil {
		t.Fatal(err)
	}
	got, err := s.SubjectsRead(ctx, "t1", "a1", base, base.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got != 3 {
		t.Errorf("customers read: %d, want 3 (c1, c2, c5; c3 and c4 were refused)", got)
	}
	// the per-minute aggregate counts every customer touched
	counts, err := s.RecentSubjects(ctx, base, base, base.Add(time.Hour), store.Shard{})
	if err != nil {
		t.Fatal(err)
	}
	var touched uint64
	for _, c := range counts {
		if c.ActorID == "a1" {
			touched = c.Hour
		}
	}
	if touched != 5 {
		t.Errorf("customers touched in the hour (actor_minute): %d, want 5 (c1-c5)", touched)
	}
}
