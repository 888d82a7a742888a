package report

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// fakeAlerts is a fixed alert history; it records the range asked for.
type fakeAlerts struct {
	recs     []AlertRecord
	from, to time.Time
}

func (f *fakeAlerts) AlertRecords(_ context.Context, tenants []string, from, to time.Time) ([]AlertRecord, error) {
	f.from, f.to = from, to
	var out []AlertRecord
	for _, r := range f.recs {
		if !r.Alert.FirstSeen.Before(from) && r.Alert.FirstSeen.Before(to) && (len(tenants) == 0 || slices.Contains(tenants, r.Alert.Tenant)) {
			out = append(out, r)
		}
	}
	return out, nil
}

// simulatedWeek is week 2026-W47: events of four actors in ClickHouse, and
// the alerts raised on them plus a tail of earlier weeks for the trend.
func simulatedWeek(t *testing.T) (*store.Store, *fakeAlerts, Week) {
	t.Helper()
	s := storetest.New(t)
	w := Week{2026, 47}
	mon := w.Start()
	var evs []models.Event
	add := func(id string, ts time.Time, actor models.Actor, action models.Action, st, subject string, records uint64, purpose string, fields ...string) {
		evs = append(evs, models.Event{EventID: id, TS: ts, Tenant: "retail", Actor: actor, Action: action, Store: st,
			Resource: models.Resource{Type: "record"}, SubjectID: subject, Records: records, Fields: fields, Purpose: purpose, Result: models.ResultAllowed})
	}
	agent := models.Actor{ID: "agent-17", Type: models.ActorHuman, Role: "support"}
	vendor := models.Actor{ID: "acme-ana", Type: models.ActorVendor, Vendor: "acme-bpo"}
	bot := models.Actor{ID: "bot-returns", Type: models.ActorBot}
	svc := models.Actor{ID: "svc-analytics", Type: models.ActorService}
	for d := range 7 {
		day := mon.AddDate(0, 0, d)
		for i := range 20 {
			add(fmt.Sprintf("n-%d-%d", d, i), day.Add(9*time.Hour+time.Duration(i)*time.Minute), agent, models.ActionRead, "crm", fmt.Sprintf("c%03d", i), 1, "support", "email", "name")
		}
	}
	// Tuesday 02:00-02:30: agent-17 enumerates 120 customers' payment data.
	for i := range 120 {
		add(fmt.Sprintf("x-%d", i), mon.AddDate(0, 0, 1).Add(2*time.Hour+time.Duration(i)*15*time.Second), agent, models.ActionRead, "payments", fmt.Sprintf("c%03d", i), 1, "support", "payment", "name")
	}
	// Thursday 15:00: the vendor exports transcripts outside its hours.
	add("v-1", mon.AddDate(0, 0, 3).Add(15*time.Hour), vendor, models.ActionExport, "transcripts", "c500", 400, "support", "transcript_text")
	add("v-2", mon.AddDate(0, 0, 3).Add(15*time.Hour+time.Minute), vendor, models.ActionRead, "crm", "c501", 1, "support", "email", "dob")
	// Saturday: the analytics service reads order history of customers who withdrew consent.
	for i := range 5 {
		add(fmt.Sprintf("a-%d", i), mon.AddDate(0, 0, 5).Add(11*time.Hour+time.Duration(i)*time.Minute), svc, models.ActionRead, "orders", fmt.Sprintf("c6%02d", i), 3, "analytics", "order_history")
	}
	// Sunday: the returns bot reads another customer's address (purpose support, category fine: false positive later).
	add("b-1", mon.AddDate(0, 0, 6).Add(20*time.Hour), bot, models.ActionRead, "crm", "c700", 1, "support", "address")
	// Third parties: on Wednesday agent-17 shares two customers with
	// acme-analytics (100 records; 50 the week before) and marketing
	// exports its mailing list to a new mailer; old-partner got 10 records
	// the week before and nothing now; a denied share does not count.
	mkt := models.Actor{ID: "mkt-2", Type: models.ActorHuman, Role: "marketing"}
	share := func(id string, ts time.Time, actor models.Actor, action models.Action, dest, subject string, records uint64, res models.Result, fields ...string) {
		evs = append(evs, models.Event{EventID: id, TS: ts, Tenant: "retail", Actor: actor, Action: action, Store: "crm",
			Resource: models.Resource{Type: "customer_profile"}, SubjectID: subject, Records: records, Fields: fields, Purpose: "support",
			Result: res, Destination: dest})
	}
	wed10, prevWed10 := mon.AddDate(0, 0, 2).Add(10*time.Hour), mon.AddDate(0, 0, -5).Add(10*time.Hour)
	share("s-1", wed10, agent, models.ActionShare, "acme-analytics.example", "c001", 40, models.ResultAllowed, "email", "name")
	share("s-2", wed10.Add(time.Minute), agent, models.ActionShare, "acme-analytics.example", "c002", 60, models.ResultAllowed, "email")
	share("s-3", wed10.Add(2*time.Minute), mkt, models.ActionExport, "mailer.example", "", 300, models.ResultAllowed, "email")
	share("s-4", wed10.Add(3*time.Minute), agent, models.ActionShare, "mailer.example", "c004", 999, models.ResultDenied, "email")
	share("p-1", prevWed10, agent, models.ActionShare, "acme-analytics.example", "c003", 50, models.ResultAllowed, "email")
	share("p-2", prevWed10.Add(time.Minute), agent, models.ActionShare, "old-partner.example", "c003", 10, models.ResultAllowed, "phone")
	if err := s.InsertEvents(t.Context(), evs, mon); err != nil {
		t.Fatal(err)
	}
	alert := func(id, det string, actor models.Actor, sev models.Severity, st models.AlertStatus, first, last time.Time, findings int, ack, res time.Duration, summary string) AlertRecord {
		r := AlertRecord{Alert: models.Alert{ID: id, Detector: det, Tenant: "retail", ActorID: actor.ID, ActorType: actor.Type, Severity: sev, Status: st,
			FirstSeen: first, LastSeen: last, Findings: findings,
			Latest: models.Finding{Detector: det, ActorVendor: actor.Vendor, WindowStart: first, WindowEnd: last, Summary: summary}}}
		if ack > 0 {
			r.AckedAt = first.Add(ack)
		}
		if res > 0 {
			r.ResolvedAt = first.Add(res)
		}
		return r
	}
	// Risk scores detection recorded: agent-17 peaks on Tuesday (a higher
	// score the week before must not count), the vendor user on Thursday,
	// the returns bot (whose alert was a false positive) on Sunday; the
	// analytics service has none, so it falls back to its alert count.
	risk := []store.ActorRisk{
		{TS: w.Add(-1).Start().Add(30 * time.Hour), Tenant: "retail", ActorID: "agent-17", ActorType: "human", Score: 99, Findings: 9, TopDetector: "volume_spike", MaxSeverity: models.SeverityCritical},
		{TS: mon.AddDate(0, 0, 1).Add(3 * time.Hour), Tenant: "retail", ActorID: "agent-17", ActorType: "human", Score: 41.7, Findings: 6, TopDetector: "enumeration", MaxSeverity: models.SeverityCritical},
		{TS: mon.AddDate(0, 0, 2).Add(3 * time.Hour), Tenant: "retail", ActorID: "agent-17", ActorType: "human", Score: 20.8, Findings: 6, TopDetector: "enumeration", MaxSeverity: models.SeverityCritical},
		{TS: mon.AddDate(0, 0, 3).Add(16 * time.Hour), Tenant: "retail", ActorID: "acme-ana", ActorType: "vendor", Score: 9.5, Findings: 3, TopDetector: "vendor_scope", MaxSeverity: models.SeverityHigh},
		{TS: mon.AddDate(0, 0, 6).Add(21 * time.Hour), Tenant: "retail", ActorID: "bot-returns", ActorType: "bot", Score: 3.4, Findings: 1, TopDetector: "cross_customer", MaxSeverity: models.SeverityHigh},
	}
	if err := s.InsertActorRisk(t.Context(), risk); err != nil {
		t.Fatal(err)
	}
	tue2 := mon.AddDate(0, 0, 1).Add(2 * time.Hour)
	thu15 := mon.AddDate(0, 0, 3).Add(15 * time.Hour)
	sat11 := mon.AddDate(0, 0, 5).Add(11 * time.Hour)
	sun20 := mon.AddDate(0, 0, 6).Add(20 * time.Hour)
	recs := []AlertRecord{
		alert("al-1", "enumeration", agent, models.SeverityCritical, models.StatusEscalated, tue2, tue2.Add(30*time.Minute), 4, 6*time.Minute, 0, "agent-17 read 120 customers in 30 min (baseline 20/day)"),
		alert("al-2", "off_hours", agent, models.SeverityMedium, models.StatusAcknowledged, tue2.Add(time.Minute), tue2.Add(30*time.Minute), 2, 20*time.Minute, 0, "agent-17 active at 02:00, never before"),
		alert("al-3", "vendor_scope", vendor, models.SeverityHigh, models.StatusResolved, thu15, thu15.Add(2*time.Minute), 2, 12*time.Minute, 3*time.Hour, "acme-ana exported transcripts at 15:00, outside 00:00-12:00"),
		alert("al-4", "consent_withdrawn", svc, models.SeverityHigh, models.StatusOpen, sat11, sat11.Add(5*time.Minute), 5, 0, 0, "svc-analytics read 5 customers who withdrew analytics consent"),
		alert("al-5", "purpose_category", vendor, models.SeverityMedium, models.StatusResolved, thu15.Add(time.Minute), thu15.Add(2*time.Minute), 1, 30*time.Minute, 90*time.Minute, "dob is not allowed for purpose support"),
		alert("al-6", "cross_customer", bot, models.SeverityHigh, models.StatusFalsePositive, sun20, sun20.Add(time.Minute), 1, 4*time.Minute, 4*time.Minute, "bot-returns read a customer other than the conversation's"),
		alert("al-7", "volume_spike", svc, models.SeverityLow, models.StatusResolved, sat11, sat11.Add(10*time.Minute), 1, time.Hour, 2*time.Hour, "svc-analytics 3x its usual Saturday volume"),
	}
	for wk := 1; wk <= 8; wk++ { // earlier weeks: a declining tail, one alert per week and severity rotating
		ws := w.Add(-wk).Start().Add(10 * time.Hour)
		for i := range 10 - wk {
			recs = append(recs, alert(fmt.Sprintf("old-%d-%d", wk, i), "volume_spike", agent, models.Severity(i%5), models.StatusResolved, ws.Add(time.Duration(i)*time.Hour), ws.Add(time.Duration(i)*time.Hour+time.Minute), 1, time.Hour, 2*time.Hour, "old"))
		}
	}
	return s, &fakeAlerts{recs: recs}, w
}

