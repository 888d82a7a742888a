package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// run generates cfg to the end and calls visit for each minute's batch with
// the generator's internal events (same order as the batch's lines).
func run(t testing.TB, cfg Config, visit func(g *Generator, b *Batch)) *Generator {
	t.Helper()
	g, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	var b Batch
	for g.Next(&b) {
		if len(b.Lines) != len(g.evs) {
			t.Fatalf("minute %s: %d lines for %d events", b.Minute, len(b.Lines), len(g.evs))
		}
		visit(g, &b)
	}
	return g
}

func TestDeterministicBySeed(t *testing.T) {
	cfg := Config{Seed: 7, Duration: 36 * time.Hour, Actors: 40, Attacks: AttackKinds, HardNegatives: true}
	digest := func(cfg Config) []byte {
		var all []byte
		g := run(t, cfg, func(_ *Generator, b *Batch) { all = append(all, b.Buf...) })
		for _, l := range append(g.Labels(), g.Negatives()...) {
			j, _ := json.Marshal(l)
			all = append(all, j...)
		}
		return all
	}
	a, b := digest(cfg), digest(cfg)
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatalf("same seed gave different output (%d vs %d bytes)", len(a), len(b))
	}
	cfg.Seed = 8
	if c := digest(cfg); bytes.Equal(a, c) {
		t.Fatal("different seeds gave identical output")
	}
}

// wire mirrors the hand-written encoding with encoding/json tags.
type wireAccess struct {
	EventID      string               `json:"event_id"`
	TS           time.Time            `json:"ts"`
	Tenant       string               `json:"tenant"`
	Actor        models.Actor         `json:"actor"`
	Action       models.Action        `json:"action"`
	Store        string               `json:"store"`
	Resource     models.Resource      `json:"resource"`
	SubjectID    string               `json:"subject_id,omitempty"`
	Records      uint64               `json:"records"`
	Bytes        uint64               `json:"bytes,omitempty"`
	Fields       []string             `json:"fields,omitempty"`
	Purpose      string               `json:"purpose,omitempty"`
	Conversation *models.Conversation `json:"conversation,omitempty"`
	Tool         string               `json:"tool,omitempty"`
	Result       models.Result        `json:"result"`
	Client       models.Client        `json:"client"`
	Destination  string               `json:"destination,omitempty"`
}

type wireConsent struct {
	Schema    string    `json:"schema"`
	EventID   string    `json:"event_id"`
	TS        time.Time `json:"ts"`
	Tenant    string    `json:"tenant"`
	SubjectID string    `json:"subject_id"`
	Purpose   string    `json:"purpose"`
	Granted   bool      `json:"granted"`
}

// marshalStd encodes e with encoding/json, the reference for the fast encoder.
func marshalStd(g *Generator, e *event, seq uint64) ([]byte, error) {
	id := string(g.idPrefix) + itoa(seq)
	ts := time.UnixMilli(e.ms).UTC()
	if e.consent {
		return json.Marshal(wireConsent{Schema: models.SchemaConsent, EventID: id, TS: ts, Tenant: g.w.tenants[e.tenant],
			SubjectID: customerID(e.subject), Purpose: e.purpose, Granted: e.granted})
	}
	w := wireAccess{EventID: id, TS: ts, Tenant: g.w.tenants[e.a.tenant],
		Actor:  models.Actor{ID: e.a.id, Type: roles[e.a.role].typ, Role: roles[e.a.role].name},
		Action: e.action, Store: e.st.store, Resource: models.Resource{Type: e.st.resType},
		Records: e.records, Bytes: e.bytes, Fields: e.fields.cats, Purpose: e.purpose, Tool: e.tool, Result: e.result,
		Client: models.Client{IP: e.client.ip, Country: e.client.country, UserAgent: e.client.ua}, Destination: e.dest}
	if e.a.role == roleVendor {
		w.Actor.Vendor = VendorName
	}
	if e.resID != 0 {
		w.Resource.ID = e.st.idPrefix + itoa(e.resID)
	}
	if e.subject >= 0 {
		w.SubjectID = customerID(e.subject)
	}
	if e.conv != 0 {
		w.Conversation = &models.Conversation{ID: "conv-" + itoa(uint64(e.conv))}
		if e.convSubject >= 0 {
			w.Conversation.SubjectID = customerID(e.convSubject)
		}
	}
	return json.Marshal(w)
}

