package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatwarden/chatwarden/alert"
	aslack "github.com/chatwarden/chatwarden/alert/slack"
	"github.com/chatwarden/chatwarden/dashboards"
	"github.com/chatwarden/chatwarden/ingest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/report"
	"github.com/chatwarden/chatwarden/store"
)

// The ClickHouse store is what alerting keeps its state in.
var _ alert.Store = (*store.Store)(nil)

// findingNotifier hands findings to alerting (detect.FindingSink has this
// shape).
type findingNotifier func(ctx context.Context, fs ...models.Finding) error

// alerting is what serve's alerting offers the others: its component, the
// entry point for findings, the dashboards' alert buttons and Slack's
// interactivity endpoint; close releases the findings writer after every
// component stopped.
type alerting struct {
	component     component
	notify        findingNotifier
	actions       dashboards.AlertActions
	interactivity http.Handler
	close         func() error
}

// wireAlert builds the dispatcher and Slack's interactivity handler. With
// no Slack token, alerts go to ClickHouse and the log. unowned (nil: off)
// feeds the self-monitoring alert on detection shards without an owner.
// Findings reach the dispatcher as findings.transport says: in the process
// (memory), or through the findings topic (kafka), which it creates when
// missing, and the alert consumer group, whose members split the alert
// groups.
func wireAlert(ctx context.Context, c Config, s *store.Store, reg prometheus.Registerer, log *slog.Logger, unowned alert.UnownedFunc) (alerting, error) {
	var w *ingest.FindingsWriter
	var forward alert.ForwardFunc
	fc := c.Findings.WithDefaults()
	m := ingest.NewFindingsMetrics(nil)
	if fc.Transport == ingest.FindingsKafka {
		n, err := ingest.CreateFindingsTopic(ctx, c.Ingest, fc)
		if err != nil {
			return alerting{}, fmt.Errorf("findings.topic %s: %w", fc.Topic, err)
		}
		m = ingest.NewFindingsMetrics(reg)
		if w, err = ingest.NewFindingsWriter(c.Ingest, fc, m); err != nil {
			return alerting{}, err
		}
		// A click on an alert another serve dispatches goes to that serve
		// with the alert group's findings.
		forward = func(ctx context.Context, tenant, actor string, a alert.Action) error {
			b, err := json.Marshal(a)
			if err != nil {
				return err
			}
			return w.SendAction(ctx, tenant, actor, b)
		}
		log.Info("findings go through kafka", "topic", fc.Topic, "partitions", n, "group", fc.Group)
	}
	disp, h, err := newAlerting(c, s, reg, log, unowned, forward)
	if err != nil {
		return alerting{}, errors.Join(err, closeWriter(w))
	}
	notify := func(ctx context.Context, fs ...models.Finding) error {
		return disp.Notify(ctx, time.Now(), fs...)
	}
	run, closeBus := disp.Run, func() error { return nil }
	if w != nil {
		consumer := ingest.NewFindingsConsumer(c.Ingest, fc, m, log.With("component", "alert"))
		notify, closeBus = w.Send, w.Close
		member := alertMember{d: disp, log: log.With("component", "alert")}
		run = func(ctx context.Context) error { return consumer.Run(ctx, member) }
	}
	actions := dashboards.AlertActionsFunc(func(ctx context.Context, req dashboards.ActionRequest, now time.Time) error {
		err := disp.Act(ctx, now, webAction(req))
		switch {
		case errors.Is(err, alert.ErrUnknownAlert):
			return fmt.Errorf("%w: %s", dashboards.ErrUnknownAlert, req.AlertID)
		case errors.Is(err, alert.ErrNotAllowed):
			return fmt.Errorf("%w: %w", dashboards.ErrActionNotAllowed, err)
		case errors.Is(err, alert.ErrReasonRequired):
			return fmt.Errorf("%w: %w", dashboards.ErrActionNeedsReason, err)
		}
		return err
	})
	return alerting{component: component{name: "alert", run: run}, notify: notify, actions: actions,
		interactivity: h, close: closeBus}, nil
}

