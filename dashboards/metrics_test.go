package dashboards

import (
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestRequestDurationHistogram: every request is timed in
// chatwarden_dashboards_request_duration_seconds under its route.
func TestRequestDurationHistogram(t *testing.T) {
	t.Parallel() // a database of its own
	f := newFixture(t, Config{})
	c := f.client(t)
	for range 3 {
		if resp, _ := get(t, c, f.ts.URL+"/login"); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /login: %d", resp.StatusCode)
		}
	}
	var m dto.Metric
	if err := f.srv.metrics.duration.WithLabelValues("GET /login").(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	if n := m.GetHistogram().GetSampleCount(); n != 3 {
		t.Errorf("GET /login timed %d times, want 3", n)
	}
}