func itoa(u uint64) string { return string(appendUint(nil, u)) }

func appendUint(b []byte, u uint64) []byte {
	var d [20]byte
	i := len(d)
	for {
		i--
		d[i] = byte('0' + u%10)
		u /= 10
		if u == 0 {
			break
		}
	}
	return append(b, d[i:]...)
}

func TestEncodingEqualsEncodingJSON(t *testing.T) {
	cfg := Config{Seed: 3, Duration: 30 * time.Hour, Actors: 60, Attacks: AttackKinds, HardNegatives: true}
	var n int
	run(t, cfg, func(g *Generator, b *Batch) {
		seq := g.seq - uint64(len(b.Lines))
		for i := range b.Lines {
			want, err := marshalStd(g, g.eventAt(i), seq+uint64(i))
			if err != nil {
				t.Fatal(err)
			}
			if got := b.Value(i); !bytes.Equal(got, want) {
				t.Fatalf("line differs from encoding/json:\n got %s\nwant %s", got, want)
			}
			n++
		}
	})
	if n < 10000 {
		t.Fatalf("only %d lines compared", n)
	}
}

func TestLinesDecodeAndAreOrdered(t *testing.T) {
	cfg := Config{Seed: 11, Duration: 20 * time.Hour, Actors: 40, Attacks: AttackKinds, HardNegatives: true, Compact: true}
	var access, consent int
	var last int64
	run(t, cfg, func(g *Generator, b *Batch) {
		for i, l := range b.Lines {
			v := b.Value(i)
			if l.UnixMilli < last {
				t.Fatalf("line %s out of order", v)
			}
			last = l.UnixMilli
			now := time.UnixMilli(l.UnixMilli).Add(time.Minute)
			switch models.SchemaOf(v) {
			case models.SchemaConsent:
				c, err := models.DecodeConsent(v, now, models.Limits{})
				if err != nil {
					t.Fatalf("consent %s: %v", v, err)
				}
				if c.TS.UnixMilli() != l.UnixMilli {
					t.Fatalf("consent ts %s, line says %d", c.TS, l.UnixMilli)
				}
				consent++
			default:
				e, err := models.DecodeAccess(v, now, models.Limits{})
				if err != nil {
					t.Fatalf("access %s: %v", v, err)
				}
				if e.Actor.ID != l.Key || e.TS.UnixMilli() != l.UnixMilli {
					t.Fatalf("decoded %s at %s, line says key %s at %d", e.Actor.ID, e.TS, l.Key, l.UnixMilli)
				}
				access++
			}
		}
	})
	if access < 20000 || consent < 100 {
		t.Fatalf("%d access and %d consent lines; want plenty of both", access, consent)
	}
}

// fullRun is the 14-day scenario suite the detectors are evaluated on,
// generated once per test binary and summarized.
type fullSummary struct {
	g *Generator
	// human events by local hour and by local weekday
	humanHour [24]int
	humanDay  [7]int
	dayCount  [7]int // number of each local weekday in range (per actor, approx by range)
	// per label: events by the label's actor inside its window
	inWindow map[string]int
	// bot events reading another customer than the conversation's, outside labelled windows
	strayBotReads int
	crossInLabel  map[string]int
	// per actor first and last event minute
	first, last map[string]int64
	access      int
	decoded     int
	decodeErrs  []string
	// normal (unlabelled) events that break the purpose policy, the vendor
	// contract or a withdrawn consent
	policyBreaches []string
	labelBreaches  map[string]int
	// records per hour-of-day for ETL
}

var full *fullSummary