// alertMember is the dispatcher as a member of the alert consumer group.
type alertMember struct {
	d   *alert.Dispatcher
	log *slog.Logger
}

var _ ingest.FindingsHandler = alertMember{}

// Own dispatches the generation's share of the alert groups.
func (a alertMember) Own(ctx context.Context, owns func(tenant, actor string) bool, fence func(context.Context) error, ready func()) error {
	return a.d.RunOwning(ctx, owns, fence, ready)
}

// Handle folds a batch of findings in.
func (a alertMember) Handle(ctx context.Context, fs []models.Finding) error {
	return a.d.Notify(ctx, time.Now(), fs...)
}

// Act applies an action another serve forwarded. While the group is not
// this member's (a rebalance under way) the error makes the consumer retry
// until the generation ends and the owner reads it; any other failure is
// retried here a few times, then logged and the action dropped, so that a
// bad action cannot stop its partition.
func (a alertMember) Act(ctx context.Context, raw []byte) error {
	var act alert.Action
	if err := json.Unmarshal(raw, &act); err != nil {
		a.log.Error("dropping a forwarded action that does not decode", "err", err)
		return nil
	}
	var err error
	for attempt := 1; attempt <= 5; attempt++ {
		err = a.d.ActForwarded(ctx, time.Now(), act)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, alert.ErrNotOwner) || ctx.Err() != nil:
			return err
		case errors.Is(err, alert.ErrNotAllowed), errors.Is(err, alert.ErrUnknownAlert), errors.Is(err, alert.ErrUnknownMessage),
			errors.Is(err, alert.ErrReasonRequired):
			a.log.Warn("a forwarded action was refused", "action", act.Kind, "message", act.MessageID, "alert", act.AlertID, "err", err)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt) * time.Second):
		}
	}
	a.log.Error("dropping a forwarded action that kept failing", "action", act.Kind, "message", act.MessageID, "alert", act.AlertID, "err", err)
	return nil
}

// closeWriter closes w when there is one.
func closeWriter(w *ingest.FindingsWriter) error {
	if w == nil {
		return nil
	}
	return w.Close()
}

// newAlerting builds the dispatcher and the interactivity handler from the
// configuration. Self-monitoring reads the store's sources and ingest's
// consumer lag; the weekly digest comes from the report package.
func newAlerting(c Config, s *store.Store, reg prometheus.Registerer, log *slog.Logger, unowned alert.UnownedFunc,
	forward alert.ForwardFunc) (*alert.Dispatcher, *aslack.Handler, error) {
	log = log.With("component", "alert")
	var poster alert.Poster
	client, err := aslack.New(c.Alert.Slack, log)
	if err != nil {
		return nil, nil, err
	}
	if client != nil {
		poster = client // a nil *Client must not become a non-nil interface
	}
	secret, err := aslack.SigningSecret(c.Alert.Slack)
	if err != nil {
		return nil, nil, err
	}
	ingestCfg := c.Ingest
	reporter := newReporter(s, c)
	disp, err := alert.New(c.Alert, alert.Options{
		Store: s, Poster: poster, Log: log, Registerer: reg, Clock: time.Now,
		Exposure: func(ctx context.Context, tenant, actor string, from, to time.Time) (uint64, uint64, []string, error) {
			x, err := s.ActorExposure(ctx, tenant, actor, from, to)
			return x.Subjects, x.Records, x.Categories, err
		},
		Sources: s.LastEventByStore,
		Unowned: unowned, Forward: forward,
		Lag: func(ctx context.Context) (int64, error) {
			group := ingestCfg.Group
			if group == "" {
				group = ingest.DefaultGroup
			}
			topic := ingestCfg.AccessTopic
			if topic == "" {
				topic = ingest.DefaultAccessTopic
			}
			pls, err := ingest.GroupLag(ctx, ingestCfg, group, topic)
			var total int64
			for _, p := range pls {
				total += p.Lag
			}
			return total, err
		},
		Digest: func(ctx context.Context, week time.Time) (alert.Digest, error) {
			w := report.WeekOf(week.AddDate(0, 0, 3)) // the ISO week holding that Monday's Thursday
			sum, err := reporter.Weekly(ctx, w, time.Now())
			if err != nil {
				return alert.Digest{}, err
			}
			return digestOf(sum, c.Alert.InvestigateURL), nil
		},
	})
	if err != nil {
		return nil, nil, err
	}
	if secret == "" && client != nil {
		log.Warn("alert.slack.signing_secret is not set: Slack buttons will be rejected")
	}
	dir, err := aslack.NewDirectory(slackPeople(c), c.Alert.Slack.Users, client)
	if err != nil {
		return nil, nil, err
	}
	h, err := aslack.NewHandler(aslack.HandlerOptions{Secret: secret, Act: disp.Act, Authorize: disp.Authorize,
		Directory: dir, Client: client, Audit: s.InsertAudit, FalsePositiveFor: disp.Config().FalsePositiveFor, Tenants: disp.ActionTenants, Log: log})
	if err != nil {
		return nil, nil, err
	}
	return disp, h, nil
}