func TestWeeklyGolden(t *testing.T) {
	s, alerts, w := simulatedWeek(t)
	r := &Reporter{Alerts: alerts, Events: s, Risk: s, Shares: s}
	now := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	sum, err := r.Weekly(t.Context(), w, now)
	if err != nil {
		t.Fatal(err)
	}
	if !alerts.from.Equal(w.Add(-7).Start()) || !alerts.to.Equal(w.End()) {
		t.Fatalf("asked alerts for %s..%s, want 8 weeks", alerts.from, alerts.to)
	}
	rd, err := NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []Format{FormatMarkdown, FormatJSON, FormatHTML} {
		t.Run(string(f), func(t *testing.T) {
			var buf bytes.Buffer
			if err := rd.Render(&buf, sum, f); err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("testdata", "weekly-2026-W47."+string(f)), buf.Bytes())
		})
	}
	t.Run("numbers", func(t *testing.T) {
		// Hand-counted from the simulated week.
		if sum.Alerts != 7 || sum.Trend[6].Total != 9 || sum.Trend[7].Total != 7 || len(sum.Trend) != 8 {
			t.Fatalf("alerts %d trend %+v", sum.Alerts, sum.Trend)
		}
		// Flagged windows (false positive excluded): agent-17's 120 payment reads, the vendor's 2 customers, the service's 5.
		if sum.Exposure.Subjects != 127 || sum.Exposure.SensitiveSubjects() != 120 {
			t.Fatalf("exposure %+v", sum.Exposure)
		}
		if len(sum.ConsentViolations) != 1 || len(sum.PurposeViolations) != 1 || len(sum.VendorViolations) != 1 {
			t.Fatalf("violations %d %d %d", len(sum.ConsentViolations), len(sum.PurposeViolations), len(sum.VendorViolations))
		}
		// agent-17 and the vendor user by their highest risk score of the
		// week, the analytics service by its alerts (high 7x5 + low 1x1),
		// the returns bot by its risk score alone (its alert was a false positive).
		var top []string
		for _, a := range sum.TopActors {
			top = append(top, fmt.Sprintf("%s=%.1f/%s/%d", a.ActorID, a.Score, a.ScoreSource, a.Alerts))
		}
		if want := []string{"agent-17=41.7/risk/2", "svc-analytics=36.0/alerts/2", "acme-ana=9.5/risk/2", "bot-returns=3.4/risk/0"}; !slices.Equal(top, want) {
			t.Fatalf("top actors %v, want %v", top, want)
		}
		if sum.RiskScored != 3 || sum.AlertScored != 1 || sum.TopActors[2].Vendor != "acme-bpo" {
			t.Fatalf("scored %d by risk, %d by alerts; %+v", sum.RiskScored, sum.AlertScored, sum.TopActors[2])
		}
		if len(sum.TopVendors) != 1 || sum.TopVendors[0].Vendor != "acme-bpo" || sum.TopVendors[0].Score != 9.5 || sum.TopVendors[0].Alerts != 2 {
			t.Fatalf("top vendors %+v", sum.TopVendors)
		}
		// ack: 6+20+12+30+4+60 = 132 min / 6 = 22 min; resolve: 180+90+4+120 = 394/4 = 98.5 min
		if sum.TimeToAcknowledge.N != 6 || sum.TimeToAcknowledge.MeanSeconds != 22*60 || sum.TimeToResolve.MeanSeconds != 98.5*60 {
			t.Fatalf("timings %+v %+v", sum.TimeToAcknowledge, sum.TimeToResolve)
		}
		if sum.Noise[0].Detector != "cross_customer" || sum.Noise[0].Rate != 1 {
			t.Fatalf("noise %+v", sum.Noise)
		}
		var shared []string
		for _, d := range sum.Shared {
			shared = append(shared, fmt.Sprintf("%s=%d/%d customers/%s/%s", d.Destination, d.Records, d.Customers, d.ChangeText(), strings.Join(d.Categories, "+")))
		}
		if want := []string{"mailer.example=300/0 customers/new/email", "acme-analytics.example=100/2 customers/+100%/email+name",
			"old-partner.example=0/0 customers/-100%/"}; !slices.Equal(shared, want) {
			t.Fatalf("shared %v, want %v", shared, want)
		}
		if !strings.HasPrefix(sum.Paragraph, "In week 2026-W47 (Mon 16 Nov to Sun 22 Nov 2026) chatwarden raised 7 alerts (1 critical, 3 high), down 22% on the previous week's 9.") {
			t.Fatalf("paragraph: %s", sum.Paragraph)
		}
	})
}

