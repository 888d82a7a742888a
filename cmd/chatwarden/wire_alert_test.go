package main

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/alert"
	"github.com/chatwarden/chatwarden/detect"
	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
)

// countingPoster records posts in memory.
type countingPoster struct {
	mu    sync.Mutex
	posts []string // detectors of the worst alert of each post
}

func (p *countingPoster) Post(_ context.Context, channel string, m *alert.Message) (string, string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	det := ""
	if len(m.Alerts) > 0 {
		det = m.Alerts[0].Detector
	}
	p.posts = append(p.posts, det)
	return channel, "1.0001", nil
}

func (p *countingPoster) Update(context.Context, string, string, *alert.Message) error { return nil }

func (p *countingPoster) Find(context.Context, string, string, time.Time) (string, string, error) {
	return "", "", nil
}

// TestEventRuleFindingsSkipGroupWait checks the contract between detection
// and alerting that serve wires: every event-rule finding says
// baseline_source "rule", which is how alerting recognizes a critical
// event-rule alert and sends it without waiting group_wait — here with the
// urgent shortcut turned off (urgent_group_wait = group_wait), so only the
// event-rule path can post it at once.
func TestEventRuleFindingsSkipGroupWait(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC) // a Monday, inside vendor hours
	crit := models.SeverityCritical
	dcfg := detect.Config{Severities: map[string]models.Severity{
		detect.RuleBotCrossCustomer: crit, detect.RuleBulkAccess: crit}}
	rules, err := detect.NewRules(dcfg, detect.NewConsentRegister())
	if err != nil {
		t.Fatal(err)
	}
	base := models.Event{TS: now, Tenant: "acme", Action: models.ActionRead, Store: "crm",
		Resource: models.Resource{Type: "customer_profile"}, Records: 1, Fields: []string{"name"}, Purpose: "support",
		Result: models.ResultAllowed}
	bot := base
	bot.EventID, bot.Actor = "e1", models.Actor{ID: "bot-1", Type: models.ActorBot, Role: "assistant"}
	bot.Tool, bot.SubjectID = "lookup_customer", "cust-2"
	bot.Conversation = models.Conversation{ID: "conv-1", SubjectID: "cust-1"}
	bulk := base
	bulk.EventID, bulk.Actor = "e2", models.Actor{ID: "agent-1", Type: models.ActorHuman, Role: "agent"}
	bulk.Action, bulk.Records, bulk.SubjectID = models.ActionExport, 50000, "cust-3"
	fs := rules.Check(now, []models.Event{bot, bulk}, nil)
	got := map[string]bool{}
	for _, f := range fs {
		got[f.Detector] = true
		if f.Evidence.BaselineSource != "rule" {
			t.Errorf("%s finding has baseline_source %q, want \"rule\"", f.Detector, f.Evidence.BaselineSource)
		}
	}
	for _, want := range []string{detect.RuleBotCrossCustomer, detect.RuleBulkAccess} {
		if !got[want] {
			t.Fatalf("rules did not fire %s (findings %v)", want, got)
		}
	}

	poster := &countingPoster{}
	disp, err := alert.New(alert.Config{DefaultChannel: "C1", UrgentGroupWait: 30 * time.Second},
		alert.Options{Store: storetest.New(t), Poster: poster})
	if err != nil {
		t.Fatal(err)
	}
	if err := disp.Notify(t.Context(), now, fs...); err != nil {
		t.Fatal(err)
	}
	// Two groups (two actors), one message per channel per second.
	for at := now; at.Before(now.Add(2 * time.Second)); at = at.Add(500 * time.Millisecond) {
		if _, err := disp.Deliver(t.Context(), at); err != nil {
			t.Fatal(err)
		}
	}
	poster.mu.Lock()
	defer poster.mu.Unlock()
	if len(poster.posts) != 2 {
		t.Fatalf("%d posts within 2 s of the critical event-rule findings, want 2 (group_wait skipped): %v", len(poster.posts), poster.posts)
	}
}
