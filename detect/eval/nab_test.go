package eval

import (
	"math"
	"testing"
)

// TestScaledSigmoid pins NAB's documented points: -1 is the left edge of a
// window (0.98661), -0.5 halfway (0.84828), 0 the right edge (0), and -1
// from 3 on.
func TestScaledSigmoid(t *testing.T) {
	for _, c := range []struct{ x, want float64 }{{-1, 0.98661}, {-0.5, 0.84828}, {0, 0}, {1, -0.98661}, {3, -1}, {5, -1}} {
		if got := ScaledSigmoid(c.x); math.Abs(got-c.want) > 1e-5 {
			t.Errorf("ScaledSigmoid(%g) = %.5f, want %.5f", c.x, got, c.want)
		}
	}
}

// TestScoreNABHandComputed scores a 20-row file by hand, NAB's way
// (standard profile): probation is floor(0.15*20) = 3 rows; windows [5,9]
// and [15,17].
//
//	row 1: in probation, not scored
//	row 4: before every window: scaledSigmoid(3) * 0.11 = -0.11
//	row 6: first detection of [5,9]: position -(9-6+1)/5 = -0.8,
//	       scaledSigmoid(-0.8) / scaledSigmoid(-1) = 0.964028 / 0.986614 = 0.977107
//	row 8: later in the same window: not counted (the window keeps its best)
//	row 12: after [5,9]: distance |9-12| / (5-1) = 0.75,
//	       scaledSigmoid(0.75) * 0.11 = -0.954045 * 0.11 = -0.104945
//	[15,17]: no detection: -1.0
//
// raw = 0.977107 - 0.11 - 0.104945 - 1 = -0.237838; null = -2, perfect = 2:
// normalised 100 * (-0.237838 + 2) / 4 = 44.054.
func TestScoreNABHandComputed(t *testing.T) {
	f := NABFile{Name: "hand", Rows: 20, Windows: []NABWindow{{Kind: "spike", First: 5, Last: 9}, {Kind: "dip", First: 15, Last: 17}},
		Detections: []int{1, 4, 6, 8, 12}}
	s := ScoreNABFile(f, NABStandard)
	if math.Abs(s.Score-(-0.23783813769718987)) > 1e-9 {
		t.Errorf("raw score %.9f, want -0.237838138", s.Score)
	}
	if s.Null != -2 || s.Windows != 2 || s.Detected != 1 || s.FalsePositives != 2 {
		t.Errorf("null %g windows %d detected %d fp %d, want -2 2 1 2", s.Null, s.Windows, s.Detected, s.FalsePositives)
	}
	if s.DetectedKinds["spike"] != 1 || s.MissedKinds["dip"] != 1 {
		t.Errorf("kinds detected %v missed %v", s.DetectedKinds, s.MissedKinds)
	}
	r := ScoreNAB([]NABFile{f}, NABStandard)
	if math.Abs(r.Normalized-44.05404655757025) > 1e-9 || r.Perfect != 2 || r.Null != -2 {
		t.Errorf("normalised %.6f (perfect %g null %g), want 44.054047 (2, -2)", r.Normalized, r.Perfect, r.Null)
	}
	// The null and the perfect detector score 0 and 100.
	if r := ScoreNAB([]NABFile{{Rows: 20, Windows: f.Windows}}, NABStandard); r.Normalized != 0 {
		t.Errorf("null detector scores %g, want 0", r.Normalized)
	}
	if r := ScoreNAB([]NABFile{{Rows: 20, Windows: f.Windows, Detections: []int{5, 15}}}, NABStandard); math.Abs(r.Normalized-100) > 1e-9 {
		t.Errorf("perfect detector scores %g, want 100", r.Normalized)
	}
}
