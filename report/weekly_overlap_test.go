package report

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/store"
)

// countingEvents is an EventSource over a store that counts the reads in
// flight and signals when the volume and vendor reads have started.
type countingEvents struct {
	EventSource
	inFlight, exposures atomic.Int32
	started             chan struct{} // gets a value per volume or vendor read
}

func (c *countingEvents) DailyVolume(ctx context.Context, tenants []string, from, to time.Time) ([]store.DayVolume, error) {
	c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	c.started <- struct{}{}
	return c.EventSource.DailyVolume(ctx, tenants, from, to)
}

func (c *countingEvents) VendorActivity(ctx context.Context, tenants []string, from, to time.Time) ([]store.ActorInfo, error) {
	c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	c.started <- struct{}{}
	return c.EventSource.VendorActivity(ctx, tenants, from, to)
}

func (c *countingEvents) ExposureOfWindows(ctx context.Context, ws []store.ActorWindow) (store.Exposure, error) {
	c.exposures.Add(1)
	return c.EventSource.ExposureOfWindows(ctx, ws)
}

// blockedAlerts fails once the volume and vendor reads have started (or
// gives up after a minute, when they never start).
type blockedAlerts struct{ started chan struct{} }

var errAlertsDown = errors.New("alerts down")

func (b blockedAlerts) AlertRecords(ctx context.Context, _ []string, _, _ time.Time) ([]AlertRecord, error) {
	for range 2 {
		select {
		case <-b.started:
		case <-time.After(time.Minute):
			return nil, errors.New("the volume and vendor reads did not start while the alerts were read")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return nil, errAlertsDown
}

// TestWeeklyReadsOverlapTheAlerts (issue 12, weekly report at 10M events):
// the reads that do not depend on the week's alerts (volume, vendors,
// risk, shares) run while the alerts are read, not after; when the alerts
// fail, the report returns their error only once those reads have ended,
// and never reads the flagged exposure.
func TestWeeklyReadsOverlapTheAlerts(t *testing.T) {
	s, _, w := simulatedWeek(t)
	started := make(chan struct{}, 2)
	ev := &countingEvents{EventSource: s, started: started}
	r := &Reporter{Events: ev, Risk: s, Shares: s, Alerts: blockedAlerts{started: started}}
	_, err := r.Weekly(t.Context(), w, w.End().Add(time.Hour))
	if !errors.Is(err, errAlertsDown) {
		t.Fatalf("Weekly: %v, want the alerts' error", err)
	}
	if n := ev.inFlight.Load(); n != 0 {
		t.Errorf("%d reads still running when Weekly returned", n)
	}
	if n := ev.exposures.Load(); n != 0 {
		t.Errorf("the exposure was read %d times without the alerts", n)
	}
}
