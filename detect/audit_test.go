package detect

import (
	"context"
	"testing"
	"time"
)

type fakeAuditor struct{ rows []string }

func (f *fakeAuditor) LatestDetectAudit(context.Context, string, string) (string, error) {
	if len(f.rows) == 0 {
		return "", nil
	}
	return f.rows[len(f.rows)-1], nil
}

func (f *fakeAuditor) InsertDetectAudit(_ context.Context, _ time.Time, _, _, _, detail string) error {
	f.rows = append(f.rows, detail)
	return nil
}

func TestAuditConfig(t *testing.T) {
	a := &fakeAuditor{}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		cfg  Config
		want bool
	}{
		{Config{}, true},  // first start: recorded
		{Config{}, false}, // unchanged
		{Config{Detectors: DetectorsConfig{VolumeZ: 9}}, true}, // a threshold changed
		{Config{Detectors: DetectorsConfig{VolumeZ: 9}}, false},
	}
	for i, s := range steps {
		got, err := AuditConfig(t.Context(), a, s.cfg, "test", now, nil)
		if err != nil || got != s.want {
			t.Fatalf("step %d: changed=%v err=%v, want %v", i, got, err, s.want)
		}
	}
	if len(a.rows) != 2 {
		t.Errorf("%d audit rows, want 2", len(a.rows))
	}
}
