package store_test

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// TestActorOrder: actorOrder returns every row of each batch (all of them,
// or the given subset) exactly once, ordered by tenant and then actor id
// bytewise (as ClickHouse orders String: "" < "a" < "a\x00" < "ab" < "b"),
// each actor's rows in the order they had.
func TestActorOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	tenants := []string{"", "t1", "t10", "T"}
	actors := []string{"a", "a\x00", "ab", "b", "B", "actor-10", "actor-9", "é"}
	mk := func(n int) []models.Event {
		evs := make([]models.Event, n)
		for i := range evs {
			evs[i].EventID = fmt.Sprint(i)
			evs[i].Tenant = tenants[rng.IntN(len(tenants))]
			evs[i].Actor.ID = actors[rng.IntN(len(actors))]
		}
		return evs
	}
	bs := []store.EventBatch{{Events: mk(500)}, {Events: mk(0)}, {Events: mk(77)}}
	check := func(t *testing.T, rows [][]int32, got [][]int32) {
		t.Helper()
		if len(got) != len(bs) {
			t.Fatalf("%d batches, want %d", len(got), len(bs))
		}
		for i, b := range bs {
			want := rows[i]
			if len(got[i]) != len(want) {
				t.Fatalf("batch %d: %d rows, want %d", i, len(got[i]), len(want))
			}
			pos := map[int32]int{} // a row's place in the input
			for k, j := range want {
				pos[j] = k
			}
			for k, j := range got[i] {
				if _, ok := pos[j]; !ok {
					t.Fatalf("batch %d: row %d is not an input row (or twice)", i, j)
				}
				if k == 0 {
					delete(pos, j)
					continue
				}
				p, e := &b.Events[got[i][k-1]], &b.Events[j]
				c := cmp.Or(cmp.Compare(p.Tenant, e.Tenant), cmp.Compare(p.Actor.ID, e.Actor.ID))
				if c > 0 {
					t.Fatalf("batch %d: (%q, %q) before (%q, %q)", i, p.Tenant, p.Actor.ID, e.Tenant, e.Actor.ID)
				}
				delete(pos, j)
			}
			if len(pos) != 0 {
				t.Fatalf("batch %d: %d input rows missing", i, len(pos))
			}
			// Each actor's rows in their input order.
			last := map[[2]string]int{}
			at := map[int32]int{}
			for k, j := range want {
				at[j] = k
			}
			for _, j := range got[i] {
				e := &b.Events[j]
				key := [2]string{e.Tenant, e.Actor.ID}
				if p, ok := last[key]; ok && p >= at[j] {
					t.Fatalf("batch %d: actor %q's row %d (input place %d) after its row at input place %d", i, key, j, at[j], p)
				}
				last[key] = at[j]
			}
		}
	}
	t.Run("all_rows", func(t *testing.T) {
		rows := make([][]int32, len(bs))
		for i, b := range bs {
			rows[i] = make([]int32, len(b.Events))
			for j := range rows[i] {
				rows[i][j] = int32(j)
			}
		}
		check(t, rows, store.ActorOrder(bs, nil))
	})
	t.Run("subset", func(t *testing.T) {
		rows := make([][]int32, len(bs))
		for i, b := range bs {
			for j := range b.Events {
				if rng.IntN(3) != 0 {
					rows[i] = append(rows[i], int32(j))
				}
			}
			rng.Shuffle(len(rows[i]), func(a, c int) { rows[i][a], rows[i][c] = rows[i][c], rows[i][a] })
		}
		check(t, rows, store.ActorOrder(bs, rows))
	})
}

