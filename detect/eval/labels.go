package eval

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Label marks an attack (or, with kind "negative:<name>", a hard negative)
// by one actor (or "*": every actor of the tenant) in [Start, End].
type Label struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"`
	Tenant  string    `json:"tenant"`
	ActorID string    `json:"actor_id"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
}

// NegativePrefix starts the kind of a hard-negative label.
const NegativePrefix = "negative:"

// Negative reports whether l is a hard negative.
func (l *Label) Negative() bool { return strings.HasPrefix(l.Kind, NegativePrefix) }

// Grace is how long after a label's end an alert still counts as detecting it.
const Grace = 30 * time.Minute

// covers reports whether an alert on (tenant, actor) at t falls in l.
func (l *Label) covers(tenant, actor string, t time.Time) bool {
	return l.Tenant == tenant && (l.ActorID == actor || l.ActorID == "*") &&
		!t.Before(l.Start) && !t.After(l.End.Add(Grace))
}

// ReadLabels reads a labels file: one JSON object a line; blank lines and
// lines starting with # are skipped.
func ReadLabels(path string) ([]Label, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening labels: %w", err)
	}
	defer f.Close()
	return decodeLabels(f, path)
}

func decodeLabels(r io.Reader, name string) ([]Label, error) {
	var out []Label
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var l Label
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		if l.Kind == "" || l.ActorID == "" || l.Start.IsZero() || l.End.Before(l.Start) {
			return nil, fmt.Errorf("%s:%d: a label needs kind, actor_id, start and end >= start", name, n)
		}
		if l.Tenant == "" {
			l.Tenant = "default"
		}
		l.Start, l.End = l.Start.UTC(), l.End.UTC()
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return out, nil
}
