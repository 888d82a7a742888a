package subproc

import (
	"bytes"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proc is a process a test started: its stderr is kept, it is killed when
// the test ends, and the end of its stderr is logged when the test failed.
type Proc struct {
	// Name names the process in messages ("ingest", "serve").
	Name string
	// Cmd is the running command (Cmd.Process to signal it).
	Cmd *exec.Cmd

	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{} // closed when the process has exited
	err    error         // its exit status, once done is closed
}

// Start starts bin with args and env (its whole environment: see Env).
func Start(t testing.TB, name, bin string, env []string, args ...string) *Proc {
	t.Helper()
	p := &Proc{Name: name, Cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.Cmd.Env = env
	p.Cmd.Stderr = (*procWriter)(p)
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		err := p.Cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.Exited() {
			_ = p.Cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s pid %d stderr (last 60 lines):\n%s", p.Name, p.Cmd.Process.Pid, p.Tail(60))
		}
	})
	return p
}

// procWriter appends to the process's stderr buffer.
type procWriter Proc

func (w *procWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stderr.Write(b)
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is the process's exit status (nil before it exited).
func (p *Proc) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Log returns what the process wrote to stderr so far.
func (p *Proc) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// Tail returns the last n lines of the process's stderr.
func (p *Proc) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Stop sends sig and waits up to timeout for the process to exit; it
// returns the exit status and fails the test when the process outlives
// the timeout.
func (p *Proc) Stop(t testing.TB, sig syscall.Signal, timeout time.Duration) error {
	t.Helper()
	_ = p.Cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return p.Err()
	case <-time.After(timeout):
		t.Fatalf("%s did not exit %s after %v", p.Name, timeout, sig)
		return nil
	}
}
