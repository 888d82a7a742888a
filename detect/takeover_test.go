package detect

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// memCheckpoints keeps checkpoints in memory.
type memCheckpoints struct{ cps []store.Checkpoint }

func (m *memCheckpoints) PutCheckpoint(_ context.Context, c store.Checkpoint) error {
	m.cps = append(m.cps, c)
	return nil
}

func (m *memCheckpoints) LatestCheckpoint(_ context.Context, s store.Shard) (store.Checkpoint, bool, error) {
	for i := len(m.cps) - 1; i >= 0; i-- {
		if m.cps[i].Shard == s {
			return m.cps[i], true, nil
		}
	}
	return store.Checkpoint{}, false, nil
}

// spikeWindows returns the window ends of the volume spikes in fs, sorted.
func spikeWindows(fs []models.Finding) []string {
	var out []string
	for _, f := range fs {
		if f.Detector == DetVolumeSpike {
			out = append(out, f.ActorID+"@"+f.WindowEnd.Format("15:04"))
		}
	}
	sort.Strings(out)
	return out
}

// TestTakeOverEvaluatesMissedWindows: an owner evaluates a shard up to
// 9:30 (raising a1's 9:10 spike), checkpoints at 9:20 and dies; its
// successor takes the shard over at 9:45. Told where the owner stopped, it
// raises exactly a2's spike of 9:40, which no one had evaluated (late,
// but evaluated), and not 9:10 again; told nothing (no progress record), it
// evaluates every window after the checkpoint, 9:40 included.
func TestTakeOverEvaluatesMissedWindows(t *testing.T) {
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC) // a Monday
	day := "(5*480 -*960)*8 "
	// Day 9 from midnight: quiet until 9:00, then 5 a window, with a1's
	// spike in the window ending 9:10 and a2's in the one ending 9:40.
	text := "actor=a1 role=support records: " + day + "-*540 5*9 900 5*50\n" +
		"actor=a2 role=support records: " + day + "-*540 5*39 900 5*20\n"
	at := func(h, m int) time.Time {
		return start.Add(8*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
	}
	cfg := Config{BackfillDays: 9}

	var first []models.Finding
	cp := &memCheckpoints{}
	owner, err := New(cfg, parseFixture(t, start, text), Options{Findings: func(_ context.Context, fs ...models.Finding) error {
		first = append(first, fs...)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := owner.Start(t.Context(), nil, at(9, 0)); err != nil {
		t.Fatal(err)
	}
	if err := owner.Advance(t.Context(), at(9, 20)); err != nil {
		t.Fatal(err)
	}
	if err := owner.Checkpoint(t.Context(), cp, at(9, 20)); err != nil {
		t.Fatal(err)
	}
	if err := owner.Advance(t.Context(), at(9, 30)); err != nil {
		t.Fatal(err)
	}
	if got := spikeWindows(first); len(got) != 1 || got[0] != "a1@09:10" {
		t.Fatalf("the first owner raised spikes at %v, want [a1@09:10]", got)
	}
	evaluatedTo := owner.EvaluatedTo()
	if !evaluatedTo.Equal(at(9, 30)) {
		t.Fatalf("first owner evaluated to %s, want 09:30", evaluatedTo.Format("15:04"))
	}

	for _, tc := range []struct {
		name        string
		evaluatedTo time.Time
		want        []string
	}{
		{"progress record", evaluatedTo, []string{"a2@09:40"}},
		{"no progress record", time.Time{}, []string{"a2@09:40"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []models.Finding
			next, err := New(cfg, parseFixture(t, start, text), Options{Findings: func(_ context.Context, fs ...models.Finding) error {
				got = append(got, fs...)
				return nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			if err := next.TakeOver(t.Context(), cp, tc.evaluatedTo, at(9, 45)); err != nil {
				t.Fatal(err)
			}
			wantFrom := at(9, 30)
			if tc.evaluatedTo.IsZero() {
				wantFrom = at(9, 20) // the checkpoint
			}
			if !next.EvaluatedTo().Equal(wantFrom) {
				t.Errorf("after TakeOver, evaluated to %s, want %s", next.EvaluatedTo().Format("15:04"), wantFrom.Format("15:04"))
			}
			if len(got) != 0 {
				t.Errorf("TakeOver raised %d findings; the missed windows are for Advance", len(got))
			}
			if err := next.Advance(t.Context(), at(9, 45)); err != nil {
				t.Fatal(err)
			}
			if s := spikeWindows(got); len(s) != len(tc.want) || s[0] != tc.want[0] {
				t.Errorf("the successor raised spikes at %v, want %v", s, tc.want)
			}
			if !next.EvaluatedTo().Equal(at(9, 45)) {
				t.Errorf("successor evaluated to %s, want 09:45", next.EvaluatedTo().Format("15:04"))
			}
		})
	}
	// Without the takeover, a plain Start at 9:45 learns the missed
	// windows and never raises 9:40: what TakeOver fixes.
	var plain []models.Finding
	e, err := New(cfg, parseFixture(t, start, text), Options{Findings: func(_ context.Context, fs ...models.Finding) error {
		plain = append(plain, fs...)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(t.Context(), cp, at(9, 45)); err != nil {
		t.Fatal(err)
	}
	if err := e.Advance(t.Context(), at(9, 45)); err != nil {
		t.Fatal(err)
	}
	if s := spikeWindows(plain); len(s) != 0 {
		t.Errorf("a plain Start raised spikes at %v; the test does not show what TakeOver adds", s)
	}
}

// TestOwnershipConfigValidated: the shard ownership fields are checked,
// each error naming its field.
func TestOwnershipConfigValidated(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		field string // "" valid
	}{
		{"defaults: static", Config{}, ""},
		{"group of 4", Config{Ownership: OwnershipGroup, Shards: 4}, ""},
		{"unknown ownership", Config{Ownership: "raft"}, "detect.ownership"},
		{"shard set with group", Config{Ownership: OwnershipGroup, Shards: 4, Shard: 1}, "detect.shard"},
		{"too many shards", Config{Ownership: OwnershipGroup, Shards: MaxShards + 1}, "detect.shards"},
		{"bad topic", Config{Ownership: OwnershipGroup, ShardTopic: "a topic"}, "detect.shard_topic"},
		{"bad group", Config{Ownership: OwnershipGroup, ShardGroup: "a group"}, "detect.shard_group"},
		{"session too short", Config{Ownership: OwnershipGroup, ShardSessionTimeout: time.Second}, "detect.shard_session_timeout"},
		{"session too long", Config{Ownership: OwnershipGroup, ShardSessionTimeout: time.Hour}, "detect.shard_session_timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.field == "" && err != nil:
				t.Errorf("want valid: %v", err)
			case tc.field != "" && (err == nil || !strings.Contains(err.Error(), tc.field+":")):
				t.Errorf("want an error naming %s, got %v", tc.field, err)
			}
		})
	}
}

// TestCheckpointOfAnotherShardFunctionIsNotRestored: a checkpoint holding
// actors that the restoring engine's shard does not own (saved before the
// shard function changed, as when a single server with detect.shards > 1
// moves to a cluster, whose shards hash the tenant too) is refused whole,
// with either shard key, and leaves the engine's state as it was; an
// engine that owns every actor restores it.
func TestCheckpointOfAnotherShardFunctionIsNotRestored(t *testing.T) {
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	var text strings.Builder
	for i := range 10 {
		fmt.Fprintf(&text, "actor=agent-%d tenant=t%d role=support records: 5*60\n", i, i%3)
	}
	fx := parseFixture(t, start, text.String())
	all, err := New(Config{}, fx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	all.StartAt(start.Add(time.Minute))
	if err := all.Advance(t.Context(), start.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	snap, err := all.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if all.Actors() != 10 {
		t.Fatalf("the unsharded engine holds %d actors, want 10", all.Actors())
	}
	for _, key := range []store.ShardKey{store.ShardByActor, store.ShardByTenantActor} {
		e, err := New(Config{Shard: 0, Shards: 2}, fx, Options{ShardKey: key})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Restore(snap); !errors.Is(err, errForeignCheckpoint) {
			t.Errorf("key %d: restoring another shard's actors: err = %v, want errForeignCheckpoint", key, err)
		}
		if e.Actors() != 0 || !e.Next().IsZero() {
			t.Errorf("key %d: a refused checkpoint left %d actors, next %s", key, e.Actors(), e.Next())
		}
	}
	one, err := New(Config{}, fx, Options{ShardKey: store.ShardByTenantActor})
	if err != nil {
		t.Fatal(err)
	}
	if err := one.Restore(snap); err != nil || one.Actors() != 10 {
		t.Errorf("one shard: restore err = %v, %d actors, want 10", err, one.Actors())
	}
}
