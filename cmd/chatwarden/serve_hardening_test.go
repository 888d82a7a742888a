package main

import (
	"bufio"
	"bytes"
	"context"
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
)

// freeAddr returns a 127.0.0.1 address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startServe runs `chatwarden serve` on the stack with serveYAML as the serve
// section (indented two spaces) and waits until /healthz answers on addr.
func startServe(t *testing.T, addr, serveYAML string) {
	t.Helper()
	ic := testTopics(t, "hard", 1, 1, 1)
	brokers := ic.Brokers
	st := storetest.New(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "pseudonym.key")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("ab", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "chatwarden.yaml")
	y := fmt.Sprintf("clickhouse:\n  addr: %s\n  database: %s\npseudonym:\n  key_file: %s\ningest:\n  brokers: [%s]\n  access_topic: %s\n  consent_topic: %s\n  dead_letter_topic: %s\n  group: %s\n  session_timeout: 6s\nserve:\n  addr: %s\n%s",
		storetest.Addr(), st.Database(), keyFile, strings.Join(brokers, ", "), ic.AccessTopic, ic.ConsentTopic, ic.DeadLetterTopic, ic.Group, addr, serveYAML)
	if err := os.WriteFile(cfgFile, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	stderr := &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(runCtx, []string{"serve", "-config", cfgFile}, io.Discard, stderr) }()
	t.Cleanup(func() {
		stop()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve exited with %d:\n%s", code, stderr.String())
			}
		case <-time.After(exitWait):
			t.Errorf("serve did not stop within %s", exitWait)
		}
	})
	for deadline := time.Now().Add(progressWait); ; time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited with %d before answering:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not answer on %s: %v\n%s", addr, err, stderr.String())
		}
	}
}

// TestServeHTTPHardening: the listener's read and idle timeouts close a
// connection a client holds open; /metrics moves to serve.metrics_addr and
// needs serve.metrics_token_file's bearer token; no HSTS over plain HTTP.
func TestServeHTTPHardening(t *testing.T) {
	t.Parallel()
	addr, maddr := freeAddr(t), freeAddr(t)
	tokenFile := filepath.Join(t.TempDir(), "metrics.token")
	const token = "metrics-token-0123456789"
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	startServe(t, addr, fmt.Sprintf("  metrics_addr: %s\n  metrics_token_file: %s\n  read_timeout: 500ms\n  idle_timeout: 500ms\n", maddr, tokenFile))

	// closedWithin reports whether the server closes conn (EOF or reset)
	// before the generous limit; a server without the timeouts never does.
	closedWithin := func(conn net.Conn, limit time.Duration) bool {
		_ = conn.SetReadDeadline(time.Now().Add(limit))
		_, err := io.Copy(io.Discard, conn)
		var ne net.Error
		return !errors.As(err, &ne) || !ne.Timeout()
	}
	t.Run("a request body that never comes", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nuser=a")
		if !closedWithin(conn, 15*time.Second) {
			t.Fatal("the connection is still open: no read timeout")
		}
	})
	t.Run("an idle keep-alive connection", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(body, []byte("ok")) {
			t.Fatalf("healthz: %d %q", resp.StatusCode, body)
		}
		if resp.Header.Get("Strict-Transport-Security") != "" {
			t.Fatal("HSTS sent over plain HTTP")
		}
		if !closedWithin(conn, 15*time.Second) {
			t.Fatal("the idle connection is still open: no idle timeout")
		}
	})
	t.Run("metrics on their own listener with a token", func(t *testing.T) {
		get := func(url, auth string) (int, string) {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if code, body := get("http://"+addr+"/metrics", "Bearer "+token); code == 200 || strings.Contains(body, "chatwarden_") {
			t.Fatalf("/metrics on the UI listener: %d", code)
		}
		for _, auth := range []string{"", "Bearer wrong-token-0123456789", token} {
			if code, body := get("http://"+maddr+"/metrics", auth); code != http.StatusUnauthorized || strings.Contains(body, "chatwarden_") {
				t.Fatalf("/metrics with Authorization %q: %d", auth, code)
			}
		}
		code, body := get("http://"+maddr+"/metrics", "Bearer "+token)
		if code != 200 || !strings.Contains(body, "chatwarden_") {
			t.Fatalf("/metrics with the token: %d %.200s", code, body)
		}
		// The eviction passes report on the same registry.
		for _, m := range []string{"chatwarden_detect_consent_decisions ", "chatwarden_detect_consents_evicted_total ", "chatwarden_detect_actors_evicted_total "} {
			if !strings.Contains(body, m) {
				t.Errorf("/metrics lacks %s", m)
			}
		}
	})
}
