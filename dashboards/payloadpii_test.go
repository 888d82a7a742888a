package dashboards

import (
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// TestAlertPagePayloadPII (issue 14 item 4): a pii_in_payload alert's page
// shows each field of the producer's events with its kind and masked value,
// and so does its JSON twin (checked against openapi.json); a sharing
// alert's page shows its destinations.
func TestAlertPagePayloadPII(t *testing.T) {
	t.Parallel() // a database of its own
	f := newFixture(t, Config{})
	base := testNow.Add(-2 * time.Hour).Truncate(time.Minute)
	pii := models.Finding{Detector: "pii_in_payload", Tenant: "retail", ActorID: "orders", WindowStart: base, WindowEnd: base.Add(time.Minute),
		DetectedAt: base, Score: 3, Severity: models.SeverityMedium, Summary: "producer orders sent personal data in 3 event(s) (card in resource.id)",
		Evidence: models.Evidence{Metric: "events with payload PII (stored pseudonymized)", Observed: 3, TopStores: []string{"orders"},
			PII: []models.PIIHit{{Field: "resource.id", Kind: models.PIICard, Masked: "****************"}}}}
	share := models.Finding{Detector: "destination_new", Tenant: "retail", ActorID: "billing-bo", ActorType: models.ActorHuman,
		WindowStart: base, WindowEnd: base.Add(time.Minute), DetectedAt: base, Score: 1, Severity: models.SeverityHigh,
		Summary: "billing-bo sent 6 records to quickdrop-417.example", Evidence: models.Evidence{Destinations: []string{"quickdrop-417.example"}}}
	var rows []store.AlertRow
	for _, fd := range []models.Finding{pii, share} {
		rows = append(rows, store.AlertRow{Version: 1, Alert: models.Alert{ID: "al-" + fd.Detector, Fingerprint: fd.Fingerprint(),
			Detector: fd.Detector, Tenant: fd.Tenant, ActorID: fd.ActorID, Severity: fd.Severity, Status: models.StatusOpen,
			FirstSeen: base, LastSeen: base, Findings: 1, UpdatedAt: base, Latest: fd}})
	}
	if err := f.store.PutAlerts(t.Context(), rows); err != nil {
		t.Fatal(err)
	}
	c, _ := f.login(t, RoleSecOps)
	resp, body := get(t, c, f.ts.URL+"/alerts/al-pii_in_payload")
	if resp.StatusCode != 200 || !strings.Contains(body, "<th>payload pii</th><td>card in <code>resource.id</code>: <code>****************</code></td>") {
		t.Errorf("pii_in_payload page %d lacks the masked field:\n%s", resp.StatusCode, body)
	}
	if _, body = get(t, c, f.ts.URL+"/api/alerts/al-pii_in_payload"); !strings.Contains(body, `"masked": "****************"`) {
		t.Errorf("JSON twin lacks the masked value: %s", body)
	}
	if resp, body = get(t, c, f.ts.URL+"/alerts/al-destination_new"); resp.StatusCode != 200 ||
		!strings.Contains(body, "<th>destinations</th><td>quickdrop-417.example</td>") {
		t.Errorf("destination_new page %d lacks its destination:\n%s", resp.StatusCode, body)
	}
}