// TestWeeklyWithoutRisk: with no risk source every actor is scored by its
// severity-weighted alert count, as before detection recorded risk.
func TestWeeklyWithoutRisk(t *testing.T) {
	s, alerts, w := simulatedWeek(t)
	sum, err := (&Reporter{Alerts: alerts, Events: s}).Weekly(t.Context(), w, time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	var top []string
	for _, a := range sum.TopActors {
		top = append(top, fmt.Sprintf("%s=%.0f/%s", a.ActorID, a.Score, a.ScoreSource))
	}
	// enumeration critical 15x4 + off_hours medium 3x2; consent high 7x5 + volume low 1x1; vendor_scope high 7x2 + purpose medium 3x1.
	if want := []string{"agent-17=66/alerts", "svc-analytics=36/alerts", "acme-ana=17/alerts"}; !slices.Equal(top, want) || sum.RiskScored != 0 || sum.AlertScored != 3 {
		t.Fatalf("top actors %v (risk %d, alerts %d), want %v", top, sum.RiskScored, sum.AlertScored, want)
	}
	if sum.TopVendors[0].Score != 17 || !strings.Contains(sum.Paragraph, "The riskiest actor was agent-17 with 2 alerts.") {
		t.Fatalf("vendor %+v paragraph %s", sum.TopVendors[0], sum.Paragraph)
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the golden file (run with -update after checking):\n%s", path, firstDiff(string(want), string(got)))
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, x, y)
		}
	}
	return ""
}