func fullRun(t *testing.T) *fullSummary {
	t.Helper()
	if full != nil {
		return full
	}
	s := &fullSummary{labelBreaches: map[string]int{}, inWindow: map[string]int{}, crossInLabel: map[string]int{}, first: map[string]int64{}, last: map[string]int64{}}
	cfg := Config{Seed: 1, Actors: 120, Attacks: AttackKinds, HardNegatives: true}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	byActor := map[string][]Label{}
	for _, l := range append(slices.Clone(g.Labels()), g.Negatives()...) {
		byActor[l.ActorID] = append(byActor[l.ActorID], l)
	}
	withdrawn := map[uint64]bool{}
	var b Batch
	for g.Next(&b) {
		for i := range g.evs {
			if (s.access+i)%97 == 0 { // a sample of the 1.5 M lines through the real decoder
				v, now := b.Value(i), time.UnixMilli(b.Lines[i].UnixMilli).Add(time.Minute)
				var err error
				if b.Lines[i].Consent {
					_, err = models.DecodeConsent(v, now, models.Limits{})
				} else {
					_, err = models.DecodeAccess(v, now, models.Limits{})
				}
				if err != nil {
					s.decodeErrs = append(s.decodeErrs, fmt.Sprintf("%s: %v", v, err))
				}
				s.decoded++
			}
			e := g.eventAt(i)
			if e.consent {
				withdrawn[consentKey(e.tenant, slices.Index(consentPurposes, e.purpose), e.subject)] = !e.granted
				continue
			}
			s.access++
			a := e.a
			m := e.ms / 60000
			if _, ok := s.first[a.id]; !ok {
				s.first[a.id] = m
			}
			s.last[a.id] = m
			ts := time.UnixMilli(e.ms)
			for _, l := range byActor[a.id] {
				if !ts.Before(l.Start) && ts.Before(l.End) {
					s.inWindow[l.ID]++
				}
			}
			attacked := false
			bad := policyBreach(e, withdrawn)
			for _, l := range byActor[a.id] {
				if !strings.HasPrefix(l.Kind, NegativePrefix) && !ts.Before(l.Start) && ts.Before(l.End) {
					attacked = true
					if bad != "" {
						s.labelBreaches[l.ID]++
					}
				}
			}
			if !attacked && bad != "" {
				s.policyBreaches = append(s.policyBreaches, fmt.Sprintf("%s %s at %s: %s", a.id, e.st.store, ts.UTC(), bad))
			}
			if a.role == roleSupportEU || a.role == roleSupportUS {
				lt := ts.In(a.loc)
				s.humanHour[lt.Hour()]++
				s.humanDay[lt.Weekday()]++
			}
			if a.role == roleBot && e.subject >= 0 && e.subject != e.convSubject {
				labelled := false
				for _, l := range byActor[a.id] {
					if (l.Kind == KindBotCrossCustomer || l.Kind == KindConversationManyCustomers) && !ts.Before(l.Start) && ts.Before(l.End) {
						labelled = true
						s.crossInLabel[l.ID]++
					}
				}
				if !labelled {
					s.strayBotReads++
				}
			}
		}
	}
	s.g = g
	full = s
	return s
}

func TestFullRunDecodes(t *testing.T) {
	s := fullRun(t)
	if len(s.decodeErrs) > 0 || s.decoded < 10000 {
		t.Fatalf("%d of %d sampled lines fail to decode, first: %v", len(s.decodeErrs), s.decoded, s.decodeErrs[:min(3, len(s.decodeErrs))])
	}
}

// the brief's default purpose policy and vendor contract
var (
	policy = map[string][]string{
		"support":   {cEmail, cPhone, cAddr, cName, cOrder, cText},
		"billing":   {cEmail, cName, cAddr, cPay},
		"marketing": {cEmail, cName},
		"analytics": {cOrder},
		"training":  {cText},
	}
	vendorStores = []string{"crm", "orders", "transcripts"}
	vendorCats   = []string{cEmail, cPhone, cName, cAddr, cOrder, cText}
)

// policyBreach says what rule an event breaks, or "".
func policyBreach(e *event, withdrawn map[uint64]bool) string {
	if e.purpose != "fraud" {
		allowed, ok := policy[e.purpose]
		if !ok {
			return "unknown purpose " + e.purpose
		}
		for _, c := range e.fields.cats {
			if !slices.Contains(allowed, c) {
				return "category " + c + " not allowed for " + e.purpose
			}
		}
	}
	if pi := slices.Index(consentPurposes, e.purpose); pi >= 0 && e.subject >= 0 && withdrawn[consentKey(e.a.tenant, pi, e.subject)] {
		return "subject withdrew consent for " + e.purpose
	}
	if e.a.role == roleVendor {
		ts := time.UnixMilli(e.ms).UTC()
		if !slices.Contains(vendorStores, e.st.store) {
			return "vendor store"
		}
		for _, c := range e.fields.cats {
			if !slices.Contains(vendorCats, c) {
				return "vendor category " + c
			}
		}
		if ts.Hour() >= 12 || ts.Weekday() == time.Sunday {
			return "vendor outside contracted hours"
		}
	}
	return ""
}

