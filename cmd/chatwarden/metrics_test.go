package main

import (
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// TestRegistry: serve and ingest expose chatwarden_build_info and the Go and
// process collectors.
func TestRegistry(t *testing.T) {
	mfs, err := newRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		got[mf.GetName()] = mf
	}
	for _, name := range []string{"chatwarden_build_info", "go_goroutines", "process_resident_memory_bytes", "process_cpu_seconds_total"} {
		if got[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	if bi := got["chatwarden_build_info"]; bi != nil {
		labels := map[string]string{}
		for _, l := range bi.GetMetric()[0].GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["version"] != version || labels["goversion"] == "" {
			t.Errorf("build_info labels %v, want version %q and a goversion", labels, version)
		}
	}
}
