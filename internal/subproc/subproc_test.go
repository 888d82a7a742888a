package subproc

import (
	"os/exec"
	"strings"
	"testing"
)

// TestEnvFromScratch: a variable the caller exports does not reach the
// subprocess; the entries given do.
func TestEnvFromScratch(t *testing.T) {
	t.Setenv("CHATWARDEN_CLICKHOUSE_DATABASE", "not_the_tests")
	t.Setenv("CHATWARDEN_LOG_LEVEL", "error")
	cmd := exec.Command("env")
	cmd.Env = Env("CHATWARDEN_KAFKA_BROKERS=127.0.0.1:1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	if strings.Contains(got, "CHATWARDEN_CLICKHOUSE_DATABASE") || strings.Contains(got, "CHATWARDEN_LOG_LEVEL") {
		t.Errorf("the caller's CHATWARDEN_* variables reached the subprocess:\n%s", got)
	}
	for _, want := range []string{"CHATWARDEN_KAFKA_BROKERS=127.0.0.1:1", "PATH=", "LANG=C.UTF-8"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %s in:\n%s", want, got)
		}
	}
}
