package main

import (
	"context"
	"fmt"
	"time"

	"github.com/chatwarden/chatwarden/dashboards"
	"github.com/chatwarden/chatwarden/report"
	"github.com/chatwarden/chatwarden/store"
)

var (
	_ dashboards.EventQueries   = (*store.Store)(nil)
	_ dashboards.SubjectQueries = (*store.Store)(nil)
	_ dashboards.AuditLog       = (*store.Store)(nil)
	_ dashboards.AlertReader    = (*store.Store)(nil)
	_ report.EventSource        = (*store.Store)(nil)
	_ report.RiskSource         = (*store.Store)(nil)
)

// newReporter builds the weekly reporter over the store.
func newReporter(s *store.Store, c Config) *report.Reporter {
	return &report.Reporter{Events: s, Risk: s, Config: c.Report, Alerts: report.AlertSourceFunc(
		func(ctx context.Context, from, to time.Time) ([]report.AlertRecord, error) {
			lives, err := s.AlertLives(ctx, from, to)
			if err != nil {
				return nil, err
			}
			out := make([]report.AlertRecord, len(lives))
			for i, l := range lives {
				out[i] = report.AlertRecord{Alert: l.Alert, AckedAt: l.AckedAt, ResolvedAt: l.ResolvedAt}
			}
			return out, nil
		})}
}

// wireDashboards mounts the web pages and the JSON API on serve's mux.
// Routes mounted more specifically by others (/metrics, /healthz,
// /slack/interactivity) keep precedence.
func wireDashboards(_ context.Context, d *serveDeps) ([]component, error) {
	acts := d.alertActions // set by wireAlert, which runs first (nil: buttons disabled)
	srv, err := dashboards.New(d.cfg.Dashboards, dashboards.Deps{
		Events: d.store, Subjects: d.store, Audit: d.store, Alerts: d.store, Actions: acts,
		Weekly: newReporter(d.store, d.cfg).Weekly, Pseudonymize: d.pseudo.AllTenant, Log: d.log.With("component", "dashboards"),
		Registerer: d.registry,
	})
	if err != nil {
		return nil, fmt.Errorf("building dashboards: %w", err)
	}
	d.mux.Handle("/", srv)
	return nil, nil
}
