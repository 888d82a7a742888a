package detect

import (
	"math"
	"slices"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/mathext"
	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// madScale turns a median absolute deviation into a normal-consistent
// standard deviation.
const madScale = 1.4826

// medianMAD returns the median and the median absolute deviation of xs. It
// sorts a copy in scratch (which it may grow and returns).
func medianMAD(xs []float32, scratch []float64) (med, mad float64, _ []float64) {
	if len(xs) == 0 {
		return 0, 0, scratch
	}
	scratch = scratch[:0]
	for _, x := range xs {
		scratch = append(scratch, float64(x))
	}
	slices.Sort(scratch)
	med = quantileSorted(scratch, 0.5)
	for i, x := range scratch {
		scratch[i] = math.Abs(x - med)
	}
	slices.Sort(scratch)
	mad = quantileSorted(scratch, 0.5)
	return med, mad, scratch
}

// median64 returns the median of xs, sorting xs in place.
func median64(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	return quantileSorted(xs, 0.5)
}

// quantileSorted is the linear-interpolated quantile of sorted xs.
func quantileSorted(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	pos := q * float64(len(xs)-1)
	i := int(pos)
	if i+1 >= len(xs) {
		return xs[len(xs)-1]
	}
	f := pos - float64(i)
	return xs[i]*(1-f) + xs[i+1]*f
}

// countTail returns P(X >= x) for a count X with mean mu and variance v:
// Poisson when v <= mu, otherwise negative binomial with the same mean and
// variance (overdispersion). Small is surprising.
func countTail(x, mu, v float64) float64 {
	if x <= 0 {
		return 1
	}
	mu = math.Max(mu, 1e-3)
	k := math.Ceil(x) - 1 // P(X >= x) = 1 - P(X <= k)
	if v <= mu*1.0001 {
		return distuv.Poisson{Lambda: mu}.Survival(k)
	}
	// NB with r "successes" and success probability p: mean r(1-p)/p,
	// variance r(1-p)/p^2, so p = mu/v and r = mu^2/(v-mu).
	p := mu / v
	r := mu * mu / (v - mu)
	// P(X <= k) = I_p(r, k+1).
	cdf := mathext.RegIncBeta(r, k+1, p)
	return math.Max(0, 1-cdf)
}

// expTail returns P(X >= x) under an exponential upper tail above the
// median med, calibrated so that max is the expected largest of n
// independent draws: P(X >= x) = 0.5 exp(-(x-med)/b), b = (max-med) /
// ln(n/2). ok is false when max or n say nothing (max at the median,
// fewer than 4 draws).
func expTail(x, med, maxSeen, n float64) (float64, bool) {
	if n < 4 || maxSeen <= med*1.01 || maxSeen-med < 1 {
		return 0, false
	}
	b := (maxSeen - med) / math.Log(n/2)
	if x <= med {
		return 1, true
	}
	return math.Min(1, 0.5*math.Exp(-(x-med)/b)), true
}

// poissonTail returns P(X >= x) for X ~ Poisson(mu).
func poissonTail(x, mu float64) float64 { return countTail(x, mu, mu) }

// robustZ is (x - med) / (madScale * mad), with the scale floored at floor.
func robustZ(x, med, mad, floor float64) float64 {
	s := math.Max(madScale*mad, floor)
	return (x - med) / s
}

// ledoitWolf returns the Ledoit-Wolf shrinkage estimate of the covariance of
// the rows of x (n samples by p features) towards a scaled identity, and
// the shrinkage intensity used. It also returns the column means.
func ledoitWolf(x *mat.Dense) (*mat.SymDense, []float64, float64) {
	n, p := x.Dims()
	means := make([]float64, p)
	col := make([]float64, n)
	for j := 0; j < p; j++ {
		mat.Col(col, j, x)
		means[j] = stat.Mean(col, nil)
	}
	xc := mat.NewDense(n, p, nil)
	for i := 0; i < n; i++ {
		xr, cr := x.RawRowView(i), xc.RawRowView(i)
		for j := 0; j < p; j++ {
			cr[j] = xr[j] - means[j]
		}
	}
	s := mat.NewSymDense(p, nil)
	s.SymOuterK(1/float64(n), xc.T())
	// Target mu*I with mu = tr(S)/p.
	mu := 0.0
	for j := 0; j < p; j++ {
		mu += s.At(j, j)
	}
	mu /= float64(p)
	// d2 = ||S - mu I||_F^2
	d2 := 0.0
	for i := 0; i < p; i++ {
		for j := 0; j < p; j++ {
			v := s.At(i, j)
			if i == j {
				v -= mu
			}
			d2 += v * v
		}
	}
	// b2 = min(d2, 1/n^2 sum_k ||x_k x_k^T - S||_F^2), with S copied out
	// whole once: s.At (bounds checks, the triangle's index) per sample
	// and entry cost more than the products
	sf := make([]float64, p*p)
	for i := 0; i < p; i++ {
		for j := 0; j < p; j++ {
			sf[i*p+j] = s.At(i, j)
		}
	}
	b2 := 0.0
	for k := 0; k < n; k++ {
		row := xc.RawRowView(k)
		for i := 0; i < p; i++ {
			si := sf[i*p : i*p+p]
			for j := 0; j < p; j++ {
				v := row[i]*row[j] - si[j]
				b2 += v * v
			}
		}
	}
	b2 /= float64(n) * float64(n)
	b2 = math.Min(b2, d2)
	delta := 1.0
	if d2 > 0 {
		delta = b2 / d2
	}
	out := mat.NewSymDense(p, nil)
	for i := 0; i < p; i++ {
		for j := i; j < p; j++ {
			v := (1 - delta) * s.At(i, j)
			if i == j {
				v += delta * mu
			}
			out.SetSym(i, j, v)
		}
	}
	return out, means, delta
}

// chiSquareTail is P(X >= d2) for X ~ chi-square with k degrees of freedom.
func chiSquareTail(d2 float64, k int) float64 {
	return distuv.ChiSquared{K: float64(k)}.Survival(d2)
}

// theilSen returns the median of pairwise slopes of ys over x = 0..n-1.
func theilSen(ys []float64) float64 {
	var slopes []float64
	for i := 0; i < len(ys); i++ {
		for j := i + 1; j < len(ys); j++ {
			slopes = append(slopes, (ys[j]-ys[i])/float64(j-i))
		}
	}
	return median64(slopes)
}
