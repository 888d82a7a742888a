package store

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
)

// readSecret reads a secret from a file, trimming one trailing newline.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func loadCA(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: %w", path, errors.New("no PEM certificate found"))
	}
	return pool, nil
}
