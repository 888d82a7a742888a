package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// TableCopy is what CopyFromServer did to one table.
type TableCopy struct {
	Table string `json:"table"`
	// Source is the table's row count on the source server, Copied the
	// rows the target holds after the copy (for a sharded table, summed
	// over its shards through the Distributed table).
	Source uint64 `json:"source"`
	Copied uint64 `json:"copied"`
}

var hostPortRe = regexp.MustCompile(`^[A-Za-z0-9._-]+:[0-9]{1,5}$`)

// CopyFromServer copies a single server's chatwarden database (srcAddr,
// host:port of its native protocol, database srcDB, read as the
// ClickHouse user user with password) into this store's database on a
// cluster, which must be migrated and empty: the move from one server to a
// cluster (docs/scaling.md, "From one server to a cluster"). Each table
// the migrations create is copied with INSERT ... SELECT ... FROM remote(),
// run by the node this store is connected to, except the tables that
// materialized views fill (event_ids, events_by_subject, actor_minute,
// shares): inserting the events through the Distributed table fills them
// on each shard, and schema_migrations, which Migrate wrote. Sharded tables
// go through their Distributed tables, so every row lands on its shard.
// It returns each table's counts; a table whose copy has fewer rows than
// its source is an error.
func (s *Store) CopyFromServer(ctx context.Context, srcAddr, srcDB, user, password string) ([]TableCopy, error) {
	if s.cfg.Cluster == "" {
		return nil, errors.New("copying from a server: clickhouse.cluster is not set (the target must be a cluster)")
	}
	if !hostPortRe.MatchString(srcAddr) {
		return nil, fmt.Errorf("copying from a server: %q is not host:port", srcAddr)
	}
	if !identRe.MatchString(srcDB) {
		return nil, fmt.Errorf("copying from a server: database %q is not a plain identifier", srcDB)
	}
	tables, err := copiedTables()
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		var n uint64
		if err := s.conn.QueryRow(ctx, "SELECT count() FROM "+t).Scan(&n); err != nil {
			return nil, fmt.Errorf("counting the rows of %s: %w", t, err)
		}
		if n > 0 {
			return nil, fmt.Errorf("copying from a server: %s.%s already has %d rows; copy into a fresh database", s.cfg.Database, t, n)
		}
	}
	// The address, database and table names are checked above; the user
	// and password are bound.
	remote := func(t string) string {
		return "remote('" + srcAddr + "', " + srcDB + ", " + t + ", ?, ?)"
	}
	var out []TableCopy
	for _, t := range tables {
		cols, err := s.insertableColumns(ctx, t)
		if err != nil {
			return out, err
		}
		c := TableCopy{Table: t}
		if err := s.conn.QueryRow(ctx, "SELECT count() FROM "+remote(t), user, password).Scan(&c.Source); err != nil {
			return out, fmt.Errorf("counting the rows of %s on %s: %w", t, srcAddr, err)
		}
		list := strings.Join(cols, ", ")
		if err := s.exec(ctx, "INSERT INTO "+t+" ("+list+") SELECT "+list+" FROM "+remote(t), user, password); err != nil {
			return out, fmt.Errorf("copying %s from %s: %w", t, srcAddr, err)
		}
		if err := s.conn.QueryRow(ctx, "SELECT count() FROM "+t).Scan(&c.Copied); err != nil {
			return out, fmt.Errorf("counting the copied rows of %s: %w", t, err)
		}
		out = append(out, c)
		if c.Copied < c.Source {
			return out, fmt.Errorf("copying %s from %s: %d of %d rows arrived", t, srcAddr, c.Copied, c.Source)
		}
		s.log.Info("copied table from a server", "table", t, "rows", c.Copied, "source", srcAddr)
	}
	return out, nil
}

// copiedTables lists, in migration order, the tables the migrations create
// that CopyFromServer copies: all but the ones materialized views fill.
func copiedTables() ([]string, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	var tables []string
	viewTargets := map[string]bool{}
	gone := dropped(ms)
	for _, m := range ms {
		for _, stmt := range m.Statements {
			if v := clusterViewRe.FindStringSubmatch(strings.TrimSpace(stmt)); v != nil {
				viewTargets[v[2]] = true
			} else if c := clusterCreateRe.FindStringSubmatch(strings.TrimSpace(stmt)); c != nil && !gone[c[1]] {
				tables = append(tables, c[1])
			}
		}
	}
	out := tables[:0]
	for _, t := range tables {
		if !viewTargets[t] {
			out = append(out, t)
		}
	}
	return out, nil
}

// insertableColumns returns the columns of table that an INSERT names
// (not MATERIALIZED or ALIAS), in table order.
func (s *Store) insertableColumns(ctx context.Context, table string) ([]string, error) {
	rows, err := s.conn.Query(ctx, `SELECT name FROM system.columns WHERE database = ? AND table = ?
AND default_kind NOT IN ('MATERIALIZED', 'ALIAS')`, s.cfg.Database, table)
	if err != nil {
		return nil, fmt.Errorf("reading the columns of %s: %w", table, err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the columns of %s: %w", table, err)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("table %s has no columns in %s", table, s.cfg.Database)
	}
	return cols, nil
}
