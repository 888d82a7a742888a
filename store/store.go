// Package store is chatwarden's one place for SQL: the ClickHouse schema and
// its migrations, batch inserts, and every query that detectors, the CLI and
// the pages run. It speaks ClickHouse's native protocol through clickhouse-go
// and returns models values, never driver rows.
//
// The SQL runs on Debian's ClickHouse 18.16 and on current ClickHouse
// (24.x–26.x): no DateTime64, TTL, window functions, JSON functions, skip
// indexes or server-side {name:Type} parameters; queries are bound
// client-side with ? placeholders; INSERTs name their columns.
// Version-specific settings are chosen from version() at connect.
package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Config says how to reach ClickHouse. The zero value plus Addr works.
type Config struct {
	// Addr is host:port of the native protocol (default 127.0.0.1:9000).
	Addr string `yaml:"addr"`
	// Database is created if missing (default "chatwarden").
	Database string `yaml:"database"`
	// User and Password authenticate (default user "default", no password).
	User         string `yaml:"user"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// TLS turns on TLS to the native port; TLSInsecure skips verification
	// (tests with self-signed certificates only); TLSCAFile trusts a CA.
	TLS         bool   `yaml:"tls"`
	TLSCAFile   string `yaml:"tls_ca_file"`
	TLSInsecure bool   `yaml:"tls_insecure"`
	// DialTimeout bounds connecting (default 5s).
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// QueryTimeout bounds a single query (default 60s).
	QueryTimeout time.Duration `yaml:"query_timeout"`
	// MaxOpenConns bounds the pool (default 8).
	MaxOpenConns int `yaml:"max_open_conns"`
	// Compression is the native protocol's block compression: lz4, none,
	// or auto (the default, also when empty): none to a server at a
	// loopback address (localhost, 127.0.0.0/8, ::1), lz4 to any other.
	// On the same host LZ4 saves no network and costs the client CPU
	// (about 1 s of the eval replay's 1.6M events; the server's
	// decompression is too small to show in a profile), while over a
	// network it saves most of the bytes (docs/scaling.md, "Ingest hot
	// path").
	Compression string `yaml:"compression"`
	// Cluster names a ClickHouse cluster (its remote_servers entry, with
	// ZooKeeper, {shard}/{replica} macros and distributed_ddl configured):
	// migrations then run ON CLUSTER and create Replicated*MergeTree
	// tables, the event tables sharded by (tenant, actor) under Distributed
	// tables (docs/scaling.md). Empty: one server, plain MergeTree tables.
	Cluster string `yaml:"cluster"`
	// LogQueries asks the server to write every query to system.query_log.
	// The test suite turns it on so that the SQL conformance check can replay
	// every query it ran on a current ClickHouse.
	LogQueries bool `yaml:"log_queries"`
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:9000"
	}
	if c.Database == "" {
		c.Database = "chatwarden"
	}
	if c.User == "" {
		c.User = "default"
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.QueryTimeout <= 0 {
		c.QueryTimeout = 60 * time.Second
	}
	if c.MaxOpenConns <= 0 {
		c.MaxOpenConns = 8
	}
	return c
}

// Validate names the first bad field.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if _, _, err := splitHostPort(c.Addr); err != nil {
		return fmt.Errorf("clickhouse.addr: %w", err)
	}
	if !identRe.MatchString(c.Database) {
		return fmt.Errorf("clickhouse.database: %q is not a plain identifier", c.Database)
	}
	if c.Cluster != "" && !identRe.MatchString(c.Cluster) {
		return fmt.Errorf("clickhouse.cluster: %q is not a plain identifier", c.Cluster)
	}
	switch c.Compression {
	case "", "auto", "lz4", "none":
	default:
		return fmt.Errorf("clickhouse.compression: %q is not auto, lz4 or none", c.Compression)
	}
	if c.Password != "" && c.PasswordFile != "" {
		return errors.New("clickhouse.password and clickhouse.password_file: set one, not both")
	}
	if !c.TLS && (c.TLSCAFile != "" || c.TLSInsecure) {
		return errors.New("clickhouse.tls_ca_file or tls_insecure: set, but clickhouse.tls is false (the connection would be plain text)")
	}
	if c.TLSInsecure && c.TLSCAFile != "" {
		return errors.New("clickhouse.tls_insecure: skips certificate verification, so clickhouse.tls_ca_file would be ignored; set one")
	}
	return nil
}

func splitHostPort(addr string) (string, int, error) {
	i := strings.LastIndexByte(addr, ':')
	if i <= 0 {
		return "", 0, fmt.Errorf("%q is not host:port", addr)
	}
	p, err := strconv.Atoi(addr[i+1:])
	if err != nil || p <= 0 || p > 65535 {
		return "", 0, fmt.Errorf("%q has no valid port", addr)
	}
	return addr[:i], p, nil
}

// Version is a ClickHouse server version.
type Version struct {
	Major, Minor int
	Raw          string
}

// ParseVersion parses the output of version(), e.g. "18.16.1" or "26.1.2.1".
func ParseVersion(s string) (Version, error) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return Version{}, fmt.Errorf("parsing clickhouse version %q", s)
	}
	maj, err1 := strconv.Atoi(parts[0])
	min, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return Version{}, fmt.Errorf("parsing clickhouse version %q", s)
	}
	return Version{Major: maj, Minor: min, Raw: s}, nil
}

// AtLeast reports whether v is major.minor or newer.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || (v.Major == major && v.Minor >= minor)
}

// QuerySettings returns the settings chatwarden sends with every query on a
// server of version v. Settings are integers or booleans (18.16 rejects
// strings in the native protocol's settings block).
func QuerySettings(v Version) clickhouse.Settings {
	s := clickhouse.Settings{
		// Big IN lists from event-id dedupe and responders' filters.
		"max_query_size": 4 << 20,
	}
	_ = v // no version-specific setting is needed yet; this is where one goes.
	return s
}

// ClusterQuerySettings returns the settings chatwarden adds on a cluster
// (Config.Cluster). insert_distributed_sync (an alias of
// distributed_foreground_insert on current ClickHouse) makes an INSERT into
// a Distributed table return only when every shard's part of the block is
// written to a replica: an insert that returned is stored, as on one
// server, and a retried batch reaches the same shards with the same blocks,
// which ReplicatedMergeTree's block deduplication drops (docs/scaling.md,
// "Inserts").
func ClusterQuerySettings() clickhouse.Settings {
	return clickhouse.Settings{"insert_distributed_sync": 1}
}

// Store is a connection pool to one chatwarden database.
type Store struct {
	conn    driver.Conn
	cfg     Config
	version Version
	// zone says, once read, whether every day of the server's time zone
	// starts on a whole UTC hour (hourDaysSQL), so that a day is a union
	// of actor_hour's UTC hours.
	zone *zoneInfo
	// noRollups makes the readers that have a rollup read the raw tables
	// instead (tests compare the two).
	noRollups bool
	log       *slog.Logger
	chain     *auditChain
	// node opens a connection to another node of the cluster (host:port)
	// with this store's database, credentials and settings (migrations).
	node func(addr string) (driver.Conn, error)
	// replica opens a small pool to a replica of the cluster (host:port)
	// for shard-local detection reads; shards holds those pools and the
	// cluster's layout (shardlocal.go).
	replica func(addr string) (driver.Conn, error)
	shards  shardReads
	// windowRows is how many rows the latest WindowAggregates read
	// returned: the next one's capacity, so that its result does not
	// grow by doubling (rows of a few hundred bytes, thousands a read).
	windowRows atomic.Int64
	// passThrough is set once MigrateSchema found events a Null table
	// (PassThroughSchema): the reads of raw events fail with
	// ErrNoRawEvents.
	passThrough atomic.Bool
}

// Open connects to ClickHouse, reads the server's version and creates the
// database if it is missing. It does not migrate.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	password := cfg.Password
	if cfg.PasswordFile != "" {
		b, err := readSecret(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("clickhouse.password_file: %w", err)
		}
		password = b
	}
	opts := func(addr, db string, settings clickhouse.Settings) *clickhouse.Options {
		o := &clickhouse.Options{
			Protocol:        clickhouse.Native,
			Addr:            []string{addr},
			Auth:            clickhouse.Auth{Database: db, Username: cfg.User, Password: password},
			DialTimeout:     cfg.DialTimeout,
			ReadTimeout:     cfg.QueryTimeout,
			MaxOpenConns:    cfg.MaxOpenConns,
			MaxIdleConns:    cfg.MaxOpenConns,
			ConnMaxLifetime: time.Hour,
			Settings:        settings,
			// 18.16's query log has no database column: the client name
			// ("clickhouse-go/2.x (database NAME; ...)") tells which
			// database a logged query ran in (QueriesSince).
			ClientInfo: clickhouse.ClientInfo{Comment: []string{clientDatabase + db}},
		}
		if compresses(cfg.Compression, addr) {
			o.Compression = &clickhouse.Compression{Method: clickhouse.CompressionLZ4}
		}
		if cfg.TLS {
			tc, err := tlsConfig(cfg)
			if err == nil {
				o.TLS = tc
			}
		}
		return o
	}
	if cfg.TLS {
		if _, err := tlsConfig(cfg); err != nil {
			return nil, err
		}
	}
	// First connect to "default" to learn the version and create the database.
	boot, err := clickhouse.Open(opts(cfg.Addr, "default", nil))
	if err != nil {
		return nil, fmt.Errorf("connecting to clickhouse at %s: %w", cfg.Addr, err)
	}
	defer boot.Close()
	var raw string
	if err := boot.QueryRow(ctx, "SELECT version()").Scan(&raw); err != nil {
		return nil, fmt.Errorf("reading clickhouse version at %s: %w", cfg.Addr, err)
	}
	v, err := ParseVersion(raw)
	if err != nil {
		return nil, err
	}
	// The database name is checked against identRe in Validate: it is an
	// identifier, not user text, and identifiers cannot be bound.
	onCluster := ""
	if cfg.Cluster != "" {
		onCluster = " ON CLUSTER " + cfg.Cluster // an identifier, checked in Validate
	}
	if err := boot.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+cfg.Database+onCluster); err != nil {
		return nil, fmt.Errorf("creating database %s: %w", cfg.Database, err)
	}
	settings := QuerySettings(v)
	if cfg.LogQueries {
		settings["log_queries"] = 1
	}
	if cfg.Cluster != "" {
		for k, v := range ClusterQuerySettings() {
			settings[k] = v
		}
	}
	conn, err := clickhouse.Open(opts(cfg.Addr, cfg.Database, settings))
	if err != nil {
		return nil, fmt.Errorf("connecting to clickhouse database %s: %w", cfg.Database, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("pinging clickhouse database %s: %w", cfg.Database, err)
	}
	log.Info("connected to clickhouse", "addr", cfg.Addr, "database", cfg.Database, "version", raw)
	node := func(addr string) (driver.Conn, error) {
		o := opts(addr, cfg.Database, settings)
		o.MaxOpenConns, o.MaxIdleConns = 1, 1
		return clickhouse.Open(o)
	}
	replica := func(addr string) (driver.Conn, error) {
		o := opts(addr, cfg.Database, settings)
		o.MaxOpenConns, o.MaxIdleConns = min(cfg.MaxOpenConns, 4), min(cfg.MaxOpenConns, 4)
		return clickhouse.Open(o)
	}
	return &Store{conn: conn, cfg: cfg, version: v, zone: &zoneInfo{}, log: log, chain: newAuditChain(), node: node, replica: replica,
		shards: shardReads{conns: map[string]driver.Conn{}, downUntil: map[string]time.Time{}, warned: map[int]bool{}}}, nil
}

// compresses reports whether blocks sent to and read from the server at
// addr (host:port) are LZ4-compressed under the setting mode (see
// Config.Compression): auto (or empty) compresses unless the host is a
// loopback address.
func compresses(mode, addr string) bool {
	switch mode {
	case "lz4":
		return true
	case "none":
		return false
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

// RawReads returns a Store over the same connections whose readers that
// have a rollup (DailyVolume and VendorActivity: actor_hour) read the raw
// tables instead (actor_minute, events), as they do for ranges the rollup
// cannot answer. It is for checking a rollup: the tests compare the two,
// and an operator can after a back-fill.
func (s *Store) RawReads() *Store {
	return &Store{conn: s.conn, cfg: s.cfg, version: s.version, zone: s.zone, noRollups: true, log: s.log,
		chain: s.chain, node: s.node, replica: s.replica,
		shards: shardReads{conns: map[string]driver.Conn{}, downUntil: map[string]time.Time{}, warned: map[int]bool{}}}
}

// hourDaysSQL counts the days of 2000 to 2060 of the server's time zone
// (the day of every sixth UTC hour) that do not start on a whole UTC hour
// (the zones with a half- or quarter-hour offset): 0 means every day is a
// union of UTC hours.
const hourDaysSQL = `SELECT countIf(toUInt32(toStartOfDay(toDateTime(946684800 + number * 21600))) % 3600 != 0)
FROM numbers(87660)`

// zoneInfo caches what hourDaysSQL said.
type zoneInfo struct {
	mu       sync.Mutex
	read     bool
	hourDays bool
}

// hourDays reports whether every day of the server's time zone starts on
// a whole UTC hour, asking the server the first time.
func (s *Store) hourDays(ctx context.Context) (bool, error) {
	s.zone.mu.Lock()
	defer s.zone.mu.Unlock()
	if !s.zone.read {
		var off uint64
		if err := s.conn.QueryRow(ctx, hourDaysSQL).Scan(&off); err != nil {
			return false, fmt.Errorf("reading the server's time zone: %w", err)
		}
		s.zone.read, s.zone.hourDays = true, off == 0
	}
	return s.zone.hourDays, nil
}

// Close closes the pool and the audit copier, if any.
func (s *Store) Close() error {
	err := errors.Join(s.conn.Close(), s.shards.close())
	if c := s.chain.copy; c != nil {
		err = errors.Join(err, c.Close())
	}
	return err
}

// Version returns the server's version.
func (s *Store) Version() Version { return s.version }

// Database returns the database name.
func (s *Store) Database() string { return s.cfg.Database }

// Ping checks that the server answers.
func (s *Store) Ping(ctx context.Context) error { return s.conn.Ping(ctx) }

// DropDatabase drops the store's database (on every node of a cluster).
// Tests and `chatwarden eval` use it.
func (s *Store) DropDatabase(ctx context.Context) error {
	return s.conn.Exec(ctx, "DROP DATABASE IF EXISTS "+s.cfg.Database+s.onCluster())
}

// exec runs a statement that returns no rows.
func (s *Store) exec(ctx context.Context, query string, args ...any) error {
	return s.conn.Exec(ctx, query, args...)
}

// stringsOf runs query, which returns one String column, and returns its
// values; what names the query in errors.
func (s *Store) stringsOf(ctx context.Context, what, query string, args ...any) ([]string, error) {
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// countsOf runs query, whose rows are (a name, a UInt64 count), and
// returns the counts by name; what names the query in its error.
func (s *Store) countsOf(ctx context.Context, what, query string, args ...any) (map[string]uint64, error) {
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var k string
		var n uint64
		if err := rows.Scan(&k, &n); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out[k] = n
	}
	return out, rows.Err()
}

// InList binds a non-empty list of strings for "x IN ?": it renders as a
// quoted tuple ('a', 'b'). (A plain slice binds as an array, which IN
// rejects on 18.16.) Callers must not pass an empty list.
func InList(ss []string) clickhouse.GroupSet {
	vals := make([]any, len(ss))
	for i, s := range ss {
		vals[i] = s
	}
	return clickhouse.GroupSet{Value: vals}
}

// insertRow inserts one row through the native batch protocol. (On 18.16 an
// INSERT ... VALUES with bound arguments through Exec hangs; batches work on
// every version.)
func (s *Store) insertRow(ctx context.Context, insert string, values ...any) error {
	batch, err := s.conn.PrepareBatch(ctx, insert)
	if err != nil {
		return err
	}
	if err := batch.Append(values...); err != nil {
		_ = batch.Abort()
		return err
	}
	return batch.Send()
}

// IsRetryable reports whether err is worth retrying: the server is
// unreachable, the connection broke or the server is overloaded, as opposed
// to a schema or syntax error that will fail again.
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		switch ex.Code {
		case 159, 160, 164, 202, 203, 209, 210, 241, 242, 243, 252, 285, 319, 425, 999:
			// timeout, too slow, readonly, too many simultaneous queries,
			// no free connection, socket timeout, network error, memory
			// limit, table is read only, not enough space, too many parts,
			// too few live replicas, unknown status of insert, system error,
			// keeper exception.
			return true
		case 32, 279:
			// On a cluster, a Distributed insert or query whose remote
			// node died mid-way (32, "Attempt to read after eof: while
			// receiving packet from" the node) or whose shard has no
			// replica reachable (279, all connection tries failed): a
			// retry reaches a live replica, or waits for one. The
			// retried batch is identical, so the part that was written
			// is dropped by block deduplication
			// (TestDrillClusterReplicaKill found 32).
			return true
		case 75, 76, 1000:
			// The server's disk: cannot write to a file (errno 28, "No
			// space left on device"), cannot open a file (EROFS), and the
			// Poco exception 18.16 answers for "File is read-only". They
			// last until an operator frees or remounts the disk; the caller
			// retries with back-off and reports itself unhealthy meanwhile
			// rather than stopping (issue 10 item 13).
			return true
		}
		return false
	}
	return true
}

func tlsConfig(cfg Config) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.TLSInsecure} //nolint:gosec // opt-in for tests
	if cfg.TLSCAFile != "" {
		pool, err := loadCA(cfg.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("clickhouse.tls_ca_file: %w", err)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}
