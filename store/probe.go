package store

import (
	"context"
	"fmt"
	"reflect"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Probe is a plain connection as any ClickHouse user, for tests that check
// SQL shipped outside this package the way its real client runs it: the
// Grafana dashboards' panels as Grafana's read-only user. Unlike Open it
// creates nothing, migrates nothing and sends no settings (a readonly user
// may not change them). Never pass it user input.
type Probe struct {
	conn driver.Conn
}

// OpenProbe connects to cfg.Addr as cfg.User with cfg.Database as the
// default database. It fails when the server refuses the login.
func OpenProbe(ctx context.Context, cfg Config) (*Probe, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Protocol:    clickhouse.Native,
		Addr:        []string{cfg.Addr},
		Auth:        clickhouse.Auth{Database: cfg.Database, Username: cfg.User, Password: cfg.Password},
		DialTimeout: cfg.DialTimeout,
		ReadTimeout: cfg.QueryTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to clickhouse at %s as %s: %w", cfg.Addr, cfg.User, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("logging in to clickhouse at %s as %s: %w", cfg.Addr, cfg.User, err)
	}
	return &Probe{conn: conn}, nil
}

// Close closes the connection.
func (p *Probe) Close() error { return p.conn.Close() }

// Query runs sql as is and returns its column names and every row, each
// value formatted with fmt's %v.
func (p *Probe) Query(ctx context.Context, sql string) ([]string, [][]string, error) {
	rows, err := p.conn.Query(ctx, sql)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	var out [][]string
	for rows.Next() {
		dest := make([]any, len(types))
		for i, ct := range types {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, nil, err
		}
		row := make([]string, len(dest))
		for i, d := range dest {
			row[i] = fmt.Sprint(reflect.ValueOf(d).Elem().Interface())
		}
		out = append(out, row)
	}
	return rows.Columns(), out, rows.Err()
}

// Exec runs a statement that returns no rows (tests use it to show that a
// read-only user's write is refused).
func (p *Probe) Exec(ctx context.Context, sql string) error {
	return p.conn.Exec(ctx, sql)
}
