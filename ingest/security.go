package ingest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// SASL mechanisms accepted in ingest.sasl_mechanism.
const (
	SASLScramSHA512 = "scram-sha-512"
	SASLScramSHA256 = "scram-sha-256"
	SASLPlain       = "plain"
)

// dialTimeout bounds connecting to a broker, TLS and SASL included.
const dialTimeout = 10 * time.Second

// validateSecurity checks the TLS and SASL fields without reading files
// (the files are read when a connection is set up, so that an error names
// the file then).
func (c Config) validateSecurity() error {
	var errs []error
	if c.TLSCAFile != "" && !c.TLS {
		errs = append(errs, errors.New("ingest.tls_ca_file: set, but ingest.tls is false"))
	}
	switch strings.ToLower(c.SASLMechanism) {
	case "":
		if c.SASLUser != "" || c.SASLPassword != "" || c.SASLPasswordFile != "" {
			errs = append(errs, errors.New("ingest.sasl_mechanism: empty, but sasl_user or a sasl password is set (scram-sha-512, scram-sha-256 or plain)"))
		}
		return errors.Join(errs...)
	case SASLScramSHA512, SASLScramSHA256:
	case SASLPlain:
		if !c.TLS {
			errs = append(errs, errors.New("ingest.sasl_mechanism: plain sends the password in clear text; it needs ingest.tls: true"))
		}
	default:
		errs = append(errs, fmt.Errorf("ingest.sasl_mechanism: %q is not scram-sha-512, scram-sha-256 or plain", c.SASLMechanism))
	}
	if c.SASLUser == "" {
		errs = append(errs, errors.New("ingest.sasl_user: required with ingest.sasl_mechanism"))
	}
	switch {
	case c.SASLPassword != "" && c.SASLPasswordFile != "":
		errs = append(errs, errors.New("ingest.sasl_password and ingest.sasl_password_file: set one, not both"))
	case c.SASLPassword == "" && c.SASLPasswordFile == "":
		errs = append(errs, errors.New("ingest.sasl_password_file (or sasl_password): required with ingest.sasl_mechanism"))
	}
	return errors.Join(errs...)
}

// tlsConfig returns nil when TLS is off, else a client configuration that
// verifies the brokers' certificates against TLSCAFile (or the system
// roots) and their names against the broker addresses.
func (c Config) tlsConfig() (*tls.Config, error) {
	if !c.TLS {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.TLSCAFile != "" {
		b, err := os.ReadFile(c.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("ingest.tls_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("ingest.tls_ca_file: %s holds no PEM certificate", c.TLSCAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// saslMechanism returns nil when SASL is off, else the configured mechanism
// with the password read from SASLPasswordFile (one trailing newline
// trimmed) or SASLPassword.
func (c Config) saslMechanism() (sasl.Mechanism, error) {
	mech := strings.ToLower(c.SASLMechanism)
	if mech == "" {
		return nil, nil
	}
	password := c.SASLPassword
	if c.SASLPasswordFile != "" {
		b, err := os.ReadFile(c.SASLPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("ingest.sasl_password_file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
		if password == "" {
			return nil, fmt.Errorf("ingest.sasl_password_file: %s is empty", c.SASLPasswordFile)
		}
	}
	switch mech {
	case SASLPlain:
		return plain.Mechanism{Username: c.SASLUser, Password: password}, nil
	case SASLScramSHA256, SASLScramSHA512:
		algo := scram.SHA512
		if mech == SASLScramSHA256 {
			algo = scram.SHA256
		}
		m, err := scram.Mechanism(algo, c.SASLUser, password)
		if err != nil {
			return nil, fmt.Errorf("ingest.sasl_user or sasl password: %w", err)
		}
		return m, nil
	}
	return nil, fmt.Errorf("ingest.sasl_mechanism: %q is not scram-sha-512, scram-sha-256 or plain", c.SASLMechanism)
}

// security returns the TLS configuration and SASL mechanism of c (either
// may be nil: off).
func (c Config) security() (*tls.Config, sasl.Mechanism, error) {
	if err := c.validateSecurity(); err != nil {
		return nil, nil, err
	}
	tc, err := c.tlsConfig()
	if err != nil {
		return nil, nil, err
	}
	m, err := c.saslMechanism()
	if err != nil {
		return nil, nil, err
	}
	return tc, m, nil
}

// Dialer returns a dialer for direct broker connections (the consumer
// group reader, topic administration) with c's TLS and SASL settings.
// It reads the CA and password files now.
func (c Config) Dialer() (*kafka.Dialer, error) {
	tc, m, err := c.security()
	if err != nil {
		return nil, err
	}
	return &kafka.Dialer{Timeout: dialTimeout, DualStack: true, ClientID: "chatwarden", TLS: tc, SASLMechanism: m}, nil
}

// Transport returns a transport for writers and kafka.Client requests with
// c's TLS and SASL settings. It reads the CA and password files now. Its
// owner calls CloseIdleConnections when done.
func (c Config) Transport() (*kafka.Transport, error) {
	tc, m, err := c.security()
	if err != nil {
		return nil, err
	}
	return &kafka.Transport{DialTimeout: dialTimeout, ClientID: "chatwarden", TLS: tc, SASL: m}, nil
}

// client returns a kafka.Client for c's brokers and the transport to close
// when done.
func (c Config) client(timeout time.Duration) (*kafka.Client, *kafka.Transport, error) {
	tr, err := c.Transport()
	if err != nil {
		return nil, nil, err
	}
	return &kafka.Client{Addr: kafka.TCP(c.WithDefaults().Brokers...), Timeout: timeout, Transport: tr}, tr, nil
}

// closeWriter closes w and the idle connections of its transport (a
// kafka.Writer closes only the idle connections of a transport it made).
func closeWriter(w *kafka.Writer) error {
	err := w.Close()
	if tr, ok := w.Transport.(*kafka.Transport); ok {
		tr.CloseIdleConnections()
	}
	return err
}
