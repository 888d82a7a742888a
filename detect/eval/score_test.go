package eval

import (
	"bytes"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// TestScoreCreditsFoldedFindings: two one-shot injections into the same
// bot 20 minutes apart each raise a conversation_shape finding. The
// alerting dedupe folds the second into the alert the first raised; that
// alert holds it, so the second attack is detected too. A folded finding
// covering no label is not a false alert of its own, and neither becomes a
// second alert or a second NAB detection. Before, the replay dropped the
// folded finding and scored the second attack as missed (rota high-volume
// and three-zones: prompt_injection_oneshot 2 of 3).
func TestScoreCreditsFoldedFindings(t *testing.T) {
	t0 := time.Date(2026, 10, 21, 10, 0, 0, 0, time.UTC)
	finding := func(at time.Duration) models.Finding {
		return models.Finding{Detector: "conversation_shape", Tenant: "t", ActorID: "va-web", Severity: models.SeverityHigh,
			WindowStart: t0.Add(at - time.Minute), WindowEnd: t0.Add(at), DetectedAt: t0.Add(at)}
	}
	var out bytes.Buffer
	a := &alerter{last: map[alertKey]time.Time{}, out: &out}
	if err := a.add([]models.Finding{finding(2 * time.Minute), finding(22 * time.Minute), finding(50 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	labels := []Label{
		{ID: "atk-1", Kind: "prompt_injection_oneshot", Tenant: "t", ActorID: "va-web", Start: t0, End: t0.Add(5 * time.Minute)},
		{ID: "atk-2", Kind: "prompt_injection_oneshot", Tenant: "t", ActorID: "va-web", Start: t0.Add(20 * time.Minute), End: t0.Add(25 * time.Minute)},
	}
	s := score(a.alerts, labels, nil, 100, time.Minute)
	if ks := s.ByKind["prompt_injection_oneshot"]; ks.Detected != 2 || len(ks.Missed) != 0 {
		t.Errorf("detected %d of 2 (missed %v), want both: the second attack's finding is in the first attack's alert", ks.Detected, ks.Missed)
	}
	// the finding at +50 min covers no label (beyond the 30-minute grace)
	// and was folded: no false alert; one alert in all
	if s.Alerts != 1 || s.TrueAlerts != 1 || s.FalseAlerts != 0 || a.n != 1 {
		t.Errorf("alerts %d (true %d, false %d, counted %d), want 1 alert, true, 0 false", s.Alerts, s.TrueAlerts, s.FalseAlerts, a.n)
	}
	if err := a.write(); err != nil {
		t.Fatal(err)
	}
	alerts, err := ReadAlerts(&out)
	if err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 3 || alerts[0].Folded || !alerts[1].Folded || !alerts[2].Folded {
		t.Fatalf("alerts file %+v, want the first alert then two folded findings", alerts)
	}
	m := SeriesManifest{Name: "va", Tenant: "t", Actor: "va-web", Start: t0, Step: time.Minute, Points: 60}
	if f := NABFiles([]SeriesManifest{m}, alerts); len(f[0].Detections) != 1 {
		t.Errorf("NAB detections %v, want the alert's row only", f[0].Detections)
	}
	// an alert an hour later is an alert again
	if err := a.add([]models.Finding{finding(123 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if s := score(a.alerts, labels, nil, 100, time.Minute); s.Alerts != 2 || s.FalseAlerts != 1 {
		t.Errorf("after an hour: alerts %d, false %d, want 2 and 1", s.Alerts, s.FalseAlerts)
	}
}
