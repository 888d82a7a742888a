package detect

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

func ev(actor string, typ models.ActorType, mod func(e *models.Event)) models.Event {
	e := models.Event{EventID: "e-" + actor, TS: time.Date(2026, 1, 6, 10, 0, 0, 0, time.UTC), Tenant: "default",
		Actor: models.Actor{ID: actor, Type: typ, Role: "support"}, Action: models.ActionRead, Store: "crm",
		Resource: models.Resource{Type: "customer_profile"}, SubjectID: "pA", Records: 1,
		Fields: []string{"name", "email"}, Purpose: "support", Result: models.ResultAllowed}
	if mod != nil {
		mod(&e)
	}
	return e
}

// testPolicy is a deployment's own purpose policy and vendor contract (the
// product defaults have neither).
func testPolicy() Config {
	return Config{Rules: RulesConfig{
		Purposes: map[string][]string{
			"support":   {"email", "phone", "address", "name", "order_history", "transcript_text"},
			"billing":   {"email", "name", "address", "payment"},
			"fraud":     {"*"},
			"marketing": {"email", "name"},
		},
		Vendors: map[string]VendorContract{"acme-bpo": {
			Stores:     []string{"crm", "orders", "transcripts"},
			Categories: []string{"email", "phone", "name", "address", "order_history", "transcript_text"},
			Hours:      "00:00-12:00", Days: []string{"mon", "tue", "wed", "thu", "fri", "sat"}, TimeZone: "UTC",
		}},
	}}
}

