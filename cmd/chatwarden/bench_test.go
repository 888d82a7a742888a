package main

import (
	"testing"

	"github.com/chatwarden/chatwarden/internal/bench"
)

// TestBenchKnowsServeLateness: chatwarden-bench latency reports its window
// figures against serve's detection lateness, which it cannot import.
func TestBenchKnowsServeLateness(t *testing.T) {
	if bench.DetectLateness != detectLateness {
		t.Errorf("bench.DetectLateness = %s, serve's detectLateness = %s", bench.DetectLateness, detectLateness)
	}
}
