package dashboards

import (
	"encoding/json"
	"net/http"
)

func (s *Server) apiOpenAPI(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(openAPI)
	return err
}

func (s *Server) apiMe(w http.ResponseWriter, r *http.Request) error {
	p := principalOf(r)
	writeJSON(w, http.StatusOK, map[string]any{"user": p.Name, "role": p.Role, "csrf_token": p.CSRF})
	return nil
}

func (s *Server) apiAlerts(w http.ResponseWriter, r *http.Request) error {
	as, err := s.queryAlerts(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"alerts": as})
	return nil
}

func (s *Server) apiAlert(w http.ResponseWriter, r *http.Request) error {
	v, err := s.alertDetail(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"alert": v.Alert, "blast_radius": v.Blast, "chart_title": v.Chart.Title, "actions": v.Actions})
	return nil
}

func (s *Server) apiAlertAction(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Action string `json:"action"`
		Reason string `json:"reason"`
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		return errorf(http.StatusBadRequest, "want a JSON body {\"action\": ...}")
	}
	id := r.PathValue("id")
	if err := s.act(r, id, body.Action, body.Reason); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"alert_id": id, "action": body.Action, "result": "ok"})
	return nil
}

func (s *Server) apiHistory(w http.ResponseWriter, r *http.Request) error {
	q, _, err := s.searchOfRequest(w, r)
	if err != nil {
		return err
	}
	res, _, err := s.history(r, q, "history")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (s *Server) apiBlast(w http.ResponseWriter, r *http.Request) error {
	q, alertID, err := s.searchOfRequest(w, r)
	if err != nil {
		return err
	}
	b, err := s.blast(r, q, alertID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

func (s *Server) apiSubject(w http.ResponseWriter, r *http.Request) error {
	q, _, err := s.searchOfRequest(w, r)
	if err != nil {
		return err
	}
	rep, err := s.subject(r, q)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

func (s *Server) apiWeekly(w http.ResponseWriter, r *http.Request) error {
	wk, err := s.weekOf(r)
	if err != nil {
		return err
	}
	sum, err := s.d.Weekly(r.Context(), wk, principalOf(r).Tenants, s.now())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sum)
	return nil
}

func (s *Server) apiAudit(w http.ResponseWriter, r *http.Request) error {
	es, err := s.auditEntries(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": es})
	return nil
}
