package testsecure

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/subproc"
)

// ClickHouse is a running clickhouse-server whose only listener is the
// native protocol over TLS, and whose only user is User, identified by the
// SHA-256 of Password. There is no "default" user and no plain-text port.
type ClickHouse struct {
	// Addr is the TLS native-protocol address, 127.0.0.1:port.
	Addr string
	// User and Password are the only credentials the server accepts.
	User, Password string
	// PKI signed the server's certificate; clients trust PKI.CAFile.
	PKI *PKI
	// Dir holds the configuration, data and logs.
	Dir string
}

// StartClickHouse starts a TLS-only ClickHouse (Debian's clickhouse-server,
// the 18.16 the rest of the suite uses) with pki's server certificate and
// waits until it completes a TLS handshake. The server is killed when t
// ends. A missing binary or a server that does not start fails t.
func StartClickHouse(t testing.TB, pki *PKI) *ClickHouse {
	t.Helper()
	bin, err := exec.LookPath("clickhouse-server")
	if err != nil {
		for _, p := range []string{"/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server"} {
			if _, serr := os.Stat(p); serr == nil {
				bin, err = p, nil
				break
			}
		}
	}
	if err != nil {
		t.Fatalf("clickhouse-server is required (scripts/stack.sh up installs it): %v", err)
	}
	dir := t.TempDir()
	ch := &ClickHouse{User: "chatwarden", Password: randomSecret(), PKI: pki, Dir: dir}
	port := freePorts(t, 1)[0]
	ch.Addr = "127.0.0.1:" + strconv.Itoa(port)
	// The configuration comes from scripts/stack.sh, which writes the
	// stack's and the drills' too: one place for ClickHouse's config.
	sum := sha256.Sum256([]byte(ch.Password))
	gen := exec.Command("bash", filepath.Join(repoRoot(), "scripts", "stack.sh"), "ch-config", dir)
	gen.Env = subproc.Env("CHATWARDEN_CH_PORT="+strconv.Itoa(port),
		"CHATWARDEN_CH_TLS_CERT="+pki.CertFile, "CHATWARDEN_CH_TLS_KEY="+pki.KeyFile,
		"CHATWARDEN_CH_SOLE_USER="+ch.User, "CHATWARDEN_CH_SOLE_USER_SHA256="+hex.EncodeToString(sum[:]))
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("scripts/stack.sh ch-config: %v\n%s", err, out)
	}
	// 18.16 writes preprocessed configs next to the config file's working
	// directory: run it from dir.
	p := startProcess(t, "clickhouse-server", dir, filepath.Join(dir, "log", "stdout.log"), nil,
		bin, "--config-file="+filepath.Join(dir, "config.xml"))
	p.logFile = filepath.Join(dir, "log", "clickhouse-server.log")
	p.waitReady(t, 60*time.Second, func() error {
		if err := logContains(p.logFile, "Ready for connections"); err != nil {
			return err
		}
		return tlsHandshake(ch.Addr, pki)
	})
	return ch
}

// randomSecret returns 24 random bytes, hex encoded.
func randomSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// repoRoot is the repository this package is in (two levels up).
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
