package chart

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"
)

// wellFormed fails the test when svg is not well-formed XML.
func wellFormed(t *testing.T, svg string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		_, err := d.Token()
		if err != nil {
			if err.Error() == "EOF" {
				return
			}
			t.Fatalf("svg is not well-formed: %v\n%s", err, svg)
		}
	}
}

func TestCharts(t *testing.T) {
	t0 := time.Date(2026, 11, 16, 9, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		svg  string
		want []string
	}{
		{"stacked bars", string(Bars("alerts <by> week", []string{"W46", "W47"}, []Series{{Name: "high", Values: []float64{2, 3}}, {Name: "low", Values: []float64{1, 0}}}, true)),
			[]string{"alerts &lt;by&gt; week", "W47 high: 3", "<rect"}},
		{"grouped bars", string(Bars("x", []string{"a"}, []Series{{Name: "s", Values: []float64{1500}}}, false)), []string{"a s: 1.5k"}},
		{"hbars", string(HBars("top", []string{"agent-1", "vendor-7"}, []float64{10, 4}, "")), []string{"agent-1", "vendor-7", ">10<"}},
		{"timeline", string(Timeline("series", []time.Time{t0, t0.Add(time.Minute)}, []float64{3, 40}, Band{Baseline: 4, Low: 2, High: 6, Threshold: 20}, t0.Add(time.Minute), t0.Add(2*time.Minute))),
			[]string{"baseline band 2–6", "threshold 20", "2026-11-16 09:01: 40", "alert window"}},
		{"empty timeline", string(Timeline("none", nil, nil, Band{}, time.Time{}, time.Time{})), []string{"no activity"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wellFormed(t, c.svg)
			for _, w := range c.want {
				if !strings.Contains(c.svg, w) {
					t.Errorf("svg lacks %q:\n%s", w, c.svg)
				}
			}
		})
	}
}

func TestNiceMax(t *testing.T) {
	for in, want := range map[float64]float64{0: 1, 0.3: 0.5, 7: 10, 12: 20, 45: 50, 100: 100, 101: 200} {
		if got := niceMax(in); got != want {
			t.Errorf("niceMax(%v) = %v, want %v", in, got, want)
		}
	}
}
