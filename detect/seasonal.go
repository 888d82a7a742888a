package detect

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/gonum/mathext"
	"gonum.org/v1/gonum/stat/distuv"

	"github.com/chatwarden/chatwarden/models"
)

// The seasonal_count detector judges an actor whose activity is a
// continuous count series (active in nearly every window: a bot, a batch
// feed, a whole integration reporting one event per point with records =
// the count) against a seasonal-naive decomposition of its own history:
//
//	base  b_t = median of the same slot (and its two neighbours) in each of
//	            the last series_weeks weeks (before two weeks of history:
//	            the same slot of the last days of the same day type,
//	            weekday or weekend), each value divided by the level of
//	            its time
//	level ρ_t = median over the latest day of (y+½)/(b+½): trend and
//	            accepted level shifts, robust to the spikes and dips of
//	            that day
//	expected μ_t = ρ_t b_t
//	spread  σ_t² = max(μ_t, (ρ_t MAD_b)², κ² μ_t), κ the robust spread
//	            (1.4826 MAD) of the Pearson residuals (y-μ)/√μ of the
//	            last three days: Poisson at least, overdispersed when the
//	            series is
//
// A window fires when its count is improbable under a negative binomial
// of mean μ and variance σ² (either tail: spikes and dips), or when the sum
// of the residuals of the last n windows (each clipped at ±3σ, so one spike
// does not make a span) is improbable under the normal approximation, for
// each span n of series_spans (sustained level shifts and drifts), with a
// relative change of at least series_min_change. History learns the raw
// counts: the medians shrug off a few anomalous windows, and a level shift
// is accepted once it holds most of a day.

// seriesState is the count series of a continuous actor.
type seriesState struct {
	Start, At int64     // window numbers of the first and latest value held
	Hist      []float32 // records per window over the level then, index w mod len (series_weeks weeks)
	Obs       []float32 // records of the latest max(spans) windows
	Ratio     []float32 // (y+½)/(b+½) of the latest day, index w mod len; NaN unknown
	Resid     []float32 // Pearson residuals of the latest three days; NaN unknown
	Dev, Var  []float32 // clipped y-μ and σ² of the latest max(spans) windows; Var 0 unknown
	Exp       []float32 // μ of the same windows

	// computed by prepare for the current window, used by detect and learn
	w             int64
	b, sb, mu, v  float64
	rho, kappa    float64
	mode          string
	ok            bool
	scratch, cand []float64
}

// seriesMinLife is how many windows an actor must have been seen over,
// active in series_coverage of them, before it gets a series state.
const seriesMinLife = 12

// seriesGeom is the window geometry of the series detector.
type seriesGeom struct {
	perDay, perWeek int64
	weeks           int
	maxSpan         int
}

func (e *Engine) seriesGeom() (seriesGeom, bool) {
	d := e.cfg.Detectors
	w := e.cfg.Window
	if w < d.SeriesMinWindow || (7*24*time.Hour)%w != 0 {
		return seriesGeom{}, false
	}
	g := seriesGeom{perDay: int64(24 * time.Hour / w), perWeek: int64(7 * 24 * time.Hour / w), weeks: d.SeriesWeeks}
	for _, s := range d.SeriesSpans {
		g.maxSpan = max(g.maxSpan, s)
	}
	return g, true
}

func nanRing(n int) []float32 {
	r := make([]float32, n)
	for i := range r {
		r[i] = float32(math.NaN())
	}
	return r
}

