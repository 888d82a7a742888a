package eval

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"time"
)

// NAB scoring, as the Numenta Anomaly Benchmark publishes it (numenta/NAB:
// nab/sweeper.py calcSweepScore and calcScoreByThreshold, runner.py
// normalize, config/profiles.json):
//
//   - A detection inside a labelled window scores the scaled sigmoid of its
//     relative position, -(right - i + 1) / width, times tpWeight / maxTP
//     (maxTP = scaledSigmoid(-1)); a window counts its best (earliest)
//     detection only; a window without a detection scores -fnWeight.
//   - A detection outside every window scores fpWeight times the scaled
//     sigmoid of its distance past the previous window's right edge over
//     that window's width - 1 (-fpWeight before the first window).
//   - Rows in the probationary period (the first min(floor(15% of the
//     rows), 15% of 5000) rows) are not scored.
//   - The corpus score is normalised to 0..100 between the null detector
//     (no detections) and the perfect one (tpWeight per labelled window).

// NABProfile is a NAB cost matrix.
type NABProfile struct {
	TPWeight, FPWeight, FNWeight float64
}

// NABStandard is NAB's "standard" profile (config/profiles.json).
var NABStandard = NABProfile{TPWeight: 1.0, FPWeight: 0.11, FNWeight: 1.0}

// NABProbationPercent is NAB's probationary share of each data file.
const NABProbationPercent = 0.15

// nabSigmoid is the standard logistic function.
func nabSigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// ScaledSigmoid is NAB's scaledSigmoid: 2*sigmoid(-5*x) - 1, and -1 from
// a relative position of 3 on.
func ScaledSigmoid(rel float64) float64 {
	if rel >= 3.0 {
		return -1.0
	}
	return 2*nabSigmoid(-5*rel) - 1.0
}

// NABWindow is a labelled window of rows [First, Last] (inclusive).
type NABWindow struct {
	Kind        string `json:"kind"`
	First, Last int
}

// NABFile is one data file: its rows, labelled windows (sorted, not
// overlapping) and the rows the detector flagged.
type NABFile struct {
	Name       string
	Rows       int
	Windows    []NABWindow
	Detections []int
}

// NABFileScore is the score of one file.
type NABFileScore struct {
	Name string
	// Score is the raw (unnormalised) score; Null the null detector's.
	Score, Null float64
	// Windows scored, detected; false positives (flagged rows outside every
	// window, after probation).
	Windows, Detected, FalsePositives int
	// DetectedKinds and MissedKinds count windows per kind.
	DetectedKinds, MissedKinds map[string]int
}

func nabProbation(rows int) int {
	return int(math.Min(math.Floor(NABProbationPercent*float64(rows)), NABProbationPercent*5000))
}

// ScoreNABFile scores one file under profile p.
func ScoreNABFile(f NABFile, p NABProfile) NABFileScore {
	out := NABFileScore{Name: f.Name, DetectedKinds: map[string]int{}, MissedKinds: map[string]int{}}
	flagged := make(map[int]bool, len(f.Detections))
	for _, d := range f.Detections {
		flagged[d] = true
	}
	maxTP := ScaledSigmoid(-1.0)
	prob := nabProbation(f.Rows)
	// scoreParts: the best sweep score per window (-fnWeight until a
	// detection), for windows with at least one row past probation.
	best := map[int]float64{}
	for wi, w := range f.Windows {
		if w.Last >= prob {
			best[wi] = -p.FNWeight
		}
	}
	fp := 0.0
	cur := -1
	prevRight, prevWidth := -1, 0.0
	wi := 0
	for i := 0; i < f.Rows; i++ {
		if cur < 0 && wi < len(f.Windows) && i == f.Windows[wi].First {
			cur = wi
			wi++
		}
		if flagged[i] && i >= prob {
			if cur >= 0 {
				w := f.Windows[cur]
				width := float64(w.Last - w.First + 1)
				pos := -float64(w.Last-i+1) / width
				s := ScaledSigmoid(pos) * p.TPWeight / maxTP
				if s > best[cur] {
					best[cur] = s
				}
			} else {
				pos := 3.0
				if prevRight >= 0 {
					pos = math.Abs(float64(prevRight-i)) / (prevWidth - 1)
				}
				fp += ScaledSigmoid(pos) * p.FPWeight
				out.FalsePositives++
			}
		}
		if cur >= 0 && i == f.Windows[cur].Last {
			prevRight, prevWidth = i, float64(f.Windows[cur].Last-f.Windows[cur].First+1)
			cur = -1
		}
	}
	out.Score = fp
	for wi, s := range best {
		out.Score += s
		out.Null -= p.FNWeight
		out.Windows++
		k := f.Windows[wi].Kind
		if s > -p.FNWeight {
			out.Detected++
			out.DetectedKinds[k]++
		} else {
			out.MissedKinds[k]++
		}
	}
	return out
}

