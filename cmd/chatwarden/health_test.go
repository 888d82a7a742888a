package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHealthz: /healthz is 503 naming the cause while ClickHouse is away or
// a component reports itself unhealthy (ingest retrying a write on a full
// disk), 200 otherwise.
func TestHealthz(t *testing.T) {
	up := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("refused") }
	diskFull := func() error { return errors.New("ingest: insert_events failing since ...: No space left on device") }
	ok := func() error { return nil }
	for _, tc := range []struct {
		name   string
		h      http.Handler
		status int
		body   string
	}{
		{"healthy", healthHandler(up, ok), 200, "ok"},
		{"clickhouse away", healthHandler(down, ok), 503, "clickhouse unreachable"},
		{"ingest failing", healthHandler(up, ok, diskFull), 503, "No space left on device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tc.h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
			b, _ := io.ReadAll(rec.Body)
			if rec.Code != tc.status || !strings.Contains(string(b), tc.body) {
				t.Fatalf("got %d %q, want %d containing %q", rec.Code, b, tc.status, tc.body)
			}
		})
	}
}
