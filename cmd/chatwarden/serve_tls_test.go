package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/internal/testsecure"
)

func TestServeTLSConfig(t *testing.T) {
	pki := testsecure.NewPKI(t)
	cases := []struct {
		name      string
		cfg       ServeConfig
		wantTLS   bool
		wantError string
	}{
		{"plain http", ServeConfig{}, false, ""},
		{"https", ServeConfig{TLSCertFile: pki.CertFile, TLSKeyFile: pki.KeyFile}, true, ""},
		{"cert without key", ServeConfig{TLSCertFile: pki.CertFile}, false, "serve.tls_cert_file and serve.tls_key_file"},
		{"key without cert", ServeConfig{TLSKeyFile: pki.KeyFile}, false, "serve.tls_cert_file and serve.tls_key_file"},
		{"key does not match", ServeConfig{TLSCertFile: pki.CAFile, TLSKeyFile: pki.KeyFile}, false, "serve.tls_cert_file and serve.tls_key_file"},
		{"missing file", ServeConfig{TLSCertFile: filepath.Join(pki.Dir, "nope.pem"), TLSKeyFile: pki.KeyFile}, false, "serve.tls_cert_file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.cfg.serverTLS()
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("serverTLS: %v; want an error naming %s", err, tc.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got != nil) != tc.wantTLS {
				t.Fatalf("serverTLS returned %v; want TLS %v", got, tc.wantTLS)
			}
		})
	}
}

// TestServeHTTPS runs `chatwarden serve` with a certificate configured
// (against the stack's Kafka and ClickHouse) and checks that /healthz
// answers over HTTPS to a client that trusts the CA, and that a plain HTTP
// request or a client that does not trust the CA gets nothing from it.
func TestServeHTTPS(t *testing.T) {
	t.Parallel()
	pki := testsecure.NewPKI(t)
	ic := testTopics(t, "tls", 1, 1, 1)
	st := storetest.New(t)

	dir := t.TempDir()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	keyFile := filepath.Join(dir, "pseudonym.key")
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfgFile := filepath.Join(dir, "chatwarden.yaml")
	yaml := fmt.Sprintf(`clickhouse:
  addr: %s
  database: %s
pseudonym:
  key_file: %s
ingest:
  access_topic: %s
  consent_topic: %s
  dead_letter_topic: %s
  group: %s
  session_timeout: 6s
serve:
  addr: %s
  tls_cert_file: %s
  tls_key_file: %s
`, storetest.Addr(), st.Database(), keyFile, ic.AccessTopic, ic.ConsentTopic, ic.DeadLetterTopic, ic.Group,
		addr, pki.CertFile, pki.KeyFile)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}

	runCtx, stop := context.WithCancel(t.Context())
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- run(runCtx, []string{"serve", "-config", cfgFile}, io.Discard, &stderr) }()
	defer func() {
		stop()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve exited with %d:\n%s", code, stderr.String())
			}
		case <-time.After(exitWait):
			t.Errorf("serve did not stop within %s", exitWait)
		}
	}()

	trusting := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: pki.ClientTLS()}}
	url := "https://" + addr + "/healthz"
	deadline := time.Now().Add(progressWait)
	for {
		resp, err := trusting.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
				t.Fatalf("GET %s: %d %q", url, resp.StatusCode, body)
			}
			if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
				t.Fatalf("GET %s: connection state %+v, want TLS 1.2+", url, resp.TLS)
			}
			if h := resp.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(h, "max-age=31536000") {
				t.Fatalf("GET %s over HTTPS: Strict-Transport-Security %q, want max-age of a year", url, h)
			}
			break
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited with %d before answering:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v (serve log:\n%s)", url, err, stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}

	t.Run("plain http to the https port", func(t *testing.T) {
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/healthz")
		if err != nil {
			return // refused outright: fine
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || strings.TrimSpace(string(body)) == "ok" {
			t.Fatalf("plain HTTP got %d %q; want no answer from the handler", resp.StatusCode, body)
		}
	})
	t.Run("client that does not trust the CA", func(t *testing.T) {
		_, err := (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}).Get(url)
		var uerr *tls.CertificateVerificationError
		if !errors.As(err, &uerr) {
			t.Fatalf("GET without the CA: %v; want a certificate verification error", err)
		}
	})
}
