package detect

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/mat"
)

// check asserts want and wantNone on the findings got ("*" in wantNone:
// nothing at all).
func check(t *testing.T, got, want, wantNone []string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("want %q among findings, got %v", w, got)
		}
	}
	for _, n := range wantNone {
		for _, g := range got {
			if n == "*" || g == n || strings.HasPrefix(g, n+" ") {
				t.Errorf("unexpected finding %q (must not fire: %s)", g, n)
			}
		}
	}
}

// crew writes records and subjects lines for n support agents c1..cn
// working the same days, so that the multivariate reservoir fills.
func crew(n int, recDays, subjDays string) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "actor=c%d role=support records: %s\n", i, recDays)
		fmt.Fprintf(&b, "actor=c%d role=support subjects: %s\n", i, subjDays)
	}
	return b.String()
}

// crewExportedOnce writes exports lines for c1..c<n>: one export at
// 09:10 on the first day (in a new member's first windows, before
// first_seen judges it against its peers).
func crewExportedOnce(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "actor=c%d role=support exports: %s\n", i, workday("0*10 1 0*469"))
	}
	return b.String()
}

func TestMahalanobisFixtures(t *testing.T) {
	// The reservoir needs 2000 warm deviation vectors and has to have seen
	// 5x its size: eight days of a crew of seven with a reservoir of 2000.
	cfg := Config{Detectors: DetectorsConfig{MahalanobisSamples: 2000}}
	subj := "(1 2 1 1 2 1)*80"
	eight := days(8, workday(normal))
	eightSubj := days(8, workday(subj))
	lastDay := monday.Add(8 * 24 * time.Hour)
	tests := []struct {
		name     string
		fixture  string
		want     []string
		wantNone []string
	}{
		{
			// six times its records, seven times its customers, four
			// denied reads and two exports in one window: each below its
			// own detector's bar (a combination carried by the records and
			// customers, not by one denied read in a reservoir that never
			// saw one: featureVarFloor). The crew exported once on its
			// first day: a1's first export is its role's habit, not a
			// first_seen
			name: "a combination no single detector sees",
			fixture: crew(6, eight+" "+workday(normal), eightSubj+" "+workday(subj)) + crewExportedOnce(6) +
				"actor=a1 role=support records: " + eight + " " + workday("(4 6 5 7 5 3)*40 30 (4 6 5 7 5 3)*39 4 6 5 7 5") + "\n" +
				"actor=a1 role=support subjects: " + eightSubj + " " + workday("(1 2 1 1 2 1)*40 10 (1 2 1 1 2 1)*39 1 2 1 1 2") + "\n" +
				"actor=a1 role=support denied: " + days(8, workday("0*480")) + " " + workday("0*240 4 0*239") + "\n" +
				"actor=a1 role=support exports: " + days(8, workday("0*480")) + " " + workday("0*240 2 0*239") + "\n",
			want:     []string{"mahalanobis a1"},
			wantNone: []string{"volume_spike", "enumeration", "denied_burst", "peer_deviation", "first_seen"},
		},
		{
			// one refused read in an otherwise ordinary window, in a
			// reservoir that never saw a denied access
			name: "hard negative: a single denied access",
			fixture: crew(6, eight+" "+workday(normal), eightSubj+" "+workday(subj)) +
				"actor=a1 role=support records: " + eight + " " + workday(normal) + "\n" +
				"actor=a1 role=support subjects: " + eightSubj + " " + workday(subj) + "\n" +
				"actor=a1 role=support denied: " + days(8, workday("0*480")) + " " + workday("0*240 1 0*239") + "\n",
			wantNone: []string{"*"},
		},
		{
			// a marketer's segment pull of its usual size: its records
			// are one of its own heavy calls, not a deviation
			name: "hard negative: a marketer's usual segment pull",
			fixture: crew(6, eight+" "+workday(normal), eightSubj+" "+workday(subj)) +
				"actor=m1 role=marketing records: " + days(8, workday("1*100 280 1*150 320 1*228")) + " " + workday("1*200 350 1*279") + "\n",
			wantNone: []string{"mahalanobis m1", "volume_spike m1"},
		},
		{
			name:     "hard negative: ordinary day-to-day variation",
			fixture:  crew(6, eight+" "+workday(double), eightSubj+" "+workday("(2 3 2 2 3 2)*80")),
			wantNone: []string{"mahalanobis"},
		},
		{
			// a job that exports every night is not an outlier for
			// exporting: exports count above the actor's own most (the
			// export window is page-sized here; a final export much larger
			// than the pages is a records outlier, see docs/detectors.md)
			name: "hard negative: a nightly export by an account that always exports",
			fixture: crew(6, eight+" "+workday(normal), eightSubj+" "+workday(subj)) +
				"actor=j1 type=service role=etl records: (-*120 (50 40 60)*20 55 -*1259)*9\n" +
				"actor=j1 type=service role=etl exports: (-*120 (0 0 0)*20 1 -*1259)*9\n",
			wantNone: []string{"mahalanobis j1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			check(t, firingAfter(t, cfg, monday, lastDay, tc.fixture), tc.want, tc.wantNone)
		})
	}
}

