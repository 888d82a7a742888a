package detect

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// docsTable returns the names in the first column of the table of
// docs/detectors.md whose header row starts with "| header |", in order.
func docsTable(t *testing.T, doc, header string) []string {
	t.Helper()
	var names []string
	in := false
	for _, line := range strings.Split(doc, "\n") {
		switch {
		case strings.HasPrefix(line, "| "+header+" |"):
			if in || names != nil {
				t.Fatalf("docs/detectors.md has two %q tables", header)
			}
			in = true
		case in && strings.HasPrefix(line, "|---"):
		case in && strings.HasPrefix(line, "| `"):
			name, _, _ := strings.Cut(strings.TrimPrefix(line, "| `"), "`")
			names = append(names, name)
		case in:
			in = false
		}
	}
	if names == nil {
		t.Fatalf("docs/detectors.md has no %q table", header)
	}
	return names
}

// TestDocsListEveryDetector: docs/detectors.md's rule and detector tables
// list exactly the rules and detectors the code has, in the code's order;
// every window detector is a known detector with a default severity.
func TestDocsListEveryDetector(t *testing.T) {
	b, err := os.ReadFile("../docs/detectors.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, tc := range []struct {
		header string
		want   []string
	}{
		{"rule", ruleNames},
		{"detector", detectorNames},
	} {
		if got := docsTable(t, doc, tc.header); !slices.Equal(got, tc.want) {
			t.Errorf("docs/detectors.md's %s table lists %v, the code has %v", tc.header, got, tc.want)
		}
	}
	// drift runs on daily counts, the destination detectors on each
	// window's shares, not on the actor's window row
	countsOnly := []string{DetDrift, DetDestinationNew, DetDestinationVolume}
	for _, n := range detectorNames {
		if !slices.ContainsFunc(windowDetectors, func(d windowDetector) bool { return d.name == n }) && !slices.Contains(countsOnly, n) {
			t.Errorf("detector %s is neither a window detector nor a count detector", n)
		}
	}
	for i, d := range windowDetectors {
		if !slices.Contains(detectorNames, d.name) {
			t.Errorf("window detector %s is not in detectorNames", d.name)
		}
		if _, ok := defaultSeverity[d.name]; !ok {
			t.Errorf("window detector %s has no default severity", d.name)
		}
		if d.alone && i != len(windowDetectors)-1 {
			t.Errorf("window detector %s runs alone but is not the last one", d.name)
		}
	}
}
