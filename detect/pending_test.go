package detect

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// TestWindowFindingRetriedAfterSinkFailure (issue 10 item 7): a window
// finding whose hand-off to alerting (or the findings table) fails is not
// only logged: it is sent again on the next cycle, like the event rules'
// findings are retried.
func TestWindowFindingRetriedAfterSinkFailure(t *testing.T) {
	four := days(4, workday(normal))
	fx := parseFixture(t, monday, team(four+" "+workday(normal), four+" "+workday("(5*100 900 5*379)")))
	down := true
	var sent, stored []string
	e, err := New(Config{}, fx, Options{
		Findings: func(_ context.Context, fs ...models.Finding) error {
			if down {
				return errors.New("alerting: clickhouse: connection refused")
			}
			for _, f := range fs {
				sent = append(sent, f.Detector+" "+f.ActorID)
			}
			return nil
		},
		Stored: func(_ context.Context, fs []store.StoredFinding) error {
			if down {
				return errors.New("clickhouse: connection refused")
			}
			for _, f := range fs {
				stored = append(stored, f.Detector+" "+f.ActorID)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.StartAt(monday.Add(time.Minute))
	end := monday.Add(time.Duration(fx.last+1) * time.Minute).Truncate(time.Hour).Add(time.Hour)
	if err := e.Advance(t.Context(), end); err == nil {
		t.Fatal("the failing sinks were not reported")
	}
	if len(sent) != 0 {
		t.Fatalf("sent %v while alerting was down", sent)
	}
	down = false
	if err := e.Advance(t.Context(), end.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	has := func(list []string, s string) bool {
		for _, x := range list {
			if x == s {
				return true
			}
		}
		return false
	}
	if !has(sent, "volume_spike a1") || !has(stored, "volume_spike a1") {
		t.Fatalf("after the outage: sent %v, stored %v; want volume_spike a1 in both", sent, stored)
	}
	if len(e.pendFindings) != 0 || len(e.pendStored) != 0 {
		t.Fatalf("still pending: %d findings, %d stored", len(e.pendFindings), len(e.pendStored))
	}
}