// seriesPrepare keeps the actor's series state (creating or dropping it on
// its coverage) and computes the expectation of window number w. It
// returns nil when the actor is not a continuous series.
func (e *Engine) seriesPrepare(st *actorState, w int64) *seriesState {
	if !e.cfg.enabled(DetSeasonal) {
		return nil
	}
	g, ok := e.seriesGeom()
	if !ok {
		return nil
	}
	winSec := int64(e.cfg.Window / time.Second)
	if st.FirstSeen == 0 {
		return nil
	}
	life := (st.LastSeen-st.FirstSeen)/winSec + 2 // this window included
	cov := float64(st.ActiveWindows+1) / float64(life)
	if (life >= g.perDay || st.Series == nil) && cov < e.cfg.Detectors.SeriesCoverage {
		st.Series = nil
		return nil
	}
	if st.Series == nil && life < seriesMinLife {
		return nil // not yet: every new actor would hold weeks of slots
	}
	s := st.Series
	if s != nil && (w-s.At > int64(len(s.Hist)) || w <= s.At) {
		s = nil // a gap longer than the history (or time went back): start over
	}
	if s == nil {
		s = &seriesState{Start: w, At: w - 1, Hist: make([]float32, int64(g.weeks)*g.perWeek),
			Ratio: nanRing(int(g.perDay)), Resid: nanRing(int(3 * g.perDay)),
			Dev: make([]float32, g.maxSpan), Var: make([]float32, g.maxSpan), Exp: make([]float32, g.maxSpan), Obs: make([]float32, g.maxSpan)}
		st.Series = s
	}
	// Windows without activity between the latest value and this one
	// are zero counts.
	// (their level ratio and residual are unknown: a ring slot must not
	// keep a value from a day or more before).
	nan := float32(math.NaN())
	for v := s.At + 1; v < w; v++ {
		s.Hist[v%int64(len(s.Hist))] = 0
		i := v % int64(len(s.Var))
		s.Dev[i], s.Var[i], s.Exp[i], s.Obs[i] = 0, 0, 0, 0
		s.Ratio[v%int64(len(s.Ratio))], s.Resid[v%int64(len(s.Resid))] = nan, nan
	}
	s.w, s.ok, s.rho = w, false, 1
	s.b, s.sb, s.mode, s.ok = s.base(w, g)
	if !s.ok {
		return s
	}
	var rs []float64
	for _, r := range s.Ratio {
		if !math.IsNaN(float64(r)) {
			rs = append(rs, float64(r))
		}
	}
	if int64(len(rs)) >= g.perDay/4 {
		s.rho = median64(rs)
	}
	s.kappa = 1
	var es []float32
	for _, r := range s.Resid {
		if !math.IsNaN(float64(r)) {
			es = append(es, r)
		}
	}
	if int64(len(es)) >= g.perDay/2 {
		_, mad, scr := medianMAD(es, s.scratch)
		s.scratch = scr
		s.kappa = math.Max(1, madScale*mad)
	}
	// The expectation is not floored (a slot that was always empty
	// expects nothing, so silence there is no dip); the variance is, at
	// half a record, so that a count out of nowhere is judged by a Poisson
	// of mean ½ rather than by a degenerate one.
	s.mu = s.rho * s.b
	m := math.Max(s.mu, 0.5)
	s.v = math.Max(m, math.Max(math.Pow(s.rho*s.sb, 2), s.kappa*s.kappa*m))
	return s
}

func (s *seriesState) valid(v int64) bool {
	return v >= s.Start && v <= s.At && s.At-v < int64(len(s.Hist))
}

// base returns the seasonal-naive base of window w: the median and scale
// (1.4826 MAD) of the same slot and its neighbours in past weeks, else in
// past days of the same day type.
func (s *seriesState) base(w int64, g seriesGeom) (b, sb float64, mode string, ok bool) {
	c := s.cand[:0]
	for k := int64(1); k <= int64(g.weeks); k++ {
		for j := int64(-1); j <= 1; j++ {
			if v := w - k*g.perWeek + j; s.valid(v) {
				c = append(c, float64(s.Hist[v%int64(len(s.Hist))]))
			}
		}
	}
	mode = "same slot, past weeks"
	// Three weeks at least: a median of three weeks shrugs off one week
	// whose values were divided by a level that lagged a shift.
	if len(c) < 9 {
		c, mode = c[:0], "same slot, past days of the same day type"
		weekend := func(v int64) bool {
			d := (v/g.perDay + 4) % 7 // time.Weekday: day 0 of the epoch was a Thursday
			return d == int64(time.Saturday) || d == int64(time.Sunday)
		}
		days := 0
		for k := int64(1); k <= 21 && days < 7; k++ {
			v0 := w - k*g.perDay
			if !s.valid(v0) || weekend(v0) != weekend(w) {
				continue
			}
			days++
			for j := int64(-1); j <= 1; j++ {
				if s.valid(v0 + j) {
					c = append(c, float64(s.Hist[(v0+j)%int64(len(s.Hist))]))
				}
			}
		}
		if days < 2 {
			s.cand = c
			return 0, 0, "warming-up", false
		}
	}
	s.cand = c
	s.scratch = append(s.scratch[:0], c...)
	slices.Sort(s.scratch)
	b = quantileSorted(s.scratch, 0.5)
	for i, x := range c {
		s.scratch[i] = math.Abs(x - b)
	}
	slices.Sort(s.scratch)
	return b, madScale * quantileSorted(s.scratch, 0.5), mode, true
}

