package detect

import (
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/mat"
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
	shrink  float64
	fitN    int
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
	d2s := make([]float64, 0, n)
	seen := m.seen
	m.seen = max(m.seen, 5*cap(m.samples)) // score the reservoir itself
	for _, s := range m.samples {
		if d2, _, ok := m.distance2(s); ok {
			d2s = append(d2s, d2)
		}
	}
	m.seen = seen
	slices.Sort(d2s)
	m.empirical = quantileSorted(d2s, 0.999)
}

// distance2 returns the squared Mahalanobis distance of v and each
// feature's share of it; ok is false before the first fit.
func (m *mahalanobis) distance2(v [mahalanobisDims]float64) (d2 float64, contrib [mahalanobisDims]float64, ok bool) {
	if m.chol == nil || m.seen < 5*cap(m.samples) {
		return 0, contrib, false // not before the reservoir has seen a broad history
	}
	diff := mat.NewVecDense(mahalanobisDims, nil)
	for i := range v {
		diff.SetVec(i, v[i]-m.mean[i])
	}
	var sol mat.VecDense
	if err := m.chol.SolveVecTo(&sol, diff); err != nil {
		return 0, contrib, false
	}
	for i := 0; i < mahalanobisDims; i++ {
		contrib[i] = diff.AtVec(i) * sol.AtVec(i)
		d2 += contrib[i]
	}
	return math.Max(d2, 0), contrib, true
}
