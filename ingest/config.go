package ingest

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// Default topic and group names shared by every chatwarden component.
const (
	DefaultAccessTopic     = "chatwarden.access.v1"
	DefaultConsentTopic    = "chatwarden.consent.v1"
	DefaultDeadLetterTopic = "chatwarden.deadletter.v1"
	DefaultGroup           = "chatwarden-ingest"
)

// DefaultBacklogBatchSize is Config.BacklogBatchSize's default (raised to
// batch_size when that is larger).
const DefaultBacklogBatchSize = 100_000

// Config is the ingest section of the configuration file. The zero value
// takes the defaults.
type Config struct {
	// Brokers are Kafka bootstrap addresses (default 127.0.0.1:9092;
	// environment CHATWARDEN_KAFKA_BROKERS, comma separated).
	Brokers []string `yaml:"brokers"`
	// AccessTopic carries access.v1 events (default chatwarden.access.v1).
	AccessTopic string `yaml:"access_topic"`
	// ConsentTopic carries consent.v1 events (default chatwarden.consent.v1).
	ConsentTopic string `yaml:"consent_topic"`
	// DeadLetterTopic receives rejected messages (default chatwarden.deadletter.v1).
	DeadLetterTopic string `yaml:"dead_letter_topic"`
	// Group is the consumer group id (default chatwarden-ingest).
	Group string `yaml:"group"`
	// BatchSize is the most messages inserted at once (default 20000).
	// Fewer, larger inserts mean fewer parts for ClickHouse to merge.
	BatchSize int `yaml:"batch_size"`
	// Linger is how long a batch waits for more messages after its first
	// (default 200ms); event rules need events in ClickHouse within 2 s.
	Linger time.Duration `yaml:"linger"`
	// BacklogBatchSize is the most messages inserted at once while the
	// consumer is behind (default 100000; at least batch_size): when the
	// partitions of a batch have at least batch_size more messages waiting
	// in Kafka (their high watermarks), the batch grows past batch_size up
	// to this many messages (and its share of max_buffer_bytes), for at
	// most ten lingers, so that a backlog is drained with few large
	// inserts (fewer parts for ClickHouse to merge). A consumer that has
	// caught up keeps batch_size and linger.
	BacklogBatchSize int `yaml:"backlog_batch_size"`
	// MaxMessageBytes rejects larger messages as too_large (default 64 KiB).
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// MaxKeyBytes rejects messages whose Kafka key is longer as
	// key_too_large (default 1 KiB; the key is the actor id, at most 256
	// bytes). The dead-letter copy keeps at most 1 KiB of the key.
	MaxKeyBytes int `yaml:"max_key_bytes"`
	// Retention rejects events older than this as ts_too_old (default 90 days).
	Retention time.Duration `yaml:"retention"`
	// MaxFuture rejects events further ahead than this as ts_future (default 24h).
	MaxFuture time.Duration `yaml:"max_future"`
	// MaxBufferBytes bounds the bytes of fetched messages ingest holds
	// (default 256 MiB): five eighths for the messages between fetch and
	// commit (a batch closes at a third of that, whatever batch_size says),
	// a quarter for the partition readers' queues and fetch buffers (sized
	// for messages up to 1 MiB, the broker's default limit), an eighth for
	// the hand-off between them. A slow ClickHouse then stops fetching
	// instead of growing memory. Messages larger than 1 MiB can exceed it
	// by one message per partition.
	MaxBufferBytes int64 `yaml:"max_buffer_bytes"`
	// FetchMaxBytes bounds one fetch response per partition (default 4 MiB;
	// lowered to the readers' share of max_buffer_bytes).
	FetchMaxBytes int `yaml:"fetch_max_bytes"`
	// FetchMaxWait is how long the broker may hold a fetch waiting for data
	// (default 250ms); a partition reader allows the fetch's round trip 1 s
	// more before it times out and reconnects.
	FetchMaxWait time.Duration `yaml:"fetch_max_wait"`
	// SessionTimeout is the group session timeout: how long a crashed
	// member holds its partitions (default 10s; the broker's minimum is 6s).
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// ShutdownTimeout bounds the final flush after a stop is requested
	// (default 15s); what is not flushed by then is redelivered later.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// DecodeWorkers decode a batch in parallel (default GOMAXPROCS).
	DecodeWorkers int `yaml:"decode_workers"`
	// MaxBackoff caps the wait between retries (default 10s).
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// PII is what happens to an access event whose free string fields hold
	// something that looks like personal data (an e-mail address, phone,
	// card number, SSN, IBAN; see docs/contract.md): dead_letter (default)
	// rejects it as pii_in_payload with the values masked in the
	// dead-letter copy; pseudonymize stores it with those fields replaced
	// by keyed HMAC pseudonyms. Both count it in
	// chatwarden_ingest_pii_total{store,kind}.
	PII string `yaml:"pii"`

	// TLS encrypts every broker connection; TLSCAFile trusts a CA (PEM)
	// instead of the system roots. Broker names are always verified.
	TLS       bool   `yaml:"tls"`
	TLSCAFile string `yaml:"tls_ca_file"`
	// SASLMechanism authenticates to the brokers: scram-sha-512,
	// scram-sha-256 or plain (plain only with tls); empty: none.
	SASLMechanism string `yaml:"sasl_mechanism"`
	// SASLUser and SASLPassword (or SASLPasswordFile, one trailing newline
	// trimmed; environment CHATWARDEN_KAFKA_SASL_PASSWORD) are the credentials.
	SASLUser         string `yaml:"sasl_user"`
	SASLPassword     string `yaml:"sasl_password"`
	SASLPasswordFile string `yaml:"sasl_password_file"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if len(c.Brokers) == 0 {
		c.Brokers = []string{"127.0.0.1:9092"}
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.AccessTopic, DefaultAccessTopic)
	def(&c.ConsentTopic, DefaultConsentTopic)
	def(&c.DeadLetterTopic, DefaultDeadLetterTopic)
	def(&c.Group, DefaultGroup)
	if c.BatchSize <= 0 {
		c.BatchSize = 20000
	}
	if c.Linger <= 0 {
		c.Linger = 200 * time.Millisecond
	}
	if c.BacklogBatchSize <= 0 {
		c.BacklogBatchSize = max(DefaultBacklogBatchSize, c.BatchSize)
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = models.DefaultMaxMessageBytes
	}
	if c.MaxKeyBytes <= 0 {
		c.MaxKeyBytes = 1 << 10
	}
	if c.Retention <= 0 {
		c.Retention = models.DefaultMaxAge
	}
	if c.MaxFuture <= 0 {
		c.MaxFuture = models.DefaultMaxFuture
	}
	if c.FetchMaxBytes <= 0 {
		c.FetchMaxBytes = 4 << 20
	}
	if c.MaxBufferBytes <= 0 {
		c.MaxBufferBytes = 256 << 20
	}
	if c.FetchMaxWait <= 0 {
		c.FetchMaxWait = 250 * time.Millisecond
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 15 * time.Second
	}
	if c.DecodeWorkers <= 0 {
		c.DecodeWorkers = runtime.GOMAXPROCS(0)
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.PII == "" {
		c.PII = PIIDeadLetter
	}
	return c
}

// Validate names the first bad field. Zero values are valid (defaults).
func (c Config) Validate() error {
	var errs []error
	for i, b := range c.Brokers {
		host, port, err := net.SplitHostPort(b)
		if p, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || p <= 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("ingest.brokers[%d]: %q is not host:port", i, b))
		}
	}
	d := c.WithDefaults()
	if d.AccessTopic == d.ConsentTopic || d.AccessTopic == d.DeadLetterTopic || d.ConsentTopic == d.DeadLetterTopic {
		errs = append(errs, errors.New("ingest.access_topic, consent_topic, dead_letter_topic: must be three different topics"))
	}
	if c.BatchSize < 0 || c.BatchSize > 1_000_000 {
		errs = append(errs, fmt.Errorf("ingest.batch_size: %d is not between 1 and 1000000", c.BatchSize))
	}
	if c.BacklogBatchSize < 0 || c.BacklogBatchSize > 1_000_000 {
		errs = append(errs, fmt.Errorf("ingest.backlog_batch_size: %d is not between 1 and 1000000", c.BacklogBatchSize))
	} else if c.BacklogBatchSize > 0 && c.BacklogBatchSize < d.BatchSize {
		errs = append(errs, fmt.Errorf("ingest.backlog_batch_size: %d is less than ingest.batch_size (%d)", c.BacklogBatchSize, d.BatchSize))
	}
	if c.Linger < 0 || c.Linger > 2*time.Second {
		errs = append(errs, fmt.Errorf("ingest.linger: %s is not between 0 and 2s (event rules need events within 2 s)", c.Linger))
	}
	if c.MaxMessageBytes < 0 || c.MaxMessageBytes > 16<<20 {
		errs = append(errs, fmt.Errorf("ingest.max_message_bytes: %d is not between 1 and 16 MiB", c.MaxMessageBytes))
	}
	if c.MaxKeyBytes < 0 || c.MaxKeyBytes > 64<<10 {
		errs = append(errs, fmt.Errorf("ingest.max_key_bytes: %d is not between 1 and 64 KiB", c.MaxKeyBytes))
	}
	if c.MaxBufferBytes < 0 || (c.MaxBufferBytes > 0 && c.MaxBufferBytes < 16<<20) || c.MaxBufferBytes > 64<<30 {
		errs = append(errs, fmt.Errorf("ingest.max_buffer_bytes: %d is not between 16 MiB and 64 GiB", c.MaxBufferBytes))
	} else if mb := c.WithDefaults(); mb.MaxBufferBytes < 8*int64(mb.MaxMessageBytes) {
		errs = append(errs, fmt.Errorf("ingest.max_buffer_bytes: %d is less than 8 times ingest.max_message_bytes (%d)", mb.MaxBufferBytes, mb.MaxMessageBytes))
	}
	if c.Retention < 0 || (c.Retention > 0 && c.Retention < time.Hour) {
		errs = append(errs, fmt.Errorf("ingest.retention: %s is shorter than an hour", c.Retention))
	}
	if c.MaxFuture < 0 {
		errs = append(errs, fmt.Errorf("ingest.max_future: %s is negative", c.MaxFuture))
	}
	if c.SessionTimeout != 0 && c.SessionTimeout < 6*time.Second {
		errs = append(errs, fmt.Errorf("ingest.session_timeout: %s is below the broker minimum of 6s", c.SessionTimeout))
	}
	if c.FetchMaxBytes < 0 || c.FetchMaxWait < 0 || c.ShutdownTimeout < 0 || c.DecodeWorkers < 0 || c.MaxBackoff < 0 {
		errs = append(errs, errors.New("ingest.fetch_max_bytes, fetch_max_wait, shutdown_timeout, decode_workers, max_backoff: must not be negative"))
	}
	if c.PII != "" && c.PII != PIIDeadLetter && c.PII != PIIPseudonymize {
		errs = append(errs, fmt.Errorf("ingest.pii: %q is not %s or %s", c.PII, PIIDeadLetter, PIIPseudonymize))
	}
	if err := c.validateSecurity(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// The values of Config.PII.
const (
	PIIDeadLetter   = "dead_letter"
	PIIPseudonymize = "pseudonymize"
)

// limits returns the decoder limits of c. The payload PII check is ingest's
// own (decodeOne), so that it knows the event's store and the policy.
func (c Config) limits() models.Limits {
	return models.Limits{MaxMessageBytes: c.MaxMessageBytes, MaxFuture: c.MaxFuture, MaxAge: c.Retention, AllowPII: true}
}