// TestDefaultsOnAStrangersTraffic: the product defaults carry no purpose
// policy and no vendor contract. A vendor nobody configured, reading any
// store and category at any hour for eight days, makes one low-severity
// vendor_no_contract finding per week (two), never one per hour; purposes
// are not checked against a policy nobody wrote.
func TestDefaultsOnAStrangersTraffic(t *testing.T) {
	def := Config{}.WithDefaults()
	if len(def.Rules.Vendors) != 0 || len(def.Rules.Purposes) != 0 {
		t.Fatalf("defaults carry vendors %v and purposes %v; want none", def.Rules.Vendors, def.Rules.Purposes)
	}
	r, err := NewRules(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	var got []models.Finding
	for m := 0; m < 8*24*60; m += 10 {
		at := start.Add(time.Duration(m) * time.Minute)
		evs := []models.Event{
			ev("fb-1", models.ActorVendor, func(e *models.Event) {
				e.TS, e.Actor.Vendor, e.Actor.Role, e.Store, e.Fields, e.Purpose = at, "foreign-bpo", "agent", "payments", []string{"payment", "dob"}, "support"
			}),
			ev("fb-2", models.ActorVendor, func(e *models.Event) {
				e.TS, e.Actor.Vendor, e.Store = at, "other-bpo", "tickets"
			}),
			ev("a1", models.ActorHuman, func(e *models.Event) { e.TS, e.Fields = at, []string{"health", "government_id"} }),
		}
		got = append(got, r.Check(at, evs, nil)...)
	}
	per := map[string]int{}
	for _, f := range got {
		if f.Detector != RuleVendorNoContract || f.Severity != models.SeverityLow {
			t.Errorf("unexpected finding %s (%s): %s", f.Detector, f.Severity, f.Summary)
			continue
		}
		per[f.ActorVendor]++
	}
	if per["foreign-bpo"] != 2 || per["other-bpo"] != 2 || len(per) != 2 {
		t.Errorf("vendor_no_contract findings per vendor over 8 days: %v; want 2 each", per)
	}
}

func TestRules(t *testing.T) {
	at := time.Date(2026, 1, 6, 10, 0, 5, 0, time.UTC)
	withdrawn := []store.ConsentState{{Tenant: "default", SubjectID: "pW", Purpose: "marketing", Granted: false,
		TS: at.Add(-24 * time.Hour)}}
	tests := []struct {
		name string
		evs  []models.Event
		cs   []models.Consent
		want []string // rule names, in order
	}{
		{"normal support read", []models.Event{ev("a1", models.ActorHuman, nil)}, nil, nil},
		{"bulk export over the limit", []models.Event{ev("a1", models.ActorHuman, func(e *models.Event) {
			e.Action, e.Records = models.ActionExport, 5000
		})}, nil, []string{RuleBulkAccess}},
		{"service list under its own limit", []models.Event{ev("svc", models.ActorService, func(e *models.Event) {
			e.Action, e.Records = models.ActionList, 5000
		})}, nil, nil},
		{"denied bulk read is not exposure", []models.Event{ev("a1", models.ActorHuman, func(e *models.Event) {
			e.Records, e.Result = 5000, models.ResultDenied
		})}, nil, nil},
		{"bot reads the conversation's own customer", []models.Event{ev("bot", models.ActorBot, func(e *models.Event) {
			e.Tool, e.Conversation = "get_profile", models.Conversation{ID: "c1", SubjectID: "pA"}
		})}, nil, nil},
		{"bot reads another customer", []models.Event{ev("bot", models.ActorBot, func(e *models.Event) {
			e.Tool, e.Conversation = "get_profile", models.Conversation{ID: "c1", SubjectID: "pB"}
		})}, nil, []string{RuleBotCrossCustomer}},
		{"many customers in one conversation", func() []models.Event {
			var out []models.Event
			for _, s := range []string{"p1", "p2", "p3", "p4", "p5"} {
				out = append(out, ev("h1", models.ActorHuman, func(e *models.Event) {
					e.SubjectID, e.Conversation = s, models.Conversation{ID: "c9"}
				}))
			}
			return out
		}(), nil, []string{RuleConversationSubjects}},
		{"consent-gated purpose after withdrawal", []models.Event{ev("mkt", models.ActorHuman, func(e *models.Event) {
			e.Purpose, e.SubjectID, e.Fields = "marketing", "pW", []string{"email"}
		})}, nil, []string{RuleConsentWithdrawn}},
		{"withdrawal in the same batch", []models.Event{ev("mkt", models.ActorHuman, func(e *models.Event) {
			e.Purpose, e.SubjectID, e.Fields = "marketing", "pX", []string{"email"}
		})}, []models.Consent{{Tenant: "default", SubjectID: "pX", Purpose: "marketing", Granted: false, TS: at.Add(-time.Hour)}},
			[]string{RuleConsentWithdrawn}},
		{"consent granted again", []models.Event{ev("mkt", models.ActorHuman, func(e *models.Event) {
			e.Purpose, e.SubjectID, e.Fields = "marketing", "pY", []string{"email"}
		})}, []models.Consent{{Tenant: "default", SubjectID: "pY", Purpose: "marketing", Granted: false, TS: at.Add(-2 * time.Hour)},
			{Tenant: "default", SubjectID: "pY", Purpose: "marketing", Granted: true, TS: at.Add(-time.Hour)}}, nil},
		{"category the purpose does not allow", []models.Event{ev("a1", models.ActorHuman, func(e *models.Event) {
			e.Fields = []string{"name", "payment"}
		})}, nil, []string{RulePurposeCategory}},
		{"fraud may read everything", []models.Event{ev("a1", models.ActorHuman, func(e *models.Event) {
			e.Purpose, e.Fields = "fraud", []string{"payment", "government_id"}
		})}, nil, nil},
		{"vendor inside its contract", []models.Event{ev("v1", models.ActorVendor, func(e *models.Event) {
			e.Actor.Vendor = "acme-bpo"
			e.TS = time.Date(2026, 1, 6, 10, 0, 0, 0, time.UTC) // Tuesday 10:00 UTC
		})}, nil, nil},
		{"vendor in a store outside its contract", []models.Event{ev("v1", models.ActorVendor, func(e *models.Event) {
			e.Actor.Vendor, e.Store, e.Fields, e.Purpose = "acme-bpo", "payments", []string{"name"}, "billing"
		})}, nil, []string{RuleVendorScope}},
		{"vendor after contracted hours", []models.Event{ev("v1", models.ActorVendor, func(e *models.Event) {
			e.Actor.Vendor, e.TS = "acme-bpo", time.Date(2026, 1, 6, 15, 0, 0, 0, time.UTC)
		})}, nil, []string{RuleVendorScope}},
		{"vendor on Sunday", []models.Event{ev("v1", models.ActorVendor, func(e *models.Event) {
			e.Actor.Vendor, e.TS = "acme-bpo", time.Date(2026, 1, 4, 10, 0, 0, 0, time.UTC)
		})}, nil, []string{RuleVendorScope}},
		{"vendor without a contract", []models.Event{ev("v2", models.ActorVendor, func(e *models.Event) {
			e.Actor.Vendor = "unknown-bpo"
		})}, nil, []string{RuleVendorNoContract}},
		{"a batch of violations folds into one finding per rule and actor", func() []models.Event {
			var out []models.Event
			for i := 0; i < 50; i++ {
				out = append(out, ev("a1", models.ActorHuman, func(e *models.Event) { e.Fields = []string{"health"} }))
			}
			return out
		}(), nil, []string{RulePurposeCategory}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := NewConsentRegister()
			reg.Load(withdrawn)
			r, err := NewRules(testPolicy(), reg)
			if err != nil {
				t.Fatal(err)
			}
			fs := r.Check(at, tc.evs, tc.cs)
			var got []string
			for _, f := range fs {
				got = append(got, f.Detector)
				if f.Evidence.Query == "" || f.Summary == "" || len(f.Evidence.EventIDs) == 0 || !f.DetectedAt.Equal(at) {
					t.Errorf("finding %s lacks evidence: %+v", f.Detector, f)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("rules fired %v, want %v", got, tc.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []Config{
		{Window: 7 * time.Minute}, {Window: 5 * time.Second}, {Window: 2 * time.Hour}, {Clock: "sundial"},
		{Shard: 2, Shards: 2},
		{Severities: map[string]models.Severity{"no_such_detector": models.SeverityLow}},
		{Rules: RulesConfig{Vendors: map[string]VendorContract{"x": {Hours: "25:00-26:00"}}}},
		{Rules: RulesConfig{Purposes: map[string][]string{"support": {}}}},
		{Detectors: DetectorsConfig{VolumeTailProb: 2}},
		{TimeZones: TimeZones{Roles: map[string]string{"support": "Mars/Olympus"}}},
	}
	for i, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("config %d: want a validation error", i)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	four := days(4, workday(normal))
	fx := parseFixture(t, monday, team(four, four))
	e, err := New(Config{}, fx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.StartAt(monday.Add(time.Minute))
	if err := e.Advance(t.Context(), monday.Add(3*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	b, err := e.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	e2, _ := New(Config{}, fx, Options{})
	if err := e2.Restore(b); err != nil {
		t.Fatal(err)
	}
	a, b2 := e.actors[actorKey{"default", "a1"}], e2.actors[actorKey{"default", "a1"}]
	if a == nil || b2 == nil || a.ActiveWindows != b2.ActiveWindows || a.Records != b2.Records || !reflect.DeepEqual(a.How, b2.How) || !e2.Next().Equal(e.Next()) {
		t.Fatalf("restored state differs: %+v vs %+v", a, b2)
	}
}

// TestAnyWindow: every window from 10s to 1h that divides an hour is
// accepted with the defaults, and the settings counted in windows stand for
// the same lengths of time (enum_every about 10 minutes, volume_span 15
// minutes, warm-up an hour) within their bounds. A setting that does not fit
// the window names the value to set.
func TestAnyWindow(t *testing.T) {
	tests := []struct {
		window                    time.Duration
		enumEvery                 time.Duration
		volumeSpan, warmupWindows int
	}{
		{10 * time.Second, 10 * time.Minute, 32, 60},
		{15 * time.Second, 10 * time.Minute, 32, 60},
		{30 * time.Second, 10 * time.Minute, 30, 60},
		{time.Minute, 10 * time.Minute, 15, 60},
		{2 * time.Minute, 10 * time.Minute, 8, 30},
		{5 * time.Minute, 10 * time.Minute, 3, 12},
		{10 * time.Minute, 10 * time.Minute, 2, 12},
		{15 * time.Minute, 15 * time.Minute, 2, 12},
		{20 * time.Minute, 20 * time.Minute, 2, 12},
		{30 * time.Minute, 30 * time.Minute, 2, 12},
		{time.Hour, time.Hour, 2, 12},
	}
	for _, tc := range tests {
		t.Run(tc.window.String(), func(t *testing.T) {
			c := Config{Window: tc.window}
			if err := c.Validate(); err != nil {
				t.Fatalf("defaults refuse window %s: %v", tc.window, err)
			}
			d := c.WithDefaults().Detectors
			if d.EnumEvery != tc.enumEvery || d.VolumeSpan != tc.volumeSpan || d.WarmupWindows != tc.warmupWindows {
				t.Errorf("enum_every %s, volume_span %d, warmup_windows %d; want %s, %d, %d",
					d.EnumEvery, d.VolumeSpan, d.WarmupWindows, tc.enumEvery, tc.volumeSpan, tc.warmupWindows)
			}
			if _, err := NewRules(c, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := New(c, nil, Options{}); err != nil {
				t.Fatal(err)
			}
		})
	}
	err := Config{Window: 30 * time.Minute, Detectors: DetectorsConfig{EnumEvery: 10 * time.Minute}}.Validate()
	if err == nil || !strings.Contains(err.Error(), "detect.detectors.enum_every") || !strings.Contains(err.Error(), "set it to 30m0s") {
		t.Errorf("enum_every 10m with a 30m window: %v; want a message naming enum_every and the value to set", err)
	}
	err = Config{Window: 7 * time.Minute}.Validate()
	if err == nil || !strings.Contains(err.Error(), "detect.window") {
		t.Errorf("window 7m: %v; want a message naming detect.window", err)
	}
}

// TestBulkSanctionedFlow: a marketer exports its list (about 310 records of
// name and e-mail) to the tenant's allow-listed mailing house once a day.
// Once that flow is established (calls within the bulk limit on
// warmup_days days), a larger call on it is judged against the limit
// added to the flow's largest call; anything else keeps the plain limit:
// a flow of too few days, a destination the allow-list does not name (or
// a tenant with no list), a category or store the flow never carried, a
// download with no destination, and calls over the limit, which never
// become the flow's habit.
func TestBulkSanctionedFlow(t *testing.T) {
	day0 := time.Date(2026, 1, 5, 14, 30, 0, 0, time.UTC)
	export := func(d int, recs uint64, mod func(e *models.Event)) models.Event {
		return ev("mkt1", models.ActorHuman, func(e *models.Event) {
			e.TS, e.Action, e.Records, e.Destination = day0.Add(time.Duration(d)*24*time.Hour), models.ActionExport, recs, "mailer.example"
			e.Actor.Role, e.SubjectID, e.Purpose = "marketing", "", "marketing"
			if mod != nil {
				mod(e)
			}
		})
	}
	habit := func(days int) []models.Event {
		var out []models.Event
		for d := range days {
			out = append(out, export(d, 300+uint64(7*d), nil))
		}
		return out
	}
	cfg := Config{Destinations: DestinationsConfig{Tenants: map[string][]string{"default": {"mailer.example"}}}}
	tests := []struct {
		name    string
		cfg     Config
		history []models.Event
		call    models.Event
		fire    bool
		limit   float64
	}{
		{"campaign day on an established flow", cfg, habit(3), export(3, 1062, nil), false, 0},
		{"the same call on a flow of two days", cfg, habit(2), export(2, 1062, nil), true, 1000},
		{"over the limit plus the flow's largest call", cfg, habit(3), export(3, 1400, nil), true, 1314},
		{"a bulk download (no destination)", cfg, habit(3), export(3, 1062, func(e *models.Event) { e.Destination = "" }), true, 1000},
		{"a destination the allow-list does not name", cfg, habit(3), export(3, 1062, func(e *models.Event) { e.Destination = "mailer-eu.example" }), true, 1000},
		{"no allow-list for the tenant", Config{}, habit(3), export(3, 1062, nil), true, 1000},
		{"a category the flow never carried", cfg, habit(3), export(3, 1062, func(e *models.Event) { e.Fields = []string{"name", "email", "phone"} }), true, 1000},
		{"a store the flow never carried", cfg, habit(3), export(3, 1062, func(e *models.Event) { e.Store = "payments" }), true, 1000},
		{"three days of calls over the limit are no habit", cfg,
			[]models.Event{export(0, 1500, nil), export(1, 1500, nil), export(2, 1500, nil)}, export(3, 1062, nil), true, 1000},
		{"three calls on one day are one day", cfg,
			[]models.Event{export(0, 300, nil), export(0, 310, func(e *models.Event) { e.TS = e.TS.Add(time.Hour) }),
				export(0, 320, func(e *models.Event) { e.TS = e.TS.Add(2 * time.Hour) })}, export(1, 1062, nil), true, 1000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewRules(tc.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range tc.history {
				r.Check(h.TS, []models.Event{h}, nil)
			}
			var bulk []models.Finding
			for _, f := range r.Check(tc.call.TS, []models.Event{tc.call}, nil) {
				if f.Detector == RuleBulkAccess {
					bulk = append(bulk, f)
				}
			}
			if fired := len(bulk) > 0; fired != tc.fire {
				t.Fatalf("bulk_access fired %v, want %v: %+v", fired, tc.fire, bulk)
			}
			if tc.fire && bulk[0].Evidence.Threshold != tc.limit {
				t.Errorf("limit %v, want %v (%s)", bulk[0].Evidence.Threshold, tc.limit, bulk[0].Summary)
			}
		})
	}
}
