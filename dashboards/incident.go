package dashboards

import (
	"net/http"
	"slices"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/report"
)

// incident builds the breach assessment of /incidents/{id}: the alerts of
// the id (alert ids joined by "+"), each visible to the user (another
// tenant's alert does not exist for them), assessed and audited like a
// history query.
func (s *Server) incident(r *http.Request) (*report.Assessment, error) {
	if s.d.Incidents == nil {
		return nil, errorf(http.StatusServiceUnavailable, "breach assessment is not wired in this process")
	}
	ids, err := report.ParseIncidentID(r.PathValue("id"))
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "%v", err)
	}
	p := principalOf(r)
	var alerts []models.Alert
	var tenants []string
	for _, id := range ids {
		a, found, err := s.d.Alerts.Alert(r.Context(), id)
		if err != nil {
			return nil, err
		}
		if !found || !p.mayTenant(a.Tenant) {
			return nil, errorf(http.StatusNotFound, "no alert %q", id)
		}
		alerts = append(alerts, a)
		if !slices.Contains(tenants, a.Tenant) {
			tenants = append(tenants, a.Tenant)
		}
	}
	as, err := report.Assess(r.Context(), s.d.Incidents, alerts, s.now())
	if err != nil {
		return nil, err
	}
	slices.Sort(tenants)
	if err := s.audit(r, "incident_assess", "incident="+as.ID, int(as.Events), tenants); err != nil {
		return nil, err
	}
	return as, nil
}

func (s *Server) incidentPage(w http.ResponseWriter, r *http.Request) error {
	as, err := s.incident(r)
	if err != nil {
		return err
	}
	return s.render(w, "incident", s.pageData(r, "Breach assessment "+as.ID, as))
}

func (s *Server) apiIncident(w http.ResponseWriter, r *http.Request) error {
	as, err := s.incident(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, as)
	return nil
}