func TestNormalTrafficKeepsPolicyContractAndConsent(t *testing.T) {
	s := fullRun(t)
	if len(s.policyBreaches) > 0 {
		t.Fatalf("%d unlabelled events break a rule, e.g. %v", len(s.policyBreaches), s.policyBreaches[:min(5, len(s.policyBreaches))])
	}
	for _, l := range s.g.Labels() {
		switch l.Kind {
		case KindPurposeViolation, KindConsentViolation, KindVendorOutOfScope:
			if s.labelBreaches[l.ID] == 0 {
				t.Errorf("label %s %s: no event in its window breaks the rule", l.ID, l.Kind)
			}
		}
	}
}

func TestSeasonality(t *testing.T) {
	s := fullRun(t)
	night := s.humanHour[0] + s.humanHour[1] + s.humanHour[2] + s.humanHour[3] + s.humanHour[4]
	day := s.humanHour[10] + s.humanHour[11] + s.humanHour[13] + s.humanHour[14] + s.humanHour[15]
	if night*20 > day {
		t.Errorf("human support events 00-05 local = %d, 10-16 local = %d: nights should be far quieter", night, day)
	}
	if s.humanHour[12]+s.humanHour[13] >= s.humanHour[10]+s.humanHour[11] {
		t.Logf("lunch hours %d vs morning %d", s.humanHour[12]+s.humanHour[13], s.humanHour[10]+s.humanHour[11])
	}
	// the range holds two of every weekday
	weekend := s.humanDay[time.Saturday] + s.humanDay[time.Sunday]
	weekday := s.humanDay[time.Tuesday] + s.humanDay[time.Thursday]
	if weekend*2 > weekday {
		t.Errorf("human events on Sat+Sun = %d, Tue+Thu = %d: weekends should be lighter", weekend, weekday)
	}
}

func TestBotsReadTheirOwnConversationsCustomer(t *testing.T) {
	s := fullRun(t)
	if s.strayBotReads != 0 {
		t.Errorf("%d bot tool calls read another customer outside labelled windows", s.strayBotReads)
	}
	for _, l := range s.g.Labels() {
		if l.Kind == KindBotCrossCustomer || l.Kind == KindConversationManyCustomers {
			if s.crossInLabel[l.ID] == 0 {
				t.Errorf("label %s (%s) has no cross-customer read", l.ID, l.Kind)
			}
		}
	}
}

func TestEveryScenarioPresentInRange(t *testing.T) {
	s := fullRun(t)
	g := s.g
	kinds := map[string]int{}
	for _, l := range g.Labels() {
		kinds[l.Kind]++
		if l.Start.Before(g.Start()) || l.End.After(g.End()) || !l.End.After(l.Start) {
			t.Errorf("label %+v outside the range %s..%s", l, g.Start(), g.End())
		}
		if s.inWindow[l.ID] == 0 {
			t.Errorf("label %s %s %s: no event by the actor in its window", l.ID, l.Kind, l.ActorID)
		}
	}
	for _, k := range AttackKinds {
		if kinds[k] < 3 {
			t.Errorf("attack kind %s occurs %d times, want at least 3", k, kinds[k])
		}
	}
	negs := map[string]int{}
	for _, l := range g.Negatives() {
		negs[l.Kind]++
		if l.Start.Before(g.Start()) || l.End.After(g.End()) {
			t.Errorf("negative %+v outside the range", l)
		}
	}
	for _, k := range NegativeKinds {
		if negs[NegativePrefix+k] == 0 {
			t.Errorf("hard negative %s missing", k)
		}
	}
	if len(g.Skipped()) != 0 {
		t.Errorf("skipped: %v", g.Skipped())
	}
}

