package main

import (
	"crypto/tls"
	"errors"
	"fmt"
)

// validateTLS checks that the certificate and key come as a pair.
func (c ServeConfig) validateTLS() error {
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("serve.tls_cert_file and serve.tls_key_file: set both (HTTPS) or neither (plain HTTP)")
	}
	return nil
}

// serverTLS returns nil when no certificate is configured, else the HTTPS
// server configuration: TLS 1.2 or newer, the configured certificate (read
// now, so a bad file fails at start; a renewed certificate needs a restart).
func (c ServeConfig) serverTLS() (*tls.Config, error) {
	if err := c.validateTLS(); err != nil {
		return nil, err
	}
	if c.TLSCertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("serve.tls_cert_file and serve.tls_key_file: %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, nil
}
