// Package subproc is how tests and drills run chatwarden as a subprocess:
// one way to build the binary, one way to build its environment and one
// way to wait for what it does. The
// environment is built from scratch, so an exported CHATWARDEN_* variable
// of the caller (a database, a log level, a relative key file) never
// changes what a test's subprocess does.
package subproc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Env returns a subprocess environment holding only LANG=C.UTF-8, the
// caller's PATH, HOME and TMPDIR, and extra (KEY=value entries).
func Env(extra ...string) []string {
	env := []string{"LANG=C.UTF-8"}
	for _, k := range []string{"PATH", "HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return append(env, extra...)
}

// Build compiles ./cmd/chatwarden of the module at repoRoot into dir and
// returns the binary's path.
func Build(repoRoot, dir string) (string, error) {
	bin := filepath.Join(dir, "chatwarden")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/chatwarden")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/chatwarden: %w\n%s", err, out)
	}
	return bin, nil
}

// WaitFor polls cond every 100 ms until it holds, and fails the test when
// timeout passes first, naming what it waited for.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
