package bench

import "math"

// poissonCDF returns P(X <= k) for X ~ Poisson(lambda).
func poissonCDF(k int, lambda float64) float64 {
	if k < 0 {
		return 0
	}
	if lambda <= 0 {
		return 1
	}
	sum, logTerm := 0.0, -lambda // log of P(X = 0)
	for i := 0; i <= k; i++ {
		if i > 0 {
			logTerm += math.Log(lambda) - math.Log(float64(i))
		}
		sum += math.Exp(logTerm)
	}
	return math.Min(1, sum)
}

// poissonTailAtLeast returns P(X >= k) for X ~ Poisson(lambda).
func poissonTailAtLeast(k int, lambda float64) float64 {
	if k <= 0 {
		return 1
	}
	return math.Max(0, 1-poissonCDF(k-1, lambda))
}

// poissonCI returns the exact (Garwood) two-sided confidence interval of
// a Poisson mean from one observed count k: lo solves P(X >= k) =
// (1-conf)/2 (0 when k is 0), hi solves P(X <= k) = (1-conf)/2.
func poissonCI(k int, conf float64) (lo, hi float64) {
	a := (1 - conf) / 2
	// P(X <= k) falls as lambda grows; bisect on [0, k + 20 sqrt(k+1) + 20]
	top := float64(k) + 20*math.Sqrt(float64(k)+1) + 20
	hi = bisect(0, top, func(l float64) bool { return poissonCDF(k, l) > a })
	if k > 0 {
		lo = bisect(0, top, func(l float64) bool { return poissonTailAtLeast(k, l) < a })
	}
	return lo, hi
}

// bisect returns the point of [lo, hi] where below turns false (below is
// true at lo and false at hi).
func bisect(lo, hi float64, below func(float64) bool) float64 {
	for range 100 {
		mid := (lo + hi) / 2
		if below(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// wilsonCI returns the Wilson score interval of a proportion k/n at the
// normal quantile z.
func wilsonCI(k, n int, z float64) (lo, hi float64) {
	if n == 0 {
		return 0, 1
	}
	p, nf := float64(k)/float64(n), float64(n)
	d := 1 + z*z/nf
	c := (p + z*z/(2*nf)) / d
	h := z * math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf)) / d
	return math.Max(0, c-h), math.Min(1, c+h)
}
