package eval

import (
	"math"
	"slices"
	"sort"
	"time"
)

// Alert is one alert the replay would raise, as written to --alerts-out.
type Alert struct {
	Tenant      string    `json:"tenant"`
	ActorID     string    `json:"actor_id"`
	Detector    string    `json:"detector"`
	Severity    string    `json:"severity"`
	TS          time.Time `json:"ts"`
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	Score       float64   `json:"score"`
	Summary     string    `json:"summary,omitempty"`
	// Folded marks a finding folded into an alert raised less than an
	// hour before for the same tenant, actor and detector (the alerting
	// dedupe): it detects the label it covers, as a finding added to
	// that alert, but is not an alert of its own.
	Folded bool `json:"folded,omitempty"`
}

// KindScore is the recall of one label kind.
type KindScore struct {
	Labels   int     `json:"labels"`
	Detected int     `json:"detected"`
	Recall   float64 `json:"recall"`
	// Detectors counts which detectors fired first on the detected labels.
	Detectors map[string]int `json:"detectors,omitempty"`
	// Missed lists the ids of the labels no alert matched.
	Missed []string `json:"missed,omitempty"`
}

// Summary is what eval prints.
type Summary struct {
	// Lines counts the non-blank lines read; Events, Consents and
	// Rejected split them.
	Lines    int `json:"lines"`
	Events   int `json:"events"`
	Consents int `json:"consents"`
	Rejected int `json:"rejected"`
	// RejectedByReason counts rejected lines per dead-letter reason code;
	// RejectedExamples holds the first few of each reason.
	RejectedByReason map[string]int        `json:"rejected_by_reason,omitempty"`
	RejectedExamples []Rejection           `json:"rejected_examples,omitempty"`
	Actors           int                   `json:"actors"`
	ActorDays        int                   `json:"actor_days"`
	Windows          int                   `json:"windows"`
	Alerts           int                   `json:"alerts"`
	TrueAlerts       int                   `json:"true_alerts"`
	FalseAlerts      int                   `json:"false_alerts"`
	FalsePer1000     float64               `json:"false_alerts_per_1000_actor_days"`
	Precision        float64               `json:"precision"`
	Recall           float64               `json:"recall"`
	KindsRecall      float64               `json:"recall_mean_over_kinds"`
	TTDMedianS       float64               `json:"ttd_median_seconds"`
	TTDP95S          float64               `json:"ttd_p95_seconds"`
	TTDMedianWin     float64               `json:"ttd_median_windows"`
	WindowS          float64               `json:"window_seconds"`
	EventsPerS       float64               `json:"replay_events_per_second"`
	ElapsedS         float64               `json:"elapsed_seconds"`
	ByKind           map[string]*KindScore `json:"by_kind"`
	// OpenWindowFindings counts the findings streaming detection raised
	// on an open window (replayed at the window's close:
	// detect.Options.StreamAtClose); OpenWindowRetracted those the
	// window's evaluation did not confirm (alerting resolved their alert).
	OpenWindowFindings  int `json:"open_window_findings"`
	OpenWindowRetracted int `json:"open_window_retracted"`
	// FalseByDetector counts false alerts (once per actor, detector, hour)
	// per detector.
	FalseByDetector map[string]int `json:"false_by_detector,omitempty"`
	// Negatives counts, per hard negative, the false alerts that fell in
	// it (0 means it fooled no detector).
	Negatives map[string]int `json:"negatives,omitempty"`
}

// DefaultMaxRejected is the share of rejected lines above which `eval`
// fails: more than 0.1% of a scenario missing makes its scores meaningless.
const DefaultMaxRejected = 0.001

// RejectedRatio is the share of the lines that were rejected.
func (s *Summary) RejectedRatio() float64 {
	if s.Lines == 0 {
		return 0
	}
	return float64(s.Rejected) / float64(s.Lines)
}

// score matches alerts to labels: a label is detected by the first alert
// or folded finding that covers it; alerts (not folded findings) are
// counted, true or false.
func score(alerts []Alert, attacks, negatives []Label, actorDays int, window time.Duration) *Summary {
	s := &Summary{ActorDays: actorDays, ByKind: map[string]*KindScore{},
		FalseByDetector: map[string]int{}, Negatives: map[string]int{}, WindowS: window.Seconds()}
	for _, n := range negatives {
		s.Negatives[n.Kind[len(NegativePrefix):]] += 0
	}
	sorted := slices.Clone(alerts)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].TS.Before(sorted[j].TS) })
	var ttds []float64
	totalDetected := 0
	for _, l := range attacks {
		ks := s.ByKind[l.Kind]
		if ks == nil {
			ks = &KindScore{Detectors: map[string]int{}}
			s.ByKind[l.Kind] = ks
		}
		ks.Labels++
		found := false
		for _, a := range sorted {
			if l.covers(a.Tenant, a.ActorID, a.TS) {
				ks.Detected++
				totalDetected++
				ks.Detectors[a.Detector]++
				ttds = append(ttds, math.Max(0, a.TS.Sub(l.Start).Seconds()))
				found = true
				break
			}
		}
		if !found {
			ks.Missed = append(ks.Missed, l.ID)
		}
	}
	kindSum := 0.0
	for _, ks := range s.ByKind {
		ks.Recall = ratio(ks.Detected, ks.Labels)
		kindSum += ks.Recall
	}
	if len(s.ByKind) > 0 {
		s.KindsRecall = kindSum / float64(len(s.ByKind))
	}
	s.Recall = ratio(totalDetected, len(attacks))
	type fkey struct {
		tenant, actor, det string
		hour               int64
	}
	falses := map[fkey]bool{}
	for _, a := range sorted {
		if a.Folded {
			continue // part of an earlier alert: counted there
		}
		s.Alerts++
		matched := false
		for i := range attacks {
			if attacks[i].covers(a.Tenant, a.ActorID, a.TS) {
				matched = true
				break
			}
		}
		if matched {
			s.TrueAlerts++
			continue
		}
		k := fkey{a.Tenant, a.ActorID, a.Detector, a.TS.Unix() / 3600}
		if falses[k] {
			continue
		}
		falses[k] = true
		s.FalseAlerts++
		s.FalseByDetector[a.Detector]++
		for i := range negatives {
			if negatives[i].covers(a.Tenant, a.ActorID, a.TS) {
				s.Negatives[negatives[i].Kind[len(NegativePrefix):]]++
				break
			}
		}
	}
	s.Precision = ratio(s.TrueAlerts, s.Alerts)
	if actorDays > 0 {
		s.FalsePer1000 = 1000 * float64(s.FalseAlerts) / float64(actorDays)
	}
	if len(ttds) > 0 {
		slices.Sort(ttds)
		s.TTDMedianS = quantile(ttds, 0.5)
		s.TTDP95S = quantile(ttds, 0.95)
		s.TTDMedianWin = s.TTDMedianS / window.Seconds()
	}
	return s
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func quantile(sorted []float64, q float64) float64 {
	pos := q * float64(len(sorted)-1)
	i := int(pos)
	if i+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	f := pos - float64(i)
	return sorted[i]*(1-f) + sorted[i+1]*f
}