func TestPeerDeviationFixtures(t *testing.T) {
	four := days(4, workday(normal))
	tests := []struct {
		name     string
		fixture  string
		from     time.Time
		want     []string
		wantNone []string
	}{
		{
			name: "a new account far above its role's peers in the same windows",
			fixture: team(four+" "+workday(normal), four+" "+workday(normal)) +
				"actor=h1 role=support records: " + days(4, "-*1440") + " " + workday("(5*100 (300 280 320)*5 5*365)") + "\n",
			want: []string{"peer_deviation h1"},
		},
		{
			name:    "a warm agent jumping far above its peers",
			fixture: team(four+" "+workday(normal), four+" "+workday("(5*200 400 5*279)")),
			want:    []string{"peer_deviation a1"},
		},
		{
			// always at 30x its peers: judged against its own level once warm
			name:     "hard negative: a heavy hitter that always works far above its peers",
			fixture:  team(days(5, workday(normal)), days(5, workday("(150 140 160)*160"))),
			from:     monday.Add(4 * 24 * time.Hour),
			wantNone: []string{"peer_deviation"},
		},
		{
			name:     "hard negative: too few peers active to compare with",
			fixture:  "actor=a1 role=support records: " + four + " " + workday("(5*200 400 5*279)") + "\nactor=p1 role=support records: " + days(5, workday(normal)) + "\n",
			wantNone: []string{"peer_deviation"},
		},
		{
			name:     "hard negative: promotion day doubles the whole role",
			fixture:  team(four+" "+workday(double), four+" "+workday(double)),
			wantNone: []string{"peer_deviation"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			check(t, firingAfter(t, Config{}, monday, tc.from, tc.fixture), tc.want, tc.wantNone)
		})
	}
}

// distance2ByGonum is mahalanobis.distance2 as it was: the difference
// solved by gonum's Cholesky.SolveVecTo. The reference solve must match
// bit for bit.
func distance2ByGonum(m *mahalanobis, v [mahalanobisDims]float64) (d2 float64, contrib [mahalanobisDims]float64, ok bool) {
	if m.chol == nil || m.seen < 5*cap(m.samples) {
		return 0, contrib, false
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

// TestMahalanobisSolveAsGonum: the squared distances and contributions of
// the hand-written solve are bit for bit gonum's, on reservoirs of
// correlated, heavy-tailed and nearly constant features (the variance
// floors at work), and on vectors inside and far outside them.
func TestMahalanobisSolveAsGonum(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	checked := 0
	for round := range 6 {
		m := newMahalanobis(2000)
		for range 5 * 2000 {
			var v [mahalanobisDims]float64
			z := rng.NormFloat64()
			v[0] = z + 0.3*rng.NormFloat64()
			v[1] = 0.8*z + math.Exp(rng.NormFloat64())*float64(round%3)
			if rng.IntN(50) == 0 {
				v[2] = math.Log1p(float64(rng.IntN(20)))
			}
			v[3] = float64(rng.IntN(1 + round))
			if round%2 == 0 {
				v[4] = float64(rng.IntN(3))
			}
			v[5] = math.Max(0, rng.NormFloat64()*float64(round))
			m.add(v)
		}
		m.refit()
		if m.chol == nil {
			t.Fatalf("round %d: no fit", round)
		}
		for range 3000 {
			var v [mahalanobisDims]float64
			for i := range v {
				v[i] = rng.NormFloat64() * math.Exp(3*rng.Float64())
			}
			d2, contrib, ok := m.distance2(v)
			wd2, wcontrib, wok := distance2ByGonum(m, v)
			if ok != wok || math.Float64bits(d2) != math.Float64bits(wd2) {
				t.Fatalf("round %d, v %v: distance2 %v (%v), gonum %v (%v)", round, v, d2, ok, wd2, wok)
			}
			for i := range contrib {
				if math.Float64bits(contrib[i]) != math.Float64bits(wcontrib[i]) {
					t.Fatalf("round %d, v %v: contribution %d %v, gonum %v", round, v, i, contrib[i], wcontrib[i])
				}
			}
			checked++
		}
		empirical := m.empirical
		m.empirical = 0
		var d2s []float64
		seen := m.seen
		m.seen = max(m.seen, 5*cap(m.samples))
		for _, s := range m.samples {
			if d2, _, ok := distance2ByGonum(m, s); ok {
				d2s = append(d2s, d2)
			}
		}
		m.seen = seen
		slices.Sort(d2s)
		if want := quantileSorted(d2s, 0.999); math.Float64bits(empirical) != math.Float64bits(want) {
			t.Fatalf("round %d: empirical q999 %v, by gonum %v", round, empirical, want)
		}
	}
	if checked == 0 {
		t.Fatal("nothing checked")
	}
}
