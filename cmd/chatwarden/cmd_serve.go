package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chatwarden/chatwarden/ingest"
)

// ServeConfig is the serve section: the HTTP listener shared by /metrics,
// /healthz and the web UI, and the shutdown budget.
type ServeConfig struct {
	// Addr is the HTTP listen address (default 127.0.0.1:8080).
	Addr string `yaml:"addr"`
	// ShutdownTimeout is how long components may take to stop after a
	// signal before serve gives up on them (default 30s).
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// TLSCertFile and TLSKeyFile (PEM), when both set, make the listener
	// HTTPS only (see serve_tls.go).
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// MetricsAddr, when set, serves /metrics on a listener of its own (with
	// the same TLS setting) and no longer on Addr, which the web UI and
	// Slack reach: bind it to an address only Prometheus reaches.
	MetricsAddr string `yaml:"metrics_addr"`
	// MetricsTokenFile, when set, holds a bearer token (at least 16
	// characters) that /metrics requires: "Authorization: Bearer <token>".
	MetricsTokenFile string `yaml:"metrics_token_file"`
	// ReadHeaderTimeout (default 10s), ReadTimeout (default 1m),
	// WriteTimeout (default 5m: a large CSV export) and IdleTimeout (default
	// 2m) bound what one slow or idle client can hold on the listeners.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
}

func (c ServeConfig) withDefaults() ServeConfig {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8080"
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = 10 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = time.Minute
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 5 * time.Minute
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 2 * time.Minute
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	return c
}

// Validate names the bad field.
func (c ServeConfig) Validate() error {
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			return fmt.Errorf("serve.addr: %q is not host:port", c.Addr)
		}
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return fmt.Errorf("serve.metrics_addr: %q is not host:port", c.MetricsAddr)
		}
	}
	if c.ShutdownTimeout < 0 {
		return fmt.Errorf("serve.shutdown_timeout: %s is negative", c.ShutdownTimeout)
	}
	for name, v := range map[string]time.Duration{"read_header_timeout": c.ReadHeaderTimeout, "read_timeout": c.ReadTimeout,
		"write_timeout": c.WriteTimeout, "idle_timeout": c.IdleTimeout} {
		if v < 0 {
			return fmt.Errorf("serve.%s: %s is negative", name, v)
		}
	}
	return c.validateTLS()
}

// component is one long-running part of serve. run returns when ctx is
// cancelled (nil) or when it fails (the error stops every component).
type component struct {
	name string
	run  func(ctx context.Context) error
}

