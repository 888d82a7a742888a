package detect

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/mat"

	"github.com/chatwarden/chatwarden/models"
)

// mahalanobisDims is the length of the feature-deviation vector.
const mahalanobisDims = 6

// featureNames names the features of the vector, for evidence.
var featureNames = [mahalanobisDims]string{
	"log records vs own", "log customers vs own", "log denied", "new items", "sensitive categories", "log exports above own most",
}

// featureVarFloor is the smallest variance of each feature: a count
// feature that (almost) never moved in the reservoir says nothing about
// how unusual its smallest step is, so one step — ln 2 for a log count
// (one denied access, one export above the most), 1 for a count of items —
// is at most one standard deviation, not hundreds. Found by the evaluation
// matrix: with no denied access in the reservoir, one refused read made
// fifteen ordinary windows of a high-volume cell multivariate outliers.
var featureVarFloor = [mahalanobisDims]float64{0, 0, math.Ln2 * math.Ln2, 1, 1, math.Ln2 * math.Ln2}

// mahalanobis is the multivariate model: a reservoir of warm actors'
// feature-deviation vectors, refit hourly into a mean and a Ledoit-Wolf
// shrinkage covariance (its Cholesky factor scores new vectors).
type mahalanobis struct {
	samples [][mahalanobisDims]float64
	seen    int
	rng     *rand.Rand
	mean    []float64
	chol    *mat.Cholesky
	// u is chol's upper triangular factor U (covariance = UᵀU) and
	// illConditioned whether chol's condition number is above
	// mat.ConditionTolerance (gonum's solve then reports an error):
	// distance2 solves with them itself, as gonum does.
	u              [mahalanobisDims][mahalanobisDims]float64
	illConditioned bool
	shrink         float64
	fitN           int
	// empirical is the 99.9th percentile of the reservoir's own squared
	// distances at the last fit: heavy tails make the chi-square tail too
	// optimistic, so the threshold is at least twice this.
	empirical float64
}

func newMahalanobis(capacity int) *mahalanobis {
	return &mahalanobis{samples: make([][mahalanobisDims]float64, 0, capacity), rng: rand.New(rand.NewPCG(1, 2))}
}

// add offers v to the reservoir (uniform reservoir sampling).
func (m *mahalanobis) add(v [mahalanobisDims]float64) {
	m.seen++
	if len(m.samples) < cap(m.samples) {
		m.samples = append(m.samples, v)
		return
	}
	if j := m.rng.IntN(m.seen); j < len(m.samples) {
		m.samples[j] = v
	}
}

// minFitSamples is how many deviation vectors the first fit needs.
const minFitSamples = 2000

// refit recomputes mean and shrinkage covariance.
func (m *mahalanobis) refit() {
	n := len(m.samples)
	if n < minFitSamples || n < cap(m.samples)/2 {
		return
	}
	x := mat.NewDense(n, mahalanobisDims, nil)
	for i, s := range m.samples {
		x.SetRow(i, s[:])
	}
	cov, mean, delta := ledoitWolf(x)
	for i := 0; i < mahalanobisDims; i++ { // a floor keeps constant features invertible
		cov.SetSym(i, i, math.Max(cov.At(i, i)+1e-3, featureVarFloor[i]))
	}
	var ch mat.Cholesky
	if !ch.Factorize(cov) {
		return
	}
	m.chol, m.mean, m.shrink, m.fitN = &ch, mean, delta, n
	var u mat.TriDense
	ch.UTo(&u)
	for i := range m.u {
		for j := range m.u[i] {
			m.u[i][j] = u.At(i, j)
		}
	}
	m.illConditioned = ch.Cond() > mat.ConditionTolerance
	d2s := make([]float64, 0, n)
	seen := m.seen
	m.seen = max(m.seen, 5*cap(m.samples)) // score the reservoir itself
	for _, s := range m.samples {
		if d2, _, ok := m.distance2(s); ok {
			d2s = append(d2s, d2)
		}
	}
	m.seen = seen
	m.empirical = upperQuantile(d2s, 0.999)
}

// upperQuantile is quantileSorted(xs sorted, q) for q near 1, without
// sorting xs: that reads the values at int(q*(len-1)) and the next one,
// so only the largest len-int(q*(len-1)) values need their order (for
// the refit's 0.999 of its reservoir, 5 of 4,000). They are put,
// ascending, at the end of xs (the rest of xs is left in no order).
func upperQuantile(xs []float64, q float64) float64 {
	n := len(xs)
	if n == 0 {
		return 0
	}
	k := n - int(q*float64(n-1))
	if k >= n/4 {
		slices.Sort(xs)
		return quantileSorted(xs, q)
	}
	// top: the k largest so far, ascending in slices.Sort's order (NaN
	// first), kept in the front of xs itself: it holds at most i values
	// when xs[i] is read, so it overwrites only values already read
	top := xs[:0]
	for i := 0; i < n; i++ {
		x := xs[i]
		if len(top) == k {
			if !cmp.Less(top[0], x) {
				continue
			}
			copy(top, top[1:])
			top = top[:k-1]
		}
		j, _ := slices.BinarySearchFunc(top, x, cmp.Compare[float64])
		top = slices.Insert(top, j, x)
	}
	copy(xs[n-k:], top)
	return quantileSorted(xs, q)
}