// webAction is the alert action of a web or API request: the signed-in
// user (or token) with its role and tenants.
func webAction(req dashboards.ActionRequest) alert.Action {
	return alert.Action{Kind: alert.ActionKind(req.Action), AlertID: req.AlertID, User: req.User, UserName: req.User,
		Identity: req.User, Role: string(req.Role), Tenants: req.Tenants, Reason: req.Reason, Source: "web"}
}

// slackPeople are the dashboards users a Slack user can act as, with their
// roles and tenants.
func slackPeople(c Config) []aslack.Person {
	people := make([]aslack.Person, len(c.Dashboards.Users))
	for i, u := range c.Dashboards.Users {
		people[i] = aslack.Person{Name: u.Name, Role: string(u.Role), Email: u.Email, Tenants: u.Tenants}
	}
	return people
}

// digestOf turns the weekly summary into the Slack digest.
func digestOf(s *report.Summary, base string) alert.Digest {
	dg := alert.Digest{Title: "Weekly breach-risk summary " + s.Week, Week: s.From}
	if base != "" {
		dg.URL = base + "/reports/weekly?week=" + s.Week
	}
	overview := []string{s.Paragraph, fmt.Sprintf("%d alerts", s.Alerts)}
	for _, c := range s.BySeverity {
		overview = append(overview, fmt.Sprintf("%s: %d", c.Name, c.Count))
	}
	dg.Sections = append(dg.Sections, alert.DigestSection{Title: "Overview", Lines: overview})
	var top []string
	for i, a := range s.TopActors {
		if i == 5 {
			break
		}
		top = append(top, fmt.Sprintf("%s (%s): risk %.1f, %d alerts, worst %s", a.ActorID, a.Tenant, a.Score, a.Alerts, a.Worst))
	}
	if len(top) > 0 {
		dg.Sections = append(dg.Sections, alert.DigestSection{Title: "Top risks", Lines: top})
	}
	x := s.Exposure
	dg.Sections = append(dg.Sections, alert.DigestSection{Title: "Exposure", Lines: []string{
		fmt.Sprintf("%d customers, %d records, %d actors in flagged accesses", x.Subjects, x.Records, x.Actors)}})
	dg.Sections = append(dg.Sections, alert.DigestSection{Title: "Violations", Lines: []string{
		fmt.Sprintf("consent %d, purpose %d, vendor %d", len(s.ConsentViolations), len(s.PurposeViolations), len(s.VendorViolations))}})
	dg.Sections = append(dg.Sections, alert.DigestSection{Title: "Response", Lines: []string{
		fmt.Sprintf("time to acknowledge: %s (n=%d); time to resolve: %s (n=%d)",
			s.TimeToAcknowledge.Mean, s.TimeToAcknowledge.N, s.TimeToResolve.Mean, s.TimeToResolve.N)}})
	return dg
}
