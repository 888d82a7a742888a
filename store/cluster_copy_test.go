package store_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// TestCopyFromServer moves a small single-server database to the cluster
// (make test-cluster): the source is a database with the one-server schema
// (plain MergeTree) on the cluster's first node, the target a fresh
// cluster database. After the copy every table has its rows, the views'
// tables are filled on the shards, both shards hold events, a history and
// the summary read the same as on the source, and the audit hash chain
// still verifies. On one server (make test) the copy refuses: the target
// must be a cluster.
func TestCopyFromServer(t *testing.T) {
	t.Parallel() // databases of its own
	ctx := t.Context()
	if storetest.Cluster() == "" {
		s := storetest.New(t)
		if _, err := s.CopyFromServer(ctx, storetest.Addr(), s.Database(), "default", ""); err == nil ||
			!strings.Contains(err.Error(), "clickhouse.cluster") {
			t.Fatalf("copy onto one server: err = %v, want clickhouse.cluster named", err)
		}
		return
	}
	srcCfg := storetest.Config(t)
	srcCfg.Cluster = "" // the one-server schema, on one node only
	src := storetest.Open(t, srcCfg)
	base := time.Date(2026, 11, 23, 22, 0, 0, 0, time.UTC)
	var evs []models.Event
	for i := range 600 {
		evs = append(evs, models.Event{EventID: fmt.Sprintf("m%d", i), TS: base.Add(time.Duration(i*17) * time.Second),
			Tenant: []string{"t1", "t2"}[i%2], Actor: models.Actor{ID: fmt.Sprintf("agent-%d", i%37), Type: models.ActorHuman, Role: "support"},
			Action: []models.Action{models.ActionRead, models.ActionShare}[i%5/4], Store: "crm", Resource: models.Resource{Type: "customer_profile"},
			SubjectID: fmt.Sprintf("s%d", i%53), Records: uint64(1 + i%4), Fields: []string{"email"}, Result: models.ResultAllowed,
			Destination: []string{"", "partner.example"}[i%5/4]})
	}
	if err := src.InsertEvents(ctx, evs, base.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := src.InsertConsents(ctx, []models.Consent{{Tenant: "t1", SubjectID: "s1", Purpose: "marketing", Granted: false, TS: base}}, base); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if err := src.InsertAudit(ctx, store.AuditEntry{TS: base.Add(time.Duration(i) * time.Minute), User: "ana", Role: "responder",
			Source: "cli", Action: "history", Detail: fmt.Sprintf("actor=agent-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}

	dst := storetest.New(t)
	copies, err := dst.CopyFromServer(ctx, storetest.Addr(), srcCfg.Database, "default", "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]store.TableCopy{}
	for _, c := range copies {
		got[c.Table] = c
	}
	for table, want := range map[string]uint64{"events": 600, "consents": 1, "audit_log": 4} {
		if c := got[table]; c.Source != want || c.Copied != want {
			t.Errorf("%s: %+v, want %d rows copied", table, c, want)
		}
	}
	for _, table := range []string{"event_ids", "events_by_subject", "actor_minute", "shares", "schema_migrations"} {
		if _, ok := got[table]; ok {
			t.Errorf("%s was copied: its rows come from the views (or Migrate)", table)
		}
	}
	dstCfg := store.Config{Addr: storetest.Addr(), Database: dst.Database()}
	for q, want := range map[string]uint64{
		"SELECT count() FROM event_ids":             600,
		"SELECT sumMerge(events) FROM actor_minute": 600,
		"SELECT count() FROM shares":                120, // every fifth event is a share to a destination
	} {
		if n := storetest.Count(t, dstCfg, q); n != want {
			t.Errorf("%s = %d after the copy, want %d", q, n, want)
		}
	}
	onFirstShard := storetest.Count(t, dstCfg, "SELECT count() FROM events_local")
	if onFirstShard == 0 || onFirstShard == 600 {
		t.Errorf("the first shard holds %d of 600 events: the copy did not spread them by actor", onFirstShard)
	}
	for _, s := range []*store.Store{src, dst} {
		sum, err := s.Summary(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Events != 600 || sum.DistinctIDs != 600 || sum.Consents != 1 {
			t.Errorf("summary of %s: %+v", s.Database(), sum)
		}
	}
	f := store.HistoryFilter{ActorID: "agent-5", From: base.Add(-time.Hour), To: base.Add(6 * time.Hour), Limit: 1000}
	want, _, err := src.History(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	have, _, err := dst.History(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 || !reflect.DeepEqual(have, want) {
		t.Errorf("history of agent-5: %d events on the cluster, %d on the source (or they differ)", len(have), len(want))
	}
	if r, err := dst.VerifyAudit(ctx, nil); err != nil || !r.OK() || r.Rows != 4 {
		t.Errorf("the copied audit chain: %+v, %v", r, err)
	}
	if _, err := dst.CopyFromServer(ctx, storetest.Addr(), srcCfg.Database, "default", ""); err == nil ||
		!strings.Contains(err.Error(), "already has") {
		t.Errorf("a second copy into the same database: err = %v, want a refusal", err)
	}
}
