package testsecure

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// process is a server started by a test. It is killed at the test's
// cleanup, and by the kernel if the test binary dies first (Pdeathsig).
type process struct {
	name    string
	logFile string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	err     error         // the exit status, once done is closed
}

// startProcess starts argv in dir with its output appended to logFile and
// kills it when t ends.
func startProcess(t testing.TB, name, dir, logFile string, env []string, argv ...string) *process {
	t.Helper()
	out, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("opening %s log: %v", name, err)
	}
	p := &process{name: name, logFile: logFile, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig is sent when the thread that started the child exits,
		// so this goroutine keeps its thread until the child is gone.
		runtime.LockOSThread()
		defer out.Close()
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
		if err := cmd.Start(); err != nil {
			started <- err
			close(p.done)
			return
		}
		p.cmd = cmd
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		t.Fatalf("starting %s (%s): %v", name, argv[0], err)
	}
	t.Cleanup(p.stop)
	return p
}

// stop kills the process and waits for it to exit.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// logTail returns the last lines of the process's log.
func (p *process) logTail(n int) string {
	b, _ := os.ReadFile(p.logFile)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitReady polls ready until it returns nil, failing t if the process
// exits or timeout passes first.
func (p *process) waitReady(t testing.TB, timeout time.Duration, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if p.exited() {
			t.Fatalf("%s exited during start-up (%v); log %s:\n%s", p.name, p.err, p.logFile, p.logTail(30))
		}
		if err = ready(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			p.stop()
			t.Fatalf("%s did not become ready within %s: %v; log %s:\n%s", p.name, timeout, err, p.logFile, p.logTail(30))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// tlsHandshake connects to addr and completes a TLS handshake verified
// against pki's CA.
func tlsHandshake(addr string, pki *PKI) error {
	d := &net.Dialer{Timeout: 2 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := (&tls.Dialer{NetDialer: d, Config: pki.ClientTLS()}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// logContains reports whether file contains s.
func logContains(file, s string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if !bytes.Contains(b, []byte(s)) {
		return fmt.Errorf("%s does not yet say %q", file, s)
	}
	return nil
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. (Another
// process could take one before the server binds it; the window is short.)
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}
