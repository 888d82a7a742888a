package detect

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chatwarden/chatwarden/models"
)

// TestEvictIdleActors: the hourly pass forgets actors idle longer than
// detect.evict_idle_after (baseline, count series, risk) and counts them;
// recent actors stay.
func TestEvictIdleActors(t *testing.T) {
	reg := prometheus.NewRegistry()
	e, err := New(Config{EvictIdleAfter: 30 * 24 * time.Hour}, nil, Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	idle, recent := actorKey{"t", "idle"}, actorKey{"t", "recent"}
	e.actors[idle] = &actorState{LastSeen: now.Add(-31 * 24 * time.Hour).Unix()}
	e.actors[recent] = &actorState{LastSeen: now.Add(-29 * 24 * time.Hour).Unix()}
	e.series[idle] = e.actors[idle]
	e.risk[idle] = &riskState{At: now.Add(-31 * 24 * time.Hour).Unix()}
	e.risk[actorKey{"t", "rules-only"}] = &riskState{At: now.Add(-40 * 24 * time.Hour).Unix()}
	e.evictIdle(now)
	if _, ok := e.actors[idle]; ok || e.series[idle] != nil || e.risk[idle] != nil || len(e.risk) != 0 {
		t.Fatalf("idle actor kept: actors %v series %v risk %v", e.actors, e.series, e.risk)
	}
	if _, ok := e.actors[recent]; !ok {
		t.Fatal("recent actor evicted")
	}
	if got := testutil.ToFloat64(e.metrics.evicted); got != 1 {
		t.Fatalf("chatwarden_detect_actors_evicted_total = %v, want 1", got)
	}
	if got := testutil.ToFloat64(e.metrics.actors); got != 1 {
		t.Fatalf("chatwarden_detect_actors = %v, want 1", got)
	}
	if err := (Config{EvictIdleAfter: 24 * time.Hour}).Validate(); err == nil {
		t.Fatal("evict_idle_after shorter than twice dormant_days accepted")
	}
}

// TestConsentRegisterEvictsOldGrants: old grants go (they mean the same as
// no decision), withdrawals stay however old.
func TestConsentRegisterEvictsOldGrants(t *testing.T) {
	r := NewConsentRegister()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	old := now.Add(-100 * 24 * time.Hour)
	r.Apply([]models.Consent{
		{Tenant: "t", SubjectID: "s1", Purpose: "marketing", Granted: true, TS: old},
		{Tenant: "t", SubjectID: "s2", Purpose: "marketing", Granted: false, TS: old},
		{Tenant: "t", SubjectID: "s3", Purpose: "marketing", Granted: true, TS: now},
	})
	if n := r.EvictGranted(now.Add(-90 * 24 * time.Hour)); n != 1 || r.Len() != 2 {
		t.Fatalf("evicted %d, %d left; want 1 and 2", n, r.Len())
	}
	if w, _ := r.Withdrawn("t", "s2", "marketing", now); !w {
		t.Fatal("an old withdrawal was forgotten")
	}
	if w, _ := r.Withdrawn("t", "s1", "marketing", now); w {
		t.Fatal("an evicted grant reads as a withdrawal")
	}
}
