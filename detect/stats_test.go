package detect

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat/distuv"
)

func TestCountTail(t *testing.T) {
	tests := []struct {
		name      string
		x, mu, v  float64
		want      float64
		tolerance float64
	}{
		{"poisson P(X>=3) with mean 1", 3, 1, 1, 1 - distuv.Poisson{Lambda: 1}.CDF(2), 1e-12},
		{"zero observed is never surprising", 0, 5, 5, 1, 0},
		// NB with mean 4, variance 12: p = 1/3, r = 2; P(X >= 1) = 1 - p^r.
		{"negative binomial P(X>=1)", 1, 4, 12, 1 - math.Pow(1.0/3, 2), 1e-9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := countTail(tc.x, tc.mu, tc.v); math.Abs(got-tc.want) > tc.tolerance {
				t.Errorf("countTail(%g, %g, %g) = %g, want %g", tc.x, tc.mu, tc.v, got, tc.want)
			}
		})
	}
	if countTail(30, 5, 50) <= countTail(30, 5, 5) {
		t.Error("overdispersion must make a large count less surprising")
	}
}

func TestLedoitWolfShrinks(t *testing.T) {
	// Few samples of 4 features: the sample covariance is singular; the
	// shrinkage estimate must be invertible and shrink towards identity.
	x := mat.NewDense(3, 4, []float64{1, 2, 3, 4, 2, 4, 6, 8, 3, 6, 9, 12.5})
	cov, means, delta := ledoitWolf(x)
	if delta <= 0 || delta > 1 {
		t.Fatalf("shrinkage %g not in (0, 1]", delta)
	}
	if math.Abs(means[0]-2) > 1e-12 {
		t.Errorf("mean %g, want 2", means[0])
	}
	var ch mat.Cholesky
	if !ch.Factorize(cov) {
		t.Error("shrunk covariance is not positive definite")
	}
}

// TestLedoitWolfShrinkageAsDefined checks the shrinkage intensity against
// its definition summed in the same order with the matrix's own accessors:
// ledoitWolf reads S from a copy, which must change no bit of it.
func TestLedoitWolfShrinkageAsDefined(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 12))
	for _, dims := range [][2]int{{3, 4}, {20, 5}, {200, 5}, {50, 8}} {
		n, p := dims[0], dims[1]
		x := mat.NewDense(n, p, nil)
		for i := 0; i < n; i++ {
			for j := 0; j < p; j++ {
				x.Set(i, j, rng.NormFloat64()*float64(j+1)+float64(i%3))
			}
		}
		_, means, delta := ledoitWolf(x)
		xc := mat.NewDense(n, p, nil)
		for i := 0; i < n; i++ {
			for j := 0; j < p; j++ {
				xc.Set(i, j, x.At(i, j)-means[j])
			}
		}
		s := mat.NewSymDense(p, nil)
		s.SymOuterK(1/float64(n), xc.T())
		mu := 0.0
		for j := 0; j < p; j++ {
			mu += s.At(j, j)
		}
		mu /= float64(p)
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
		b2 := 0.0
		for k := 0; k < n; k++ {
			for i := 0; i < p; i++ {
				for j := 0; j < p; j++ {
					v := xc.At(k, i)*xc.At(k, j) - s.At(i, j)
					b2 += v * v
				}
			}
		}
		b2 /= float64(n) * float64(n)
		want := 1.0
		if d2 > 0 {
			want = math.Min(b2, d2) / d2
		}
		if delta != want {
			t.Errorf("%dx%d: shrinkage %v, want %v", n, p, delta, want)
		}
	}
}

func TestMedianMAD(t *testing.T) {
	med, mad, _ := medianMAD([]float32{1, 2, 3, 4, 100}, nil)
	if med != 3 || mad != 1 {
		t.Errorf("median %g MAD %g, want 3 and 1", med, mad)
	}
}

// TestHeavyExplains: a rare heavy caller's size is judged by its own
// heavy calls, leniently with one on record, by its spread with many.
func TestHeavyExplains(t *testing.T) {
	withCalls := func(sizes ...float64) *actorState {
		s := &actorState{WinN: 500, HeavyN: float32(len(sizes)), HeavyLog: &ring{}}
		for _, v := range sizes {
			s.HeavyLog.add(math.Log(v))
		}
		return s
	}
	tight := withCalls(300, 310, 290, 305, 295, 300, 302, 298, 300, 301)
	for _, tc := range []struct {
		name    string
		s       *actorState
		obs     float64
		explain bool // probability above 1e-6
	}{
		{"one call on record, 2.3x its size", withCalls(190), 443, true},
		{"ten calls of 300, one of 450", tight, 450, true},
		{"ten calls of 300, one of 3000", tight, 3000, false},
	} {
		p, ok := tc.s.heavyExplains(tc.obs, 1, 100, nil)
		if !ok || (p > 1e-6) != tc.explain {
			t.Errorf("%s: p %.2g ok %v, want explained %v", tc.name, p, ok, tc.explain)
		}
	}
	if _, ok := (&actorState{}).heavyExplains(500, 1, 100, nil); ok {
		t.Error("no heavy call on record, yet an explanation")
	}
}

// TestUpperQuantileAsSorting: upperQuantile is bit for bit quantileSorted
// of the sorted values, for lengths around where it selects instead of
// sorting, with ties, zeros, NaNs and values in and out of order.
func TestUpperQuantileAsSorting(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 9))
	gens := []func(i int) float64{
		func(int) float64 { return rng.ExpFloat64() },
		func(int) float64 { return float64(rng.IntN(4)) },
		func(i int) float64 { return float64(i) },
		func(i int) float64 { return -float64(i) },
		func(int) float64 {
			if rng.IntN(50) == 0 {
				return math.NaN()
			}
			return rng.NormFloat64()
		},
	}
	selected := 0
	for round := range 1500 {
		n := rng.IntN(3000)
		if round%50 == 0 {
			n = 20000
		}
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = gens[round%len(gens)](i)
		}
		sorted := slices.Clone(xs)
		slices.Sort(sorted)
		for _, q := range []float64{0.999, 0.99, 0.9} {
			got := upperQuantile(slices.Clone(xs), q)
			if want := quantileSorted(sorted, q); math.Float64bits(got) != math.Float64bits(want) {
				t.Fatalf("round %d (n %d): upperQuantile(%v) = %v, by sorting %v", round, n, q, got, want)
			}
			if n > 0 && n-int(q*float64(n-1)) < n/4 {
				selected++
			}
		}
	}
	if selected < 500 {
		t.Fatalf("only %d selections: the test checks too little", selected)
	}
}
