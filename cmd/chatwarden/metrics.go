package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	promversion "github.com/prometheus/common/version"
)

// newRegistry is the Prometheus registry of a long-running command (serve,
// ingest): the Go runtime and process collectors and
// chatwarden_build_info{version,revision,branch,goversion,goos,goarch,tags}
// (Prometheus' version collector; the revision comes from the binary's VCS
// stamp). Each component registers its own metrics on it.
func newRegistry() *prometheus.Registry {
	if promversion.Version == "" {
		promversion.Version = version
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("chatwarden"))
	return reg
}