// distance2 returns the squared Mahalanobis distance of v and each
// feature's share of it; ok is false before the first fit.
func (m *mahalanobis) distance2(v [mahalanobisDims]float64) (d2 float64, contrib [mahalanobisDims]float64, ok bool) {
	if m.chol == nil || m.seen < 5*cap(m.samples) {
		return 0, contrib, false // not before the reservoir has seen a broad history
	}
	if m.illConditioned {
		return 0, contrib, false
	}
	var diff, sol [mahalanobisDims]float64
	for i := range v {
		diff[i] = v[i] - m.mean[i]
	}
	sol = diff
	m.solve(&sol)
	for i := 0; i < mahalanobisDims; i++ {
		contrib[i] = diff[i] * sol[i]
		d2 += contrib[i]
	}
	return math.Max(d2, 0), contrib, true
}

// solve overwrites b with the solution x of UᵀU x = b: what
// m.chol.SolveVecTo computes (gonum's Dpotrs: Dtrsm with Uᵀ, then with U),
// operation for operation and so bit for bit (TestMahalanobisSolveAsGonum),
// without its allocations and dispatch. The products are converted before
// they are added so that no compiler fuses them (gonum's kernels do not).
func (m *mahalanobis) solve(b *[mahalanobisDims]float64) {
	u := &m.u
	for k := 0; k < mahalanobisDims; k++ { // Uᵀ y = b
		b[k] *= 1 / u[k][k]
		for i := k + 1; i < mahalanobisDims; i++ {
			if a := u[k][i]; a != 0 {
				b[i] += float64(-a * b[k])
			}
		}
	}
	for i := mahalanobisDims - 1; i >= 0; i-- { // U x = y
		for k := i + 1; k < mahalanobisDims; k++ {
			if a := u[i][k]; a != 0 {
				b[i] += float64(-a * b[k])
			}
		}
		b[i] *= 1 / u[i][i]
	}
}

// features is the actor's deviation vector for the multivariate model.
func (e *Engine) features(c *cycle, r *windowRow, st *actorState) ([mahalanobisDims]float64, bool) {
	var v [mahalanobisDims]float64
	if st.Records.N < 16 {
		return v, false
	}
	mu, _, _ := st.seasonal(hourOfWeek(c.start.In(e.locOf(st))))
	mu *= c.multiplier(r.Tenant)
	v[0] = math.Log1p(float64(r.Records)) - math.Log1p(mu)
	if hp, ok := st.heavyExplains(float64(r.Records), c.multiplier(r.Tenant), st.heavyThreshold(e.cfg.Detectors.VolumeMin), nil); ok && hp > e.cfg.Detectors.VolumeTailProb {
		v[0] = 0 // one of the actor's own rare heavy calls, of a plausible size: its records are not a deviation
	}
	v[1] = math.Log1p(float64(r.Subjects)) - math.Log1p(st.subjMed)
	v[2] = math.Log1p(float64(r.Denied))
	n := 0
	for _, set := range []struct{ have, now []string }{{st.Stores, r.Stores}, {st.ResourceTypes, r.ResourceTypes}, {st.Categories, r.Categories}} {
		for _, it := range set.now {
			if !slices.Contains(set.have, it) {
				n++
			}
		}
	}
	v[3] = float64(n)
	s := 0
	for _, cat := range r.Categories {
		if models.SensitiveCategories[cat] {
			s++
		}
	}
	v[4] = float64(s)
	// exports beyond the most the actor has made in a window (a nightly
	// job's own export is not unusual for it); export actions only: a
	// share goes to a named destination (destination_allowlist, the share
	// rules), and agents that share cases all day are not exporting
	v[5] = math.Max(0, math.Log1p(float64(r.ExportOnly))-math.Log1p(float64(st.ExportMax)))
	return v, true
}

func (e *Engine) detectMahalanobis(x *rowCtx) (models.Finding, bool) {
	if !x.warm {
		return models.Finding{}, false
	}
	v, ok := e.rowFeatures(x)
	if !ok {
		return models.Finding{}, false
	}
	d2, contrib, ok := e.mahal.distance2(v)
	if !ok {
		return models.Finding{}, false
	}
	p := chiSquareTail(d2, mahalanobisDims)
	if p > e.cfg.Detectors.MahalanobisProb {
		return models.Finding{}, false // before the quantile: its bisection is 60 tail evaluations
	}
	thr := math.Max(chiSquareQuantile(e.cfg.Detectors.MahalanobisProb), 3*e.mahal.empirical)
	if d2 < thr {
		return models.Finding{}, false
	}
	notes := map[string]float64{"shrinkage": e.mahal.shrink, "samples": float64(e.mahal.fitN), "empirical_q999_d2": e.mahal.empirical}
	top, topV := "", 0.0
	for i, c := range contrib {
		notes["contribution:"+featureNames[i]] = c
		notes["value:"+featureNames[i]] = v[i]
		if c > topV {
			top, topV = featureNames[i], c
		}
	}
	f := e.base(DetMahalanobis, x, math.Sqrt(d2), p, models.Evidence{Metric: "Mahalanobis distance of the feature deviations",
		Observed: math.Sqrt(d2), Baseline: math.Sqrt(mahalanobisDims), BaselineSource: "population (Ledoit-Wolf shrinkage covariance)",
		Threshold: math.Sqrt(thr), Notes: notes})
	f.Summary = fmt.Sprintf("%s's window is a multivariate outlier (distance %.1f, p %.1e; largest part: %s)", x.r.ActorID, math.Sqrt(d2), p, top)
	return f, true
}

// chiSquareQuantile returns the squared distance whose tail probability is p.
func chiSquareQuantile(p float64) float64 {
	lo, hi := 0.0, 1000.0
	for i := 0; i < 60; i++ {
		mid := (lo + hi) / 2
		if chiSquareTail(mid, mahalanobisDims) > p {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}
