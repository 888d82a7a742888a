package subproc

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
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

// TestProcKeepsStderrAndExit: a started process's stderr is kept, Exited
// and Err report its end, and Stop ends one that runs.
func TestProcKeepsStderrAndExit(t *testing.T) {
	p := Start(t, "sh", "/bin/sh", Env(), "-c", "echo one >&2; echo two >&2; exit 3")
	<-p.Done()
	if !p.Exited() || p.Err() == nil || !strings.Contains(p.Err().Error(), "exit status 3") {
		t.Errorf("exited %v, err %v: want exit status 3", p.Exited(), p.Err())
	}
	if p.Log() != "one\ntwo\n" || p.Tail(1) != "two" {
		t.Errorf("log %q, tail %q", p.Log(), p.Tail(1))
	}
	q := Start(t, "sleep", "/bin/sleep", Env(), "600")
	if q.Exited() {
		t.Fatal("sleep exited at once")
	}
	if err := q.Stop(t, syscall.SIGTERM, time.Minute); err == nil || !q.Exited() {
		t.Errorf("after SIGTERM: err %v, exited %v", err, q.Exited())
	}
}