func TestScenarioShapes(t *testing.T) {
	s := fullRun(t)
	g := s.g
	byID := map[string]*actor{}
	for _, a := range g.w.actors {
		byID[a.id] = a
	}
	for _, l := range g.Negatives() {
		a := byID[l.ActorID]
		switch l.Kind {
		case NegativePrefix + NegNewHire:
			if first := time.Unix(s.first[a.id]*60, 0); first.Before(l.Start.Add(-time.Hour)) {
				t.Errorf("new hire %s active at %s, before its start %s", a.id, first, l.Start)
			}
		case NegativePrefix + NegBackFromLeave:
			for m := a.offFrom; m < a.offTo; m += 60 {
				if g.w.rateAt(a, m) != 0 {
					t.Fatalf("%s works during its leave", a.id)
				}
			}
		}
	}
	for _, l := range g.Labels() {
		if l.Kind != KindDormantWakeup {
			continue
		}
		a := byID[l.ActorID]
		silence := l.Start.Sub(time.Unix(a.activeUntil*60, 0))
		if silence < 10*24*time.Hour {
			t.Errorf("dormant %s silent only %s before waking", a.id, silence)
		}
	}
}

func TestParseAttacks(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int
		wantErr bool
	}{
		{"all", len(AttackKinds), false},
		{"none", 0, false},
		{"", 0, false},
		{"bulk_export, denied_burst,bulk_export", 2, false},
		{"bulk_export,nope", 0, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseAttacks(tc.in)
			if (err != nil) != tc.wantErr || len(got) != tc.want {
				t.Fatalf("ParseAttacks(%q) = %v, %v", tc.in, got, err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for name, c := range map[string]Config{
		"bad tenant":  {Tenants: []string{"Bad Tenant"}},
		"bad attack":  {Attacks: []string{"teleport"}},
		"many actors": {Actors: 1 << 20},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(c); err == nil {
				t.Fatal("New accepted a bad config")
			}
		})
	}
}

func BenchmarkGenerate(b *testing.B) {
	cfg := Config{Seed: 1, Duration: 2 * 24 * time.Hour, Attacks: AttackKinds}
	var n, bytes uint64
	b.ResetTimer()
	for range b.N {
		g, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		var bt Batch
		for g.Next(&bt) {
			n += uint64(len(bt.Lines))
			bytes += uint64(len(bt.Buf))
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(bytes)/float64(n), "bytes/event")
}

// TestShapeOptions: NoVendors leaves no vendor actor, Zones puts a
// tenant's staff in its zone's country, SparseShare makes support agents
// who work one weekday.
func TestShapeOptions(t *testing.T) {
	cfg := Config{Seed: 2, Actors: 60, Duration: 14 * 24 * time.Hour, Tenants: []string{"a", "b", "c"},
		Zones: []string{"Europe/Berlin", "America/Los_Angeles", "Asia/Tokyo"}, NoVendors: true, SparseShare: 0.5}
	vendors := 0
	countries := map[string]map[string]bool{}
	days := map[string]map[time.Weekday]bool{}
	run(t, cfg, func(g *Generator, b *Batch) {
		for i := range b.Lines {
			if b.Lines[i].Consent {
				continue
			}
			e, err := models.DecodeAccess(b.Value(i), b.Minute.Add(time.Hour), models.Limits{MaxAge: 1 << 62})
			if err != nil {
				t.Fatal(err)
			}
			if e.Actor.Vendor != "" {
				vendors++
			}
			if e.Actor.Type == models.ActorHuman {
				if countries[e.Tenant] == nil {
					countries[e.Tenant] = map[string]bool{}
				}
				countries[e.Tenant][e.Client.Country] = true
			}
			if strings.HasPrefix(e.Actor.Role, "support") {
				if days[e.Actor.ID] == nil {
					days[e.Actor.ID] = map[time.Weekday]bool{}
				}
				days[e.Actor.ID][e.TS.Weekday()] = true
			}
		}
	})
	if vendors != 0 {
		t.Errorf("%d vendor events with NoVendors", vendors)
	}
	for tenant, want := range map[string]string{"a": "DE", "b": "US", "c": "JP"} {
		if len(countries[tenant]) != 1 || !countries[tenant][want] {
			t.Errorf("tenant %s: staff countries %v, want only %s", tenant, countries[tenant], want)
		}
	}
	weekly := 0
	for _, d := range days {
		if len(d) == 1 {
			weekly++
		}
	}
	if weekly < 3 {
		t.Errorf("%d support agents work one weekday (of %d) with SparseShare 0.5", weekly, len(days))
	}
	if err := (Config{SparseShare: 2}).Validate(); err == nil {
		t.Error("SparseShare 2 accepted")
	}
}

// TestLabelStartsAtFirstAttackEvent: a label of an attack that only adds
// events starts at its first event (truncated to the second), not at a
// quiet lead-in before it.
func TestLabelStartsAtFirstAttackEvent(t *testing.T) {
	cfg := Config{Seed: 4, Actors: 40, Duration: 5 * 24 * time.Hour, Attacks: []string{KindBulkExport, KindPurposeViolation, KindDeniedBurst}}
	seen := map[string][]time.Time{}
	g := run(t, cfg, func(g *Generator, b *Batch) {
		for i := range b.Lines {
			if !b.Lines[i].Consent {
				seen[b.Lines[i].Key] = append(seen[b.Lines[i].Key], time.UnixMilli(b.Lines[i].UnixMilli).UTC())
			}
		}
	})
	if len(g.Labels()) == 0 {
		t.Fatal("no labels")
	}
	for _, l := range g.Labels() {
		at := false
		for _, ts := range seen[l.ActorID] {
			at = at || ts.Truncate(time.Second).Equal(l.Start)
		}
		if !at {
			t.Errorf("label %s (%s, %s) starts at %s, where the actor has no event", l.ID, l.Kind, l.ActorID, l.Start)
		}
	}
}

// TestNoPayloadPII: the simulator's events carry data categories, never
// data: no free string field looks like an e-mail, phone, card number, SSN
// or IBAN, so ingest (ingest.pii) stores every one of them.
func TestNoPayloadPII(t *testing.T) {
	cfg := Config{Seed: 7, Duration: 36 * time.Hour, Actors: 40, Attacks: AttackKinds, HardNegatives: true}
	n := 0
	run(t, cfg, func(_ *Generator, b *Batch) {
		for i := range b.Lines {
			v := b.Value(i)
			if models.SchemaOf(v) != models.SchemaAccess {
				continue
			}
			e, err := models.DecodeAccess(v, b.Minute, models.Limits{AllowPII: true, MaxFuture: 1000 * time.Hour, MaxAge: 1 << 62})
			if err != nil {
				t.Fatalf("%v: %s", err, v)
			}
			if h, ok := models.FindPII(&e); ok {
				t.Fatalf("%s looks like %s: %s", h.Field, h.Kind, v)
			}
			n++
		}
	})
	if n == 0 {
		t.Fatal("no access events generated")
	}
}

// TestFirstTimeAttacksOncePerActor: an attack whose premise is something
// new to the actor (a sensitive category, a client country) is never
// planned twice on one actor: the second would be labelled an anomaly its
// first had already taught the actor. Small worlds (20 actors, one fraud
// analyst) made it happen: seed 2 of the matrix's low-volume shape put
// both rare_sensitive_category attacks on the only fraud analyst.
func TestFirstTimeAttacksOncePerActor(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		// the matrix's office low-volume shape
		g, err := New(Config{Seed: seed, Start: time.Date(2026, 10, 19, 0, 0, 0, 0, time.UTC), Duration: 14 * 24 * time.Hour,
			Actors: 20, Tenants: []string{"default"}, Attacks: AttackKinds, AttacksPerKind: 2, HardNegatives: true, RateScale: 0.2})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[[2]string]string{}
		for _, l := range g.Labels() {
			if !firstTimeKinds[l.Kind] {
				continue
			}
			k := [2]string{l.Kind, l.ActorID}
			if prev, ok := seen[k]; ok {
				t.Errorf("seed %d: %s on %s twice (%s and %s)", seed, l.Kind, l.ActorID, prev, l.ID)
			}
			seen[k] = l.ID
		}
	}
}

// TestPayloadPII (issue 14 item 4): with PayloadPII, every event ingest
// would reject as pii_in_payload lies in a payload_pii label of its tenant
// naming its store, with the kind the window writes; every label has such
// events; the rest of the traffic is clean.
func TestPayloadPII(t *testing.T) {
	cfg := Config{Seed: 3, Duration: 7 * 24 * time.Hour, Actors: 40, Attacks: AttackKinds, HardNegatives: true, PayloadPII: true}
	var labels []Label
	hits := map[string]int{} // label id -> events
	n := 0
	run(t, cfg, func(g *Generator, b *Batch) {
		if labels == nil {
			for _, l := range g.Labels() {
				if l.Kind == KindPayloadPII {
					labels = append(labels, l)
				}
			}
		}
		for i := range b.Lines {
			v := b.Value(i)
			if models.SchemaOf(v) != models.SchemaAccess {
				continue
			}
			e, err := models.DecodeAccess(v, b.Minute, models.Limits{AllowPII: true, MaxFuture: 1000 * time.Hour, MaxAge: 1 << 62})
			if err != nil {
				t.Fatalf("%v: %s", err, v)
			}
			h, ok := models.FindPII(&e)
			if !ok {
				continue
			}
			n++
			in := ""
			for _, l := range labels {
				if l.Tenant == e.Tenant && l.ActorID == e.Store && !e.TS.Before(l.Start) && e.TS.Before(l.End) {
					in = l.ID
				}
			}
			want := models.PIICard
			if e.Store == "crm" {
				want = models.PIIEmail
			}
			if in == "" || h.Field != "resource.id" || h.Kind != want {
				t.Fatalf("%s looks like %s, in label %q (want resource.id, %s, in a label): %s", h.Field, h.Kind, in, want, v)
			}
			hits[in]++
		}
	})
	if len(labels) != 2*2 { // two windows, two tenants
		t.Fatalf("%d payload_pii labels, want 4: %+v", len(labels), labels)
	}
	for _, l := range labels {
		if hits[l.ID] == 0 {
			t.Errorf("label %s (%s %s %s..%s): no event carries personal data", l.ID, l.Tenant, l.ActorID, l.Start, l.End)
		}
	}
	t.Logf("%d events with payload PII: %v", n, hits)
}

// TestShareOutsideAllowlist (issue 14 item 2): the attack is in the first
// tenant (the one whose allow-list sim.Destinations is), by its labelled
// actor inside its label, one share to a destination off the list that
// nobody else uses.
func TestShareOutsideAllowlist(t *testing.T) {
	cfg := Config{Seed: 5, Duration: 8 * 24 * time.Hour, Actors: 60, Tenants: []string{"default", "brand-b", "brand-c"},
		Attacks: AttackKinds, HardNegatives: true}
	var labels []Label
	shares := map[string][]models.Event{} // destination -> shares
	run(t, cfg, func(g *Generator, b *Batch) {
		labels = g.Labels()
		for i := range b.Lines {
			v := b.Value(i)
			if models.SchemaOf(v) != models.SchemaAccess {
				continue
			}
			e, err := models.DecodeAccess(v, b.Minute, models.Limits{MaxFuture: 1000 * time.Hour, MaxAge: 1 << 62})
			if err != nil {
				t.Fatalf("%v: %s", err, v)
			}
			if e.Destination != "" && !slices.Contains(Destinations, e.Destination) {
				shares[e.Destination] = append(shares[e.Destination], e)
			}
		}
	})
	n := 0
	for _, l := range labels {
		if l.Kind != KindShareOutsideAllowlist {
			continue
		}
		n++
		if l.Tenant != "default" {
			t.Errorf("label %s in tenant %s: the first tenant alone has an allow-list", l.ID, l.Tenant)
		}
		found := 0
		for _, es := range shares {
			for _, e := range es {
				if e.Actor.ID == l.ActorID && !e.TS.Before(l.Start) && !e.TS.After(l.End) && strings.Contains(e.Destination, "-") {
					if len(es) != 1 || e.Tenant != l.Tenant {
						t.Errorf("label %s: %s used %d times (tenant %s), want once, in the label", l.ID, e.Destination, len(es), e.Tenant)
					}
					found++
				}
			}
		}
		if found != 1 {
			t.Errorf("label %s (%s, %s..%s): %d shares off the list by its actor, want 1", l.ID, l.ActorID, l.Start, l.End, found)
		}
	}
	if n == 0 {
		t.Fatal("no share_outside_allowlist attack planned")
	}
}