// learn folds window w's count y into the series. History holds y over
// the level of its time, so that the medians of past weeks compare slots,
// not levels: a level shift or a trend moves ρ, not the seasonal shape.
func (s *seriesState) learn(w int64, y float64) {
	s.Hist[w%int64(len(s.Hist))] = float32(y / s.rho)
	s.At = w
	i := w % int64(len(s.Var))
	s.Obs[i] = float32(y)
	if !s.ok {
		s.Dev[i], s.Var[i], s.Exp[i] = 0, 0, 0
		s.Ratio[w%int64(len(s.Ratio))], s.Resid[w%int64(len(s.Resid))] = float32(math.NaN()), float32(math.NaN())
		return
	}
	sd := math.Sqrt(s.v)
	s.Dev[i] = float32(math.Max(-3*sd, math.Min(3*sd, y-s.mu)))
	s.Var[i], s.Exp[i] = float32(s.v), float32(s.mu)
	s.Ratio[w%int64(len(s.Ratio))] = float32((y + 0.5) / (s.b + 0.5))
	s.Resid[w%int64(len(s.Resid))] = float32((y - s.mu) / math.Sqrt(math.Max(s.mu, 1)))
}

// countLower returns P(X <= x) for a count with mean mu and variance v
// (Poisson, or negative binomial when overdispersed).
func countLower(x, mu, v float64) float64 {
	if x < 0 {
		return 0
	}
	mu = math.Max(mu, 1e-3)
	k := math.Floor(x)
	if v <= mu*1.0001 {
		return distuv.Poisson{Lambda: mu}.CDF(k)
	}
	p := mu / v
	r := mu * mu / (v - mu)
	return math.Min(1, mathext.RegIncBeta(r, k+1, p))
}

