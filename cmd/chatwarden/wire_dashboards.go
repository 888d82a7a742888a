package main

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatwarden/chatwarden/dashboards"
	"github.com/chatwarden/chatwarden/pseudonym"
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
	_ report.AlertLifeReader    = (*store.Store)(nil)
)

// newReporter builds the weekly reporter over the store.
func newReporter(s *store.Store, c Config) *report.Reporter {
	return &report.Reporter{Events: s, Risk: s, Shares: s, Config: c.Report, Alerts: report.StoreAlerts(s)}
}

// wireDashboards builds the web pages and the JSON API; actions are
// alerting's alert buttons.
func wireDashboards(c Config, s *store.Store, p *pseudonym.Pseudonymizer, reg prometheus.Registerer, log *slog.Logger,
	actions dashboards.AlertActions) (http.Handler, error) {
	srv, err := dashboards.New(c.Dashboards, dashboards.Deps{
		Events: s, Subjects: s, Audit: s, Alerts: s, Actions: actions,
		Weekly: newReporter(s, c).WeeklyFor, Incidents: s, Pseudonymize: p.AllTenant, Log: log.With("component", "dashboards"),
		Registerer: reg,
	})
	if err != nil {
		return nil, fmt.Errorf("building dashboards: %w", err)
	}
	return srv, nil
}
