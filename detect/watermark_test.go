package detect

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// laggingAggregates serves the fixture's windows only up to stored: the
// events after it are still in Kafka (consumer lag).
type laggingAggregates struct {
	*fixture
	stored time.Time
}

func (l *laggingAggregates) WindowAggregates(ctx context.Context, from, to time.Time, w time.Duration, s store.Shard) ([]store.WindowActivity, error) {
	rows, err := l.fixture.WindowAggregates(ctx, from, to, w, s)
	var out []store.WindowActivity
	for _, r := range rows {
		if r.WindowStart.Add(w).After(l.stored) {
			continue
		}
		out = append(out, r)
	}
	return out, err
}

// TestWatermarkHoldsWindowsDuringLag (issue 10 item 6): ingest is 10
// minutes behind when a volume spike's window ends. On the wall clock alone
// (no watermark) the window is evaluated before its events are stored, and
// the spike is never seen; with ingest's low watermark the window stays
// open until its events are in, and the spike fires.
func TestWatermarkHoldsWindowsDuringLag(t *testing.T) {
	four := days(4, workday(normal))
	text := team(four+" "+workday(normal), four+" "+workday("(5*100 900 5*379)"))
	spikeEnd := monday.Add(4*24*time.Hour + 9*time.Hour + 101*time.Minute) // 09:00 + 100 busy windows, +1
	for _, withWatermark := range []bool{false, true} {
		fx := &laggingAggregates{fixture: parseFixture(t, monday, text)}
		var fired []string
		opt := Options{Findings: func(_ context.Context, fs ...models.Finding) error {
			for _, f := range fs {
				fired = append(fired, f.Detector+" "+f.ActorID)
			}
			return nil
		}}
		if withWatermark {
			opt.Watermark = func() (time.Time, bool) { return fx.stored, true }
		}
		e, err := New(Config{}, fx, opt)
		if err != nil {
			t.Fatal(err)
		}
		e.StartAt(monday.Add(time.Minute))
		// Ingest keeps 10 minutes behind the wall clock; one cycle a minute.
		for now := spikeEnd.Add(-2 * time.Hour); now.Before(spikeEnd.Add(30 * time.Minute)); now = now.Add(time.Minute) {
			fx.stored = now.Add(-10 * time.Minute)
			if err := e.Advance(t.Context(), e.closeTo(now, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		got := slices.Contains(fired, "volume_spike a1")
		if got != withWatermark {
			t.Errorf("with watermark %v: volume_spike a1 fired %v (findings %v)", withWatermark, got, fired)
		}
	}
}