func (e *Engine) detectSeasonal(x *rowCtx) (models.Finding, bool) {
	s := x.ser
	if s == nil || !s.ok {
		return models.Finding{}, false
	}
	d := e.cfg.Detectors
	y := float64(x.r.Records)
	type test struct {
		span            int
		obs, exp, sd, p float64
		z               float64
		spike           bool
		dir             string
	}
	best := test{p: 1}
	// one window: negative binomial tails
	if y > s.mu {
		if p := countTail(y, math.Max(s.mu, 0.5), s.v); p < best.p {
			best = test{span: 1, obs: y, exp: s.mu, sd: math.Sqrt(s.v), p: p, dir: "above"}
		}
	} else if p := countLower(y, s.mu, s.v); p < best.p {
		best = test{span: 1, obs: y, exp: s.mu, sd: math.Sqrt(s.v), p: p, dir: "below"}
	}
	if best.span == 1 && math.Abs(y-s.mu) < d.SeriesMinChange*s.mu {
		best = test{p: 1}
	}
	// spans: clipped residual sums of the last n windows
	n := int64(len(s.Var))
	for _, span := range d.SeriesSpans {
		if span < 2 {
			continue
		}
		dev, vr := math.Max(-3*math.Sqrt(s.v), math.Min(3*math.Sqrt(s.v), y-s.mu)), s.v
		obs, exp := y, s.mu
		full := true
		for k := int64(1); k < int64(span); k++ {
			i := ((s.w-k)%n + n) % n
			if s.Var[i] == 0 || !s.valid(s.w-k) {
				full = false
				break
			}
			dev += float64(s.Dev[i])
			vr += float64(s.Var[i])
			exp += float64(s.Exp[i])
			obs += float64(s.Obs[i])
		}
		if !full || math.Abs(obs-exp) < d.SeriesMinChange*exp {
			continue
		}
		z := dev / math.Sqrt(vr)
		p := distuv.UnitNormal.Survival(math.Abs(z))
		if (z > 0) != (obs > exp) {
			continue
		}
		if p < best.p {
			dir := "above"
			if z < 0 {
				dir = "below"
			}
			best = test{span: span, obs: obs, exp: exp, sd: math.Sqrt(vr), p: p, z: z, dir: dir}
		}
	}
	if best.p >= d.SeriesTailProb {
		return models.Finding{}, false
	}
	if best.span == 1 {
		best.z = (y - s.mu) / math.Sqrt(s.v)
	}
	spanDur := time.Duration(best.span) * e.cfg.Window
	// The threshold, in records, is where the normal approximation of the
	// test reaches series_tail_prob (and the minimum change), on the side
	// of the deviation.
	zq := distuv.UnitNormal.Quantile(1 - d.SeriesTailProb)
	thr := math.Max(best.exp+zq*best.sd, best.exp*(1+d.SeriesMinChange))
	if best.dir == "below" {
		thr = math.Max(0, math.Min(best.exp-zq*best.sd, best.exp*(1-d.SeriesMinChange)))
	}
	f := e.base(DetSeasonal, x, math.Abs(best.z), best.p, models.Evidence{
		Metric: fmt.Sprintf("records per %s", spanDur), Observed: best.obs, Baseline: best.exp, Spread: best.sd,
		Threshold: thr, BaselineSource: s.mode,
		Notes: map[string]float64{"z": best.z, "tail_probability": best.p, "span_windows": float64(best.span),
			"seasonal_base": s.b, "seasonal_base_spread": s.sb, "level_ratio": s.rho, "residual_spread": s.kappa,
			"ratio": (best.obs + 0.5) / (best.exp + 0.5)}})
	f.WindowStart = x.c.end.Add(-spanDur)
	f.Summary = fmt.Sprintf("%s made %.0f records in the last %s, %s the expected %.1f (seasonal base %.1f x level %.2f, spread %.1f; z %.1f, p %.1e)",
		x.r.ActorID, best.obs, spanDur, best.dir, best.exp, s.b, s.rho, best.sd, best.z, best.p)
	return f, true
}

// evaluateSilent judges, as a zero count, the window of every count-series
// actor that has no row in it: a feed that stops (an outage, a blinded
// source) sends nothing at all. After a day of silence the actor is no
// longer judged until it is active again.
func (e *Engine) evaluateSilent(c *cycle, rows []windowRow) []models.Finding {
	if len(e.series) == 0 {
		return nil
	}
	g, ok := e.seriesGeom()
	if !ok {
		return nil
	}
	present := make(map[actorKey]bool, len(rows))
	for i := range rows {
		present[actorKey{rows[i].Tenant, rows[i].ActorID}] = true
	}
	w := c.start.Unix() / int64(e.cfg.Window/time.Second)
	var out []models.Finding
	for k, st := range e.series {
		if present[k] {
			continue
		}
		if st.Series == nil || w-st.Series.At > g.perDay {
			delete(e.series, k)
			continue
		}
		r := windowRow{WindowStart: c.start, Tenant: k.Tenant, ActorID: k.Actor, ActorType: st.Type, ActorRole: st.Role, ActorVendor: st.Vendor}
		x := &rowCtx{c: c, r: &r, st: st}
		if x.ser = e.seriesPrepare(st, w); x.ser == nil {
			delete(e.series, k)
			continue
		}
		if f, ok := e.detectSeasonal(x); ok {
			f.Summary += " (no events at all in the window)"
			out = append(out, f)
		}
		x.ser.learn(w, 0)
	}
	// map order: findings in a stable order for the sinks
	slices.SortFunc(out, func(a, b models.Finding) int {
		if a.Tenant != b.Tenant {
			return strings.Compare(a.Tenant, b.Tenant)
		}
		return strings.Compare(a.ActorID, b.ActorID)
	})
	return out
}