// TestWeeklyForTenants (issue 10 item 8): a summary for a tenant-limited
// reader covers only their tenants. With a second tenant's events, vendor,
// risk scores and alerts added to the simulated week, retail's summary is
// byte for byte the golden one (retail alone); bank's names no retail
// actor, vendor, alert or volume; the summary of every tenant has both.
func TestWeeklyForTenants(t *testing.T) {
	s, alerts, w := simulatedWeek(t)
	mon := w.Start()
	bankVendor := models.Actor{ID: "bank-vera", Type: models.ActorVendor, Vendor: "bank-bpo"}
	var evs []models.Event
	for i := range 30 {
		evs = append(evs, models.Event{EventID: fmt.Sprintf("bank-%d", i), TS: mon.AddDate(0, 0, 2).Add(14*time.Hour + time.Duration(i)*time.Minute),
			Tenant: "bank", Actor: bankVendor, Action: models.ActionExport, Store: "payments", Resource: models.Resource{Type: "record"},
			SubjectID: fmt.Sprintf("b%03d", i), Records: 50, Fields: []string{"payment"}, Purpose: "support", Result: models.ResultAllowed,
			Destination: "bank-partner.example"}) // retail's "data shared with third parties" must not show it
	}
	if err := s.InsertEvents(t.Context(), evs, mon); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertActorRisk(t.Context(), []store.ActorRisk{{TS: mon.AddDate(0, 0, 2).Add(15 * time.Hour), Tenant: "bank",
		ActorID: "bank-vera", ActorType: "vendor", Score: 500, Findings: 3, TopDetector: "vendor_scope", MaxSeverity: models.SeverityCritical}}); err != nil {
		t.Fatal(err)
	}
	wed14 := mon.AddDate(0, 0, 2).Add(14 * time.Hour)
	alerts.recs = append(alerts.recs, AlertRecord{Alert: models.Alert{ID: "bank-1", Detector: "vendor_scope", Tenant: "bank",
		ActorID: "bank-vera", ActorType: models.ActorVendor, Severity: models.SeverityCritical, Status: models.StatusOpen,
		FirstSeen: wed14, LastSeen: wed14.Add(30 * time.Minute), Findings: 3,
		Latest: models.Finding{Detector: "vendor_scope", ActorVendor: "bank-bpo", WindowStart: wed14, WindowEnd: wed14.Add(30 * time.Minute), Summary: "bank-vera exported payments"}}})
	r := &Reporter{Alerts: alerts, Events: s, Risk: s, Shares: s}
	now := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)

	retail, err := r.WeeklyFor(t.Context(), w, []string{"retail"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(retail.Tenants, []string{"retail"}) {
		t.Fatalf("retail summary covers %v", retail.Tenants)
	}
	rd, err := NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	var md bytes.Buffer
	if err := rd.Render(&md, retail, FormatMarkdown); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "\nTenants: retail only.\n") {
		t.Errorf("the markdown does not say which tenants it covers:\n%.300s", md.String())
	}
	retail.Tenants = nil
	var buf bytes.Buffer
	if err := rd.Render(&buf, retail, FormatJSON); err != nil {
		t.Fatal(err)
	}
	golden(t, filepath.Join("testdata", "weekly-2026-W47.json"), buf.Bytes()) // never -update from here: compare only
	if *update {
		t.Fatal("run -update without TestWeeklyForTenants")
	}

	bank, err := r.WeeklyFor(t.Context(), w, []string{"bank"}, now)
	if err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	if err := rd.Render(&buf, bank, FormatJSON); err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"retail", "agent-17", "acme", "svc-analytics", "bot-returns", "al-"} {
		if strings.Contains(buf.String(), leak) {
			t.Errorf("bank's summary holds %q", leak)
		}
	}
	var vol uint64
	for _, d := range bank.Volume {
		vol += d.Events
	}
	if bank.Alerts != 1 || len(bank.TopActors) != 1 || bank.TopActors[0].ActorID != "bank-vera" || len(bank.TopVendors) != 1 ||
		bank.TopVendors[0].Vendor != "bank-bpo" || vol != 30 || bank.Exposure.Subjects != 30 || bank.Trend[6].Total != 0 {
		t.Fatalf("bank summary: %d alerts, top %+v, vendors %+v, volume %d, exposure %+v, trend %+v",
			bank.Alerts, bank.TopActors, bank.TopVendors, vol, bank.Exposure, bank.Trend)
	}

	all, err := r.Weekly(t.Context(), w, now)
	if err != nil {
		t.Fatal(err)
	}
	if all.Alerts != 8 || len(all.Tenants) != 0 || all.TopActors[0].ActorID != "bank-vera" || len(all.TopVendors) != 2 {
		t.Fatalf("summary of every tenant: %d alerts, tenants %v, top %+v, vendors %+v", all.Alerts, all.Tenants, all.TopActors, all.TopVendors)
	}
}

// TestWeeklySharedTenantScoped: "data shared with third parties" of a
// reader limited to other tenants shows none of retail's destinations.
func TestWeeklySharedTenantScoped(t *testing.T) {
	s, alerts, w := simulatedWeek(t)
	r := &Reporter{Alerts: alerts, Events: s, Shares: s}
	now := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	for tenants, want := range map[string]int{"bank": 0, "retail": 3} {
		sum, err := r.WeeklyFor(t.Context(), w, []string{tenants}, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(sum.Shared) != want || !sum.SharedWired {
			t.Fatalf("tenant %s: shared %+v, want %d rows", tenants, sum.Shared, want)
		}
	}
}
