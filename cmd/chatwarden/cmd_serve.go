package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chatwarden/chatwarden/dashboards"
	"github.com/chatwarden/chatwarden/ingest"
	"github.com/chatwarden/chatwarden/pseudonym"
	"github.com/chatwarden/chatwarden/store"
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
}

func (c ServeConfig) withDefaults() ServeConfig {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8080"
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
	if c.ShutdownTimeout < 0 {
		return fmt.Errorf("serve.shutdown_timeout: %s is negative", c.ShutdownTimeout)
	}
	return c.validateTLS()
}

// component is one long-running part of serve. run returns when ctx is
// cancelled (nil) or when it fails (the error stops every component).
type component struct {
	name string
	run  func(ctx context.Context) error
}

// serveDeps is what each package's wiring (wire_<pkg>.go) builds on.
type serveDeps struct {
	cfg      Config
	log      *slog.Logger
	store    *store.Store
	pseudo   *pseudonym.Pseudonymizer
	registry *prometheus.Registry
	// mux is the HTTP server's router: wirings mount their handlers on it
	// (the web UI, the JSON API, Slack's interactivity endpoint).
	mux *http.ServeMux
	// observers see every batch ingest stores (event rules register here).
	observers []ingest.BatchObserver
	// findings delivers findings to alerting; wireAlert sets it (nil when
	// alerting is not wired). Call it through d at run time.
	findings findingNotifier
	// alertActions are the dashboards' alert buttons; wireAlert sets them
	// before wireDashboards reads them (nil leaves the buttons disabled).
	alertActions dashboards.AlertActions
}

// wiring builds one package's components. It runs before any component
// starts, so a wiring may register observers or handlers for the others.
type wiring func(ctx context.Context, d *serveDeps) ([]component, error)

// wirings lists every package's wiring: add ONE line per package.
func wirings() []wiring {
	return []wiring{
		wireIngest,
		wireDetect,
		wireAlert, // before wireDashboards: it provides the alert buttons
		wireDashboards,
		wireRetention,
	}
}

func runServe(ctx context.Context, e *env, args []string) error {
	fs, cfgPath := newFlags(e, "serve")
	addr := fs.String("addr", "", "HTTP listen address (overrides serve.addr)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := loadConfig(*cfgPath)
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
	d := &serveDeps{cfg: c, log: e.log, store: s, pseudo: p, registry: reg, mux: http.NewServeMux()}
	var comps []component
	for _, w := range wirings() {
		cs, err := w(ctx, d)
		if err != nil {
			return err
		}
		comps = append(comps, cs...)
	}
	d.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	d.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		pctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.Ping(pctx); err != nil {
			http.Error(w, "clickhouse unreachable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	tc, err := c.Serve.serverTLS()
	if err != nil {
		return err
	}
	comps = append(comps, httpComponent(c.Serve.withDefaults().Addr, tc, d.mux, e.log))
	return runComponents(ctx, e.log, c.Serve.withDefaults().ShutdownTimeout, comps)
}

// httpComponent serves mux on addr until ctx ends, then shuts down
// gracefully. With tc (not nil) it serves HTTPS only.
func httpComponent(addr string, tc *tls.Config, mux http.Handler, log *slog.Logger) component {
	return component{name: "http", run: func(ctx context.Context) error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listening on %s: %w", addr, err)
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, TLSConfig: tc,
			// TLS handshake failures (plain HTTP, untrusted clients) and
			// other server errors go to our log, not the standard one.
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelInfo)}
		log.Info("http listening", "addr", ln.Addr().String(), "tls", tc != nil, "paths", "/metrics /healthz")
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
