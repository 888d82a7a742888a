package ingest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/internal/testsecure"
)

func TestSecurityValidate(t *testing.T) {
	base := Config{TLS: true, SASLMechanism: SASLScramSHA512, SASLUser: "u", SASLPassword: "p"}
	cases := []struct {
		name string
		edit func(c *Config)
		want string // the field named in the error; "" means valid
	}{
		{"scram-sha-512 over tls", func(*Config) {}, ""},
		{"scram-sha-256 without tls", func(c *Config) { c.TLS, c.SASLMechanism = false, SASLScramSHA256 }, ""},
		{"plain over tls", func(c *Config) { c.SASLMechanism = SASLPlain }, ""},
		{"password file", func(c *Config) { c.SASLPassword, c.SASLPasswordFile = "", "/run/secrets/kafka" }, ""},
		{"tls only", func(c *Config) { *c = Config{TLS: true, TLSCAFile: "/etc/ca.pem"} }, ""},
		{"plain without tls", func(c *Config) { c.TLS, c.SASLMechanism = false, SASLPlain }, "ingest.sasl_mechanism"},
		{"unknown mechanism", func(c *Config) { c.SASLMechanism = "gssapi" }, "ingest.sasl_mechanism"},
		{"no user", func(c *Config) { c.SASLUser = "" }, "ingest.sasl_user"},
		{"no password", func(c *Config) { c.SASLPassword = "" }, "ingest.sasl_password_file"},
		{"two passwords", func(c *Config) { c.SASLPasswordFile = "/x" }, "ingest.sasl_password and ingest.sasl_password_file"},
		{"credentials without mechanism", func(c *Config) { c.SASLMechanism = "" }, "ingest.sasl_mechanism"},
		{"ca without tls", func(c *Config) { c.TLS, c.TLSCAFile = false, "/etc/ca.pem" }, "ingest.tls_ca_file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v; want valid", err)
			case tc.want != "" && err == nil:
				t.Fatalf("Validate passed; want an error naming %s", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("Validate: %v; want it to name %s", err, tc.want)
			}
		})
	}
}

func TestSecurityFiles(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"missing ca file", Config{TLS: true, TLSCAFile: filepath.Join(dir, "nope.pem")}, "ingest.tls_ca_file"},
		{"ca file without pem", Config{TLS: true, TLSCAFile: notPEM}, "ingest.tls_ca_file"},
		{"missing password file", Config{TLS: true, SASLMechanism: SASLScramSHA512, SASLUser: "u", SASLPasswordFile: filepath.Join(dir, "nope")}, "ingest.sasl_password_file"},
		{"empty password file", Config{TLS: true, SASLMechanism: SASLScramSHA512, SASLUser: "u", SASLPasswordFile: empty}, "ingest.sasl_password_file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.cfg.Dialer(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Dialer: %v; want an error naming %s", err, tc.want)
			}
			if _, err := tc.cfg.Transport(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Transport: %v; want an error naming %s", err, tc.want)
			}
		})
	}
}

