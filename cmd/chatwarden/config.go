package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/chatwarden/chatwarden/alert"
	"github.com/chatwarden/chatwarden/dashboards"
	"github.com/chatwarden/chatwarden/detect"
	"github.com/chatwarden/chatwarden/ingest"
	"github.com/chatwarden/chatwarden/pseudonym"
	"github.com/chatwarden/chatwarden/report"
	"github.com/chatwarden/chatwarden/store"
)

// Config is the whole configuration file. Each section is owned by the
// package it configures; this type only gathers them.
type Config struct {
	ClickHouse store.Config          `yaml:"clickhouse"`
	Pseudonym  PseudonymConfig       `yaml:"pseudonym"`
	Log        LogConfig             `yaml:"log"`
	Ingest     ingest.Config         `yaml:"ingest"`
	Serve      ServeConfig           `yaml:"serve"`
	Dashboards dashboards.Config     `yaml:"dashboards"`
	Report     report.Config         `yaml:"report"`
	Detect     detect.Config         `yaml:"detect"`
	Alert      alert.Config          `yaml:"alert"`
	Findings   ingest.FindingsConfig `yaml:"findings"`
	Retention  store.RetentionConfig `yaml:"retention"`
	Audit      AuditConfig           `yaml:"audit"`
}

// AuditConfig sets where the audit trail is kept besides ClickHouse.
type AuditConfig struct {
	// KafkaTopic, when set, receives a copy of every audit entry (JSON,
	// keyed by writer) on ingest.brokers with ingest's TLS and SASL
	// settings; an audited action is refused when its copy fails. The
	// topic must exist. `chatwarden audit verify -kafka` compares it with
	// the audit_log table.
	KafkaTopic string `yaml:"kafka_topic"`
}

var kafkaTopicRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)

// Validate names the bad field.
func (c AuditConfig) Validate() error {
	if c.KafkaTopic != "" && !kafkaTopicRe.MatchString(c.KafkaTopic) {
		return fmt.Errorf("audit.kafka_topic: %q is not a Kafka topic name (letters, digits, '.', '_', '-', at most 249)", c.KafkaTopic)
	}
	return nil
}

// PseudonymConfig says where the HMAC key for customer ids comes from.
type PseudonymConfig struct {
	// KeyFile holds the key (hex or raw bytes, at least 32 bytes).
	KeyFile string `yaml:"key_file"`
	// KeyEnv names an environment variable that holds the key
	// (default CHATWARDEN_PSEUDONYM_KEY), used when KeyFile is empty.
	KeyEnv string `yaml:"key_env"`
	// KeyID is the current key's one-character id (default "1").
	KeyID string `yaml:"key_id"`
	// OldKeys are previous keys, kept to resolve older pseudonyms.
	OldKeys []OldKey `yaml:"old_keys"`
}

// OldKey is a retired pseudonymization key.
type OldKey struct {
	ID      string `yaml:"id"`
	KeyFile string `yaml:"key_file"`
}

// LogConfig sets logging.
type LogConfig struct {
	// Level is debug, info, warn or error (default info).
	Level string `yaml:"level"`
	// Format is text or json (default text).
	Format string `yaml:"format"`
}

// loadConfig reads path (if not empty) strictly, applies CHATWARDEN_*
// environment overrides, and validates. An unknown key is an error naming it.
func loadConfig(path string) (Config, error) {
	var c Config
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("reading config: %w", err)
		}
		if err := decodeStrict(b, &c); err != nil {
			return c, fmt.Errorf("config %s: %w", path, err)
		}
	}
	applyEnv(&c)
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

// decodeStrict decodes YAML, rejecting unknown fields and trailing documents.
// Every error names a line (or a field).
func decodeStrict(b []byte, v any) error {
	if err := checkYAMLText(b); err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file is the defaults
		}
		// yaml.v3 leaves the position out of syntax errors on the first
		// line (its marks are 0-based and 0 means "none").
		if msg, ok := strings.CutPrefix(err.Error(), "yaml: "); ok && !strings.HasPrefix(msg, "line ") &&
			!strings.HasPrefix(msg, "unmarshal errors") && !strings.Contains(msg, "aliasing") {
			return fmt.Errorf("yaml: line 1: %s", msg)
		}
		return err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("yaml: line %d: more than one YAML document", extra.Line)
	}
	return nil
}