// NABResult is a corpus score.
type NABResult struct {
	Files []NABFileScore
	// Raw, Null and Perfect are the corpus sums; Normalized is
	// 100 * (Raw - Null) / (Perfect - Null).
	Raw, Null, Perfect, Normalized float64
}

// ScoreNAB scores files and normalises the corpus total.
func ScoreNAB(files []NABFile, p NABProfile) NABResult {
	var r NABResult
	for _, f := range files {
		s := ScoreNABFile(f, p)
		r.Files = append(r.Files, s)
		r.Raw += s.Score
		r.Null += s.Null
		r.Perfect += float64(len(f.Windows)) * p.TPWeight
	}
	if r.Perfect-r.Null != 0 {
		r.Normalized = 100 * (r.Raw - r.Null) / (r.Perfect - r.Null)
	}
	return r
}

// SeriesManifest is the description of generated series that
// `chatwarden simulate-series` writes (one JSON array).
type SeriesManifest struct {
	Name    string        `json:"name"`
	Tenant  string        `json:"tenant"`
	Actor   string        `json:"actor"`
	Start   time.Time     `json:"start"`
	Step    time.Duration `json:"step_ns"`
	Points  int           `json:"points"`
	Noise   string        `json:"noise"`
	Windows []struct {
		Kind  string `json:"kind"`
		First int    `json:"first"`
		Last  int    `json:"last"`
	} `json:"windows"`
}

// ReadSeriesManifest decodes a manifest.
func ReadSeriesManifest(r io.Reader) ([]SeriesManifest, error) {
	var ms []SeriesManifest
	if err := json.NewDecoder(r).Decode(&ms); err != nil {
		return nil, fmt.Errorf("decoding series manifest: %w", err)
	}
	return ms, nil
}

// ReadAlerts decodes alerts JSONL (as eval --alerts-out writes them).
func ReadAlerts(r io.Reader) ([]Alert, error) {
	var out []Alert
	dec := json.NewDecoder(r)
	for {
		var a Alert
		err := dec.Decode(&a)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("decoding alerts: %w", err)
		}
		out = append(out, a)
	}
}

// NABFiles turns manifests and alerts into NAB files: an alert of any
// detector on a series' tenant and actor flags the row whose window ends
// at the alert's window end (a folded finding raised no alert: it flags
// nothing).
func NABFiles(ms []SeriesManifest, alerts []Alert) []NABFile {
	out := make([]NABFile, 0, len(ms))
	for _, m := range ms {
		f := NABFile{Name: m.Name, Rows: m.Points}
		for _, w := range m.Windows {
			f.Windows = append(f.Windows, NABWindow{Kind: w.Kind, First: w.First, Last: w.Last})
		}
		sort.Slice(f.Windows, func(i, j int) bool { return f.Windows[i].First < f.Windows[j].First })
		seen := map[int]bool{}
		for _, a := range alerts {
			if a.Folded || a.Tenant != m.Tenant || a.ActorID != m.Actor || m.Step <= 0 {
				continue
			}
			row := int(a.WindowEnd.Sub(m.Start)/m.Step) - 1
			if row >= 0 && row < m.Points && !seen[row] {
				seen[row] = true
				f.Detections = append(f.Detections, row)
			}
		}
		sort.Ints(f.Detections)
		out = append(out, f)
	}
	return out
}