// TestInsertActorOrder: an INSERT of rows of many actors interleaved in
// time order stores what ClickHouse would store from them in that order:
// events holds each actor's rows by time, rows of the same second in the
// order they came (one part of one granule per shard, read in storage
// order), and actor_minute's anyLast columns hold the last row of each
// (minute, actor) in the input's order (the roles change from row to
// row). On one server the INSERT's query_log shows the work actorOrder
// saves: events' and events_by_hour's blocks already in their sort order
// (MergeTreeDataWriterBlocksAlreadySorted, 0 when the rows come
// interleaved).
func TestInsertActorOrder(t *testing.T) {
	t.Parallel() // a database of its own
	cfg := storetest.Config(t)
	s := storetest.Open(t, cfg)
	rng := rand.New(rand.NewPCG(3, 5))
	base := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	const n = 3000
	evs := make([]models.Event, n)
	for i := range evs {
		a := rng.IntN(40)
		evs[i] = models.Event{
			// Ids and customers in no order, so that no view's table
			// gets its rows already sorted by chance.
			EventID: fmt.Sprintf("%08x-%d", rng.Uint32(), i),
			// Within one hour, two or three rows a second.
			TS:     base.Add(time.Duration(i) * 1100 * time.Millisecond / 3),
			Tenant: []string{"t1", "t2"}[a%2], Actor: models.Actor{ID: fmt.Sprintf("actor-%d", a), Type: models.ActorHuman, Role: fmt.Sprintf("role-%d", i)},
			Action: models.ActionRead, Store: "crm", Resource: models.Resource{Type: "customer_profile"},
			SubjectID: fmt.Sprintf("%08x", rng.Uint32()), Records: 1, Result: models.ResultAllowed,
		}
	}
	ctx := clickhouse.Context(t.Context(), clickhouse.WithQueryID(cfg.Database+"-insert"), clickhouse.WithSettings(clickhouse.Settings{"log_queries": 1}))
	if err := s.InsertEvents(ctx, evs, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// events: each actor's rows in (ts, input) order.
	rows := queryStrings(t, cfg, "SELECT event_id FROM events")
	if len(rows) != n {
		t.Fatalf("%d rows in events, want %d", len(rows), n)
	}
	index := map[string]int{}
	for i, e := range evs {
		index[e.EventID] = i
	}
	last := map[string]int{}
	for _, id := range rows {
		i := index[id]
		a := evs[i].Actor.ID
		if p, ok := last[a]; ok && (evs[p].TS.Unix() > evs[i].TS.Unix() || (evs[p].TS.Unix() == evs[i].TS.Unix() && p > i)) {
			t.Fatalf("events: %s's row %d (%s) stored after its row %d (%s)", a, i, evs[i].TS, p, evs[p].TS)
		}
		last[a] = i
	}
	// actor_minute: anyLast is the last row of the minute in input order.
	want := map[string]string{}
	for _, e := range evs {
		want[fmt.Sprintf("%d %s %s", e.TS.Truncate(time.Minute).Unix(), e.Tenant, e.Actor.ID)] = e.Actor.Role
	}
	got := queryStrings(t, cfg, `SELECT concat(toString(toUInt32(minute)), ' ', tenant, ' ', actor_id, '|', anyLastMerge(actor_role_any))
FROM actor_minute GROUP BY minute, tenant, actor_id`)
	if len(got) != len(want) {
		t.Fatalf("actor_minute: %d groups, want %d", len(got), len(want))
	}
	for _, g := range got {
		var key, role string
		for i := len(g) - 1; i >= 0; i-- {
			if g[i] == '|' {
				key, role = g[:i], g[i+1:]
				break
			}
		}
		if want[key] != role {
			t.Errorf("actor_minute %s: anyLast role %q, want %q (the minute's last row in input order)", key, role, want[key])
		}
	}
	if cfg.Cluster != "" {
		return // the shards' INSERTs are other queries on other nodes
	}
	storetest.Exec(t, cfg, "SYSTEM FLUSH LOGS")
	sorted := storetest.Count(t, cfg, `SELECT toUInt64(ProfileEvents.Values[indexOf(ProfileEvents.Names, 'MergeTreeDataWriterBlocksAlreadySorted')])
FROM system.query_log WHERE type = 2 AND query_id = ?`, cfg.Database+"-insert")
	if sorted < 2 {
		t.Errorf("the INSERT wrote %d blocks already in their table's order, want at least 2 (events and events_by_hour)", sorted)
	}
}

// queryStrings returns the one String column of query's rows, in the order
// the server sends them.
func queryStrings(tb testing.TB, cfg store.Config, query string, args ...any) []string {
	tb.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{cfg.Addr}, Auth: clickhouse.Auth{Database: cfg.Database}})
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.Query(tb.Context(), query, args...)
	if err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			tb.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}