func runServe(ctx context.Context, e *env, args []string) error {
	fs, cfgPath := newFlags(e, "serve")
	addr := fs.String("addr", "", "HTTP listen address (overrides serve.addr)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *addr != "" {
		c.Serve.Addr = *addr
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
	// serve's graph, built once in dependency order: store -> alert ->
	// detect -> ingest (with detection's observer) -> dashboards -> http.
	// Each constructor takes what it needs; nothing is set afterwards.
	log := e.log
	// Detection shard ownership (detect.ownership: group; nil: static)
	// feeds alerting's self-monitoring.
	shards, err := newShardOwnership(c.Detect, c.Ingest, reg, log)
	if err != nil {
		return err
	}
	al, err := wireAlert(ctx, c, s, reg, log, shards.unownedFunc())
	if err != nil {
		return err
	}
	defer func() {
		if err := al.close(); err != nil {
			log.Warn("closing the findings writer", "err", err)
		}
	}()
	// Ingest's event-time progress holds detection's windows open while
	// ingest lags.
	wm := ingest.NewWatermark()
	det, err := wireDetect(ctx, c.Detect, s, reg, log, al.notify, wm.Low, shards)
	if err != nil {
		return err
	}
	in := wireIngest(c.Ingest, s, p, reg, log, det.observer, det.findings, wm)
	dash, err := wireDashboards(c, s, p, reg, log, al.actions)
	if err != nil {
		return err
	}
	comps := []component{in.component, det.component, det.eviction, al.component, wireRetention(c.Retention, s, log)}
	if det.watch.run != nil {
		comps = append(comps, det.watch)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /slack/interactivity", al.interactivity)
	// Routes mounted more specifically (/metrics, /healthz,
	// /slack/interactivity) keep precedence over the dashboards' "/".
	mux.Handle("/", dash)
	sc := c.Serve.withDefaults()
	metrics, err := sc.metricsHandler(reg)
	if err != nil {
		return err
	}
	if sc.MetricsAddr == "" {
		mux.Handle("GET /metrics", metrics)
	}
	mux.Handle("GET /healthz", healthHandler(s.Ping, in.health))
	tc, err := c.Serve.serverTLS()
	if err != nil {
		return err
	}
	comps = append(comps, httpComponent("http", sc.Addr, tc, withHSTS(tc, mux), sc, e.log))
	if sc.MetricsAddr != "" {
		mm := http.NewServeMux()
		mm.Handle("GET /metrics", metrics)
		comps = append(comps, httpComponent("metrics", sc.MetricsAddr, tc, withHSTS(tc, mm), sc, e.log))
	}
	return runComponents(ctx, e.log, sc.ShutdownTimeout, comps)
}

// metricsHandler serves reg, behind serve.metrics_token_file's bearer token
// when one is set (compared in constant time).
func (c ServeConfig) metricsHandler(reg *prometheus.Registry) (http.Handler, error) {
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	if c.MetricsTokenFile == "" {
		return h, nil
	}
	b, err := os.ReadFile(c.MetricsTokenFile)
	if err != nil {
		return nil, fmt.Errorf("serve.metrics_token_file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if len(token) < 16 {
		return nil, errors.New("serve.metrics_token_file: the token must have at least 16 characters")
	}
	want := sha256.Sum256([]byte("Bearer " + token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := sha256.Sum256([]byte(r.Header.Get("Authorization")))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			http.Error(w, "metrics need the bearer token", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}), nil
}

// withHSTS makes browsers keep to HTTPS for a year once they saw the
// listener over TLS (tc not nil); over plain HTTP the header would be
// ignored, and is not sent.
func withHSTS(tc *tls.Config, h http.Handler) http.Handler {
	if tc == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		h.ServeHTTP(w, r)
	})
}

// healthHandler answers /healthz: 200 "ok" when ping reaches ClickHouse and
// every check is nil, else 503 naming what is wrong (ClickHouse away, or
// ingest retrying a write that fails: a disk full or read-only).
func healthHandler(ping func(context.Context) error, checks ...func() error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		var bad []string
		if err := ping(pctx); err != nil {
			bad = append(bad, "clickhouse unreachable")
		}
		for _, c := range checks {
			if err := c(); err != nil {
				bad = append(bad, err.Error())
			}
		}
		if len(bad) > 0 {
			http.Error(w, strings.Join(bad, "\n"), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
}

// httpComponent serves mux on addr until ctx ends, then shuts down
// gracefully. With tc (not nil) it serves HTTPS only. sc gives the
// timeouts (its defaults applied by the caller).
func httpComponent(name, addr string, tc *tls.Config, mux http.Handler, sc ServeConfig, log *slog.Logger) component {
	return component{name: name, run: func(ctx context.Context) error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listening on %s: %w", addr, err)
		}
		srv := &http.Server{Handler: mux, TLSConfig: tc,
			ReadHeaderTimeout: sc.ReadHeaderTimeout, ReadTimeout: sc.ReadTimeout,
			WriteTimeout: sc.WriteTimeout, IdleTimeout: sc.IdleTimeout,
			// TLS handshake failures (plain HTTP, untrusted clients) and
			// other server errors go to our log, not the standard one.
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelInfo)}
		log.Info(name+" listening", "addr", ln.Addr().String(), "tls", tc != nil)
		errc := make(chan error, 1)
		go func() {
			if tc != nil {
				errc <- srv.ServeTLS(ln, "", "") // the certificate is in tc
				return
			}
			errc <- srv.Serve(ln)
		}()
		select {
		case err := <-errc:
			return fmt.Errorf("serving http: %w", err)
		case <-ctx.Done():
		}
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}}
}

// runComponents runs comps concurrently until ctx ends or one fails; the
// first failure cancels the rest. Stopping is soft (each component gets a
// cancelled context and flushes) then hard: after timeout serve returns
// without waiting for the stragglers, naming them.
func runComponents(ctx context.Context, log *slog.Logger, timeout time.Duration, comps []component) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu      sync.Mutex
		running = map[string]bool{}
		errs    []error
		wg      sync.WaitGroup
	)
	for _, c := range comps {
		running[c.name] = true
		wg.Go(func() {
			err := c.run(ctx)
			mu.Lock()
			delete(running, c.name)
			mu.Unlock()
			if err != nil && !(errors.Is(err, context.Canceled) && ctx.Err() != nil) {
				log.Error("component failed; stopping serve", "component", c.name, "err", err)
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
				mu.Unlock()
				cancel(err)
				return
			}
			log.Info("component stopped", "component", c.name)
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		log.Info("stopping serve", "timeout", timeout)
		select {
		case <-done:
		case <-time.After(timeout):
			mu.Lock()
			var names []string
			for n := range running {
				names = append(names, n)
			}
			mu.Unlock()
			sort.Strings(names)
			return fmt.Errorf("hard shutdown after %s: still running: %s", timeout, strings.Join(names, ", "))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return errors.Join(errs...)
}
