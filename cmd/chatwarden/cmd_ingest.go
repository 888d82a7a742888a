package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chatwarden/chatwarden/ingest"
)

func runIngest(ctx context.Context, e *env, args []string) error {
	fs, cfgPath := newFlags(e, "ingest")
	metricsAddr := fs.String("metrics-addr", "", "serve /metrics and /healthz on this address (e.g. 127.0.0.1:9464); serve does this on its own listener")
	cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of the run to this file (written at shutdown)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	c, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	p, err := c.pseudonymizer()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	s, err := openStore(ctx, e, c)
	if err != nil {
		return err
	}
	defer s.Close()
	reg := newRegistry()
	m := ingest.NewMetrics(reg)
	comps := []component{{name: "ingest", run: func(ctx context.Context) error {
		return ingest.Run(ctx, c.Ingest, s, p, nil, m, e.log)
	}}}
	if *metricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		mux.Handle("GET /healthz", healthHandler(s.Ping, m.Health))
		comps = append(comps, httpComponent("metrics", *metricsAddr, nil, mux, ServeConfig{}.withDefaults(), e.log))
	}
	return runComponents(ctx, e.log, c.Ingest.WithDefaults().ShutdownTimeout+5*time.Second, comps)
}