// TestEncryptedKafka runs a broker whose only listener is SASL_SSL with
// SCRAM-SHA-512 and checks that ingest works end to end through it (topic
// creation, producer, consumer group, dead-letter writer, lag), writing to
// the stack's ClickHouse, and that wrong or missing credentials, an
// untrusted certificate and plain-text clients are refused. One broker
// serves every case.
func TestEncryptedKafka(t *testing.T) {
	k := testsecure.StartKafka(t, testsecure.NewPKI(t))
	passwordFile := filepath.Join(t.TempDir(), "kafka-password")
	if err := os.WriteFile(passwordFile, []byte(k.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	good := Config{
		Brokers: []string{k.Addr}, TLS: true, TLSCAFile: k.PKI.CAFile,
		SASLMechanism: SASLScramSHA512, SASLUser: k.User, SASLPasswordFile: passwordFile,
		AccessTopic: "sec-" + id + "-access", ConsentTopic: "sec-" + id + "-consent", DeadLetterTopic: "sec-" + id + "-deadletter",
		Group: "sec-" + id, BatchSize: 200, Linger: 50 * time.Millisecond, SessionTimeout: 6 * time.Second,
	}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}

	t.Run("sasl_ssl: produce, consume in a group, dead-letter, commit", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
		defer cancel()
		if err := CreateTopics(ctx, good, TopicSpec{good.AccessTopic, 2}, TopicSpec{good.ConsentTopic, 1}, TopicSpec{good.DeadLetterTopic, 1}); err != nil {
			t.Fatalf("creating topics over SASL_SSL: %v", err)
		}
		const n = 300
		now := time.Now().UTC()
		var buf bytes.Buffer
		ids := make([]string, n)
		for i := range n {
			ids[i] = fmt.Sprintf("sec-%s-%04d", id, i)
			fmt.Fprintln(&buf, accessJSON(ids[i], now.Add(-time.Duration(i)*time.Second), fmt.Sprintf("agent-%d", i%7)))
		}
		fmt.Fprintln(&buf, `{"schema":"access.v1","event_id":"broken"`) // dead-lettered as bad_json
		prod, err := NewProducer(good, "")
		if err != nil {
			t.Fatal(err)
		}
		ps, err := prod.ProduceJSONL(ctx, &buf, 0, nil)
		if cerr := prod.Close(); err == nil {
			err = cerr
		}
		if err != nil || ps.Access != n+1 {
			t.Fatalf("producing over SASL_SSL: %+v, %v", ps, err)
		}

		st := storetest.New(t) // the stack's plain-text ClickHouse
		runCtx, stop := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- Run(runCtx, good, st, testPseudonymizer(t), nil, NewMetrics(nil), nil) }()
		var lag int64 = -1
		for ctx.Err() == nil {
			ls, err := GroupLag(ctx, good, good.Group, good.AccessTopic, good.ConsentTopic)
			if err == nil && len(ls) == 3 { // 2 access partitions, 1 consent
				lag = 0
				for _, l := range ls {
					lag += l.Lag
				}
				if lag == 0 {
					break
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
		stop()
		if err := <-errc; err != nil {
			t.Fatalf("ingest over SASL_SSL: %v", err)
		}
		if lag != 0 {
			t.Fatalf("group lag %d: offsets not committed over SASL_SSL", lag)
		}
		found, err := st.ExistingEventIDs(t.Context(), ids)
		if err != nil {
			t.Fatal(err)
		}
		if len(found) != n {
			t.Fatalf("%d of %d events reached ClickHouse through SASL_SSL", len(found), n)
		}
		d, err := good.Dialer()
		if err != nil {
			t.Fatal(err)
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: good.Brokers, Topic: good.DeadLetterTopic, Partition: 0, Dialer: d, MaxWait: time.Second}) // kafka-go gives the answer MaxWait/4 after the broker's wait: 250 ms, not 25 ms, under load
		defer r.Close()
		rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
		defer rcancel()
		m, err := r.ReadMessage(rctx)
		if err != nil {
			t.Fatalf("reading the dead-letter topic over SASL_SSL: %v", err)
		}
		if !bytes.Contains(m.Value, []byte("broken")) && !bytes.Contains(m.Value, []byte("bad_json")) {
			t.Fatalf("dead letter %q does not carry the rejected message", m.Value)
		}
	})

	refused := []struct {
		name string
		edit func(c *Config)
	}{
		{"wrong password", func(c *Config) { c.SASLPasswordFile, c.SASLPassword = "", k.Password+"x" }},
		{"unknown user", func(c *Config) { c.SASLUser = "mallory" }},
		{"scram-sha-256 (not enabled)", func(c *Config) { c.SASLMechanism = SASLScramSHA256 }},
		{"tls without sasl", func(c *Config) { c.SASLMechanism, c.SASLUser, c.SASLPasswordFile = "", "", "" }},
		{"certificate not trusted", func(c *Config) { c.TLSCAFile = "" }},
		{"sasl without tls", func(c *Config) { c.TLS, c.TLSCAFile = false, "" }},
		{"plain text, no sasl", func(c *Config) {
			c.TLS, c.TLSCAFile, c.SASLMechanism, c.SASLUser, c.SASLPasswordFile = false, "", "", "", ""
		}},
	}
	for _, tc := range refused {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
			defer cancel()
			info, err := Cluster(ctx, c)
			if err == nil {
				t.Fatalf("reading cluster metadata succeeded (%+v); want it refused", info)
			}
			t.Logf("refused as expected: %v", err)
			// The producer path must be refused too, not just metadata.
			p, err := NewProducer(c, good.AccessTopic)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if _, err := p.ProduceJSONL(ctx, strings.NewReader(accessJSON("refused-"+id, time.Now(), "agent-x")+"\n"), 0, nil); err == nil {
				t.Fatal("producing succeeded; want it refused")
			}
		})
	}
}