// checkYAMLText rejects what the YAML reader refuses without saying where
// (invalid UTF-8, control characters), naming the line and column.
func checkYAMLText(b []byte) error {
	line, col := 1, 1
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			return fmt.Errorf("yaml: line %d column %d: invalid UTF-8", line, col)
		case r == '\n':
			line, col = line+1, 0
		case r == '\t' || r == '\r' || r == 0xFEFF && i == 0:
		case r < 0x20 || r == 0x7F || (r >= 0x80 && r < 0xA0 && r != 0x85) || r == 0xFFFE || r == 0xFFFF:
			return fmt.Errorf("yaml: line %d column %d: control character %U is not allowed", line, col, r)
		}
		i += n
		col++
	}
	return nil
}

// applyEnv applies the documented environment overrides.
func applyEnv(c *Config) {
	set := func(dst *string, name string) {
		if v, ok := os.LookupEnv(name); ok && v != "" {
			*dst = v
		}
	}
	set(&c.ClickHouse.Addr, "CHATWARDEN_CLICKHOUSE_ADDR")
	set(&c.ClickHouse.Compression, "CHATWARDEN_CLICKHOUSE_COMPRESSION")
	set(&c.ClickHouse.Database, "CHATWARDEN_CLICKHOUSE_DATABASE")
	set(&c.ClickHouse.User, "CHATWARDEN_CLICKHOUSE_USER")
	set(&c.ClickHouse.Password, "CHATWARDEN_CLICKHOUSE_PASSWORD")
	set(&c.Ingest.SASLPassword, "CHATWARDEN_KAFKA_SASL_PASSWORD")
	set(&c.Pseudonym.KeyFile, "CHATWARDEN_PSEUDONYM_KEY_FILE")
	set(&c.Log.Level, "CHATWARDEN_LOG_LEVEL")
	if v := os.Getenv("CHATWARDEN_KAFKA_BROKERS"); v != "" {
		c.Ingest.Brokers = strings.Split(v, ",")
	}
}

// Validate checks every section and names the bad field.
func (c Config) Validate() error {
	var errs []error
	if err := c.ClickHouse.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Ingest.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Serve.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Retention.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Audit.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Dashboards.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Report.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Detect.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Alert.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Findings.Validate(); err != nil {
		errs = append(errs, err)
	} else if fc, ic := c.Findings.WithDefaults(), c.Ingest.WithDefaults(); fc.Transport == ingest.FindingsKafka {
		if fc.Topic == ic.AccessTopic || fc.Topic == ic.ConsentTopic || fc.Topic == ic.DeadLetterTopic || fc.Topic == c.Audit.KafkaTopic {
			errs = append(errs, fmt.Errorf("findings.topic: %q is already another topic of the configuration", fc.Topic))
		}
		if fc.Group == ic.Group {
			errs = append(errs, fmt.Errorf("findings.group: %q is ingest.group; the alert consumer group needs its own", fc.Group))
		}
	}
	users := map[string]bool{}
	for _, u := range c.Dashboards.Users {
		users[u.Name] = true
	}
	for i, l := range c.Alert.Slack.Users {
		if l.User != "" && !users[l.User] {
			errs = append(errs, fmt.Errorf("alert.slack.users[%d].user: %q is not a dashboards.users name", i, l.User))
		}
	}
	if id := c.Pseudonym.KeyID; id != "" && (len(id) != 1 || !strings.ContainsAny(id, "0123456789abcdefghijklmnopqrstuvwxyz")) {
		errs = append(errs, fmt.Errorf("pseudonym.key_id: %q must be one character 0-9 or a-z", id))
	}
	for i, k := range c.Pseudonym.OldKeys {
		if len(k.ID) != 1 || k.KeyFile == "" {
			errs = append(errs, fmt.Errorf("pseudonym.old_keys[%d]: needs a one-character id and a key_file", i))
		}
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q is not debug, info, warn or error", c.Log.Level))
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format: %q is not text or json", c.Log.Format))
	}
	return errors.Join(errs...)
}

// pseudonymizer builds the HMAC pseudonymizer from the config.
func (c Config) pseudonymizer() (*pseudonym.Pseudonymizer, error) {
	p := c.Pseudonym
	env := p.KeyEnv
	if env == "" {
		env = "CHATWARDEN_PSEUDONYM_KEY"
	}
	id := byte('1')
	if p.KeyID != "" {
		id = p.KeyID[0]
	}
	cur, err := pseudonym.LoadKey(p.KeyFile, env, id)
	if err != nil {
		return nil, err
	}
	var old []pseudonym.Key
	for _, o := range p.OldKeys {
		k, err := pseudonym.LoadKey(o.KeyFile, "", o.ID[0])
		if err != nil {
			return nil, fmt.Errorf("pseudonym.old_keys %s: %w", o.ID, err)
		}
		old = append(old, k)
	}
	return pseudonym.New(cur, old...)
}
