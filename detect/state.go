package detect

import (
	"bytes"
	"compress/flate"
	"encoding/gob"
	"fmt"
	"gonum.org/v1/gonum/stat/distuv"
	"math"
	"slices"
	"time"
)

// ringLen is how many recent active windows the robust baselines keep.
const ringLen = 64

// dayRingLen is how many recent days of totals an actor keeps.
const dayRingLen = 32

// dayTotal is one day's activity of an actor, in 12 bytes: the sums are
// f16 codes accumulated with stochastic rounding (unbiased), Subjects is
// set, not summed.
type dayTotal struct {
	Day      uint16 // days since the Unix epoch (UTC), until 2149
	Windows  uint16
	Records  uint16 // f16: the day's records
	Subjects uint16 // f16: the day's distinct customers
	// MultExcess sums (f16) the tenant multiplier less one over the
	// day's windows, so MultExcess/Windows+1 is the actor's mean
	// multiplier of the day (exact, 0, on ordinary days).
	MultExcess uint16
	// Light is the day's records with each window divided by the tenant
	// multiplier of that window (a promotion day counts as a normal day),
	// without the heavy windows (heavyThreshold): the actor's ordinary
	// work, which a slow drift raises; rare heavy calls make daily totals
	// too noisy to see a creep in. f16.
	Light uint16
}

// day returns the day number.
func (t dayTotal) day() int32 { return int32(t.Day) }

// records, subjects and light decode the day's sums.
func (t dayTotal) records() float64  { return f16Decode(t.Records) }
func (t dayTotal) subjects() float64 { return f16Decode(t.Subjects) }
func (t dayTotal) light() float64    { return f16Decode(t.Light) }

// mult returns the actor's mean tenant multiplier over the day (1 when
// unknown).
func (t dayTotal) mult() float64 {
	if t.Windows == 0 {
		return 1
	}
	return 1 + f16Decode(t.MultExcess)/float64(t.Windows)
}

// actorState is everything the window detectors remember about one actor.
// Exported fields are what a checkpoint saves.
type actorState struct {
	Type, Role, Vendor string
	FirstSeen          int64 // unix seconds of the first active window
	LastSeen           int64 // unix seconds of the latest active window
	ActiveWindows      uint32
	LastDay            int32
	ActiveDays         uint16

	Records  ring // records per active window
	Subjects ring // distinct customers per active window
	// SessGap and TodayWD: see the session fields and TodayN (here,
	// next to the rings, they fill what would be padding).
	SessGap int8
	TodayWD int8 // see TodayN
	// RecMax is the largest records per window seen, decaying slowly
	// (half-life about 1400 active windows).
	RecMax float32
	// ExportMax is the most exports the actor made in one window
	// (decaying like RecMax): export actions, not shares
	// (store.WindowActivity.ExportOnly). A checkpoint saved before the
	// store told them apart learned exports and shares together: an actor
	// that only shared counts as having exported until it decays.
	ExportMax float32
	// Roll holds the records (f16) of the latest rollLen windows by window
	// number (slot = window number mod rollLen), for the rolling span;
	// RollDen (allocated at the first denied access) their denied
	// accesses. RollLast is the latest window number held and RollMask
	// has bit i set when slot i holds the active window of
	// (RollLast-rollLen, RollLast] that falls on it; RollEver has bit i
	// set once slot i was written (its values stay until overwritten).
	// Span is the rolling span's value at each active window and SpanMax
	// its decaying maximum.
	Roll     [rollLen]uint16
	RollDen  *[rollLen]uint16
	RollLast uint32
	RollMask uint32
	RollEver uint32
	// HourSubj holds the distinct customers of each past active hour.
	HourSubj ring
	Span     ring
	SpanMax  float32
	// SpanMaxDay is today's largest span, folded into SpanMax when the day
	// ends, so that a ramp within the day does not raise its own bar.
	SpanMaxDay float32
	SpanDay    int32
	// SpanBlocks counts (decaying like SpanMax) the span-long blocks of
	// windows (window number / volume_span) the actor was active in: how
	// many nearly independent spans its largest span rests on. A sparse
	// actor (a few active minutes an hour) has about as many as active
	// windows; an always-active one WinN/volume_span. 0 in checkpoints
	// written before it (then WinN/volume_span stands in).
	SpanBlocks float32
	// Session: the current run of activity (gaps under 30 minutes).
	// SessDays is ActiveDays when the session started: the evidence
	// off_hours judges the session's start by. SessHourN is how many of
	// the actor's remembered active windows fell in the hour of the day
	// the session started in, before it started. WokeAt is when a dormant
	// actor woke (0: not dormant); WokeWins counts its windows since.
	// (Fields grouped by size: no padding between them.)
	SessStart int64
	WokeAt    int64
	MultAt    int64 // see MultObs
	SessWins  uint16
	SessDays  uint16
	SessHourN uint16
	WokeWins  uint16
	// DeniedMean is the mean denied accesses per active window (EWMA),
	// learning each window once it leaves the rolling ring.
	DeniedMean float32
	// MultObs and MultExp are time-decayed sums of the actor's observed
	// and expected records (per window decay multDecay, last updated at
	// window number MultAt): their ratio is the actor's recent activity
	// level, whose median over a tenant's actors is the tenant multiplier.
	MultObs, MultExp float32
	// MultAvg is the tenant multiplier averaged over the actor's recent
	// active windows (EWMA), to deflate its hourly distinct customers.
	MultAvg float32
	// HeavyN counts (decaying like RecMax) the active windows with at
	// least heavyThreshold records, and WinN all active windows: their
	// ratio is how often the actor makes a rare heavy call.
	HeavyN, WinN float32
	// HeavyFound has bit i set when slot i of HeavyLog holds a call made
	// in a window with a volume finding (volume_spike, peer_deviation):
	// an incident, left out of the role's heavy calls (peerStats.heavyLogs)
	// though the actor's own judgement counts it.
	HeavyFound uint64
	// HeavyLog holds the natural log of the records of the actor's
	// latest heavy windows, as they happened: the size distribution of
	// its rare heavy calls (nil until the first).
	HeavyLog *ring

	// How counts active windows per hour of the week (actor's time zone)
	// and sums their records (f16, accumulated with stochastic rounding).
	// Both halve when HowTot, the total of the counts, passes a cap, so
	// old weeks fade.
	How    howProfile
	HowTot uint32
	// TodayN and TodayRec are the current day's share of How's counts and records
	// (hours of the day of weekday TodayWD, UTC day TodayDay), so that the
	// tenant multiplier compares today with the days before it.
	TodayN   [24]uint16
	TodayRec [24]uint16 // f16, like How's records
	TodayDay int32

	Days [dayRingLen]dayTotal

	// Series is the count series of a continuous actor (seasonal_count;
	// nil for everyone else).
	Series *seriesState

	Stores, ResourceTypes, Categories, Countries []string
	LastCountry                                  string
	LastCountryAt                                int64

	// cached robust statistics of Records and Subjects
	recMed, recMAD, subjMed, subjMAD float64
	spanMed, spanMAD                 float64
	cacheAge                         uint8
	enumHourOn                       bool // the rolling-hour enumeration is firing (once per burst)
	// Incident is set by a volume finding (volume_spike, peer_deviation)
	// on the warm actor and cleared by the first window whose rolling
	// span is ordinary again (at most its largest span seen, or 3 times
	// its median span): the windows of one episode between those that
	// fired are not learned either (learnRow clips their records, learn
	// leaves their spans out), and the day's largest span drops the ramp
	// that led to the first finding, so an attack of a few hours does not
	// become the largest span the next one is judged by.
	Incident                  bool
	loc                       *time.Location
	lastOffHours, lastDormant int64 // session / wake-up already reported
	lastEnumDay, lastDriftDay int32
}

const howCap = 20000

// rollLen bounds the rolling span (windows).
const rollLen = 32

// maxDecay is the per-active-window decay of RecMax and SpanMax.
const maxDecay = 0.9995

// maxShift is the longest session whose windows count as one working day.
const maxShift = 16 * time.Hour

// spanEvery is how many active windows apart the span ring samples.
const spanEvery = 4

// multDecay is the per-window decay of MultObs and MultExp (half-life
// about 23 windows).
const multDecay = 0.97

// heavyThreshold is the records of a window that count as a heavy call
// for the actor: volume_min/2, or 10 times its median window when larger.
func (s *actorState) heavyThreshold(volumeMin float64) float64 {
	return math.Max(volumeMin/2, 10*math.Max(s.recMed, 1))
}

// multAvg is the actor's recent mean tenant multiplier (>= 1).
func (s *actorState) multAvg() float64 { return math.Max(1, float64(s.MultAvg)) }

// heavyExplains returns how probable a window of obs records is for an
// actor that makes rare heavy calls: the chance that a window is heavy
// (its own heavy rate, times the tenant multiplier) times the chance that
// a heavy call is at least this large, from a Student-t predictive
// distribution of its heavy calls' log sizes. The log-SD has a prior of
// ln 2 worth two calls (a call half or twice the usual size is
// unremarkable), so one or two calls on record are judged leniently and
// many by their own spread; calls over rules.bulk_records are the bulk
// rule's in any case. An actor with no heavy call on record is judged by
// peerLogs, its role's heavy calls (peerStats.heavyLogs; nil: none): its
// own rate says how often (half a call of prior over its windows), its
// peers how large. ok is false below the heavy threshold or with no heavy
// call on record, its own or its peers'.
func (s *actorState) heavyExplains(obs, mult, heavy float64, peerLogs []float64) (float64, bool) {
	const priorSD, priorN = math.Ln2, 2.0
	var logs []float64
	var own [ringLen]float64 // on the stack: no allocation per judged row
	if s.HeavyLog.count() > 0 {
		logs = s.HeavyLog.appendValues(own[:0])
	} else {
		logs = peerLogs
	}
	k := float64(len(logs))
	if obs < heavy || k < 1 {
		return 0, false
	}
	var sum, sq float64
	for _, v := range logs {
		sum += v
	}
	mean := sum / k
	for _, v := range logs {
		sq += (v - mean) * (v - mean)
	}
	df := k - 1 + priorN
	sd := math.Sqrt((sq+priorN*priorSD*priorSD)/df) * math.Sqrt(1+1/k)
	t := (math.Log(obs/math.Max(mult, 1)) - mean) / sd
	size := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Survival(t)
	return math.Min(1, s.heavyRate()*math.Max(mult, 1)) * size, true
}

// spans is how many nearly independent spans of span windows the actor's
// largest span (SpanMax) rests on: its active span-long blocks, else (a
// checkpoint from before they were counted) its active windows / span.
func (s *actorState) spans(span int) float64 {
	if s.SpanBlocks > 0 {
		return float64(s.SpanBlocks)
	}
	return float64(s.WinN) / float64(max(1, span))
}

// heavyRate is the share of the actor's active windows that were heavy,
// with half a window of prior so that a never-seen heavy call is rare, not
// impossible.
func (s *actorState) heavyRate() float64 {
	return (float64(s.HeavyN) + 0.5) / (float64(s.WinN) + 1)
}

// level is the actor's recent observed / expected records, ok when the
// expectation is large enough to be a stable ratio.
func (s *actorState) level() (float64, bool) {
	if s.MultExp < 10 {
		return 0, false
	}
	return float64(s.MultObs) / float64(s.MultExp), true
}

// rollWin returns the window number slot i of Roll stands for, and
// whether it holds an active window.
func (s *actorState) rollWin(i int) (int64, bool) {
	if s.RollMask&(1<<i) == 0 {
		return 0, false
	}
	last := int64(s.RollLast)
	return last - (last-int64(i))%rollLen, true
}

// rolling returns the records of the actor in the span windows ending with
// window number w (including it when already recorded).
func (s *actorState) rolling(w int64, span int) float64 {
	var sum float64
	for i := range s.Roll {
		if wn, ok := s.rollWin(i); ok && wn > w-int64(span) && wn <= w {
			sum += f16Decode(s.Roll[i])
		}
	}
	return sum
}

// heavyInSpan returns, over the span windows ending with window number w,
// how many held at least heavy records, their sum, the largest, and how
// many windows were active.
func (s *actorState) heavyInSpan(w int64, span int, heavy float64) (k int, sum, biggest float64, active int) {
	for i := range s.Roll {
		if wn, ok := s.rollWin(i); ok && wn > w-int64(span) && wn <= w {
			active++
			if v := f16Decode(s.Roll[i]); v >= heavy {
				k++
				sum += v
				biggest = math.Max(biggest, v)
			}
		}
	}
	return k, sum, biggest, active
}

// rollingDenied is rolling for denied accesses.
func (s *actorState) rollingDenied(w int64, span int) float64 {
	if s.RollDen == nil {
		return 0
	}
	var sum float64
	for i := range s.RollDen {
		if wn, ok := s.rollWin(i); ok && wn > w-int64(span) && wn <= w {
			sum += f16Decode(s.RollDen[i])
		}
	}
	return sum
}

// roll records window number wn's raw records and denied accesses in its
// slot, and returns the denied accesses the slot held before (ok when it
// had been written): the window that leaves the ring. Windows fall out of
// the span held as later ones arrive.
func (s *actorState) roll(wn int64, raw, denied float64) (left float64, ok bool) {
	last := int64(s.RollLast)
	held := true
	switch {
	case s.RollMask == 0 || wn >= last+rollLen:
		s.RollMask, s.RollLast = 0, uint32(wn)
	case wn > last:
		for x := last + 1; x <= wn; x++ {
			s.RollMask &^= 1 << (x % rollLen)
		}
		s.RollLast = uint32(wn)
	case wn <= last-rollLen: // older than the span held: stored, not held
		held = false
	}
	slot := int(wn % rollLen)
	if s.RollEver&(1<<slot) != 0 {
		ok = true
		if s.RollDen != nil {
			left = f16Decode(s.RollDen[slot])
		}
	}
	s.RollEver |= 1 << slot
	if held {
		s.RollMask |= 1 << slot
	}
	s.Roll[slot] = f16Encode(raw)
	if denied > 0 && s.RollDen == nil {
		s.RollDen = new([rollLen]uint16)
	}
	if s.RollDen != nil {
		s.RollDen[slot] = f16Encode(denied)
	}
	return left, ok
}

// hourGap returns how many hours hour-of-day h is from the nearest hour of
// the day holding at least share of the actor's activity (-1 when none).
func (s *actorState) hourGap(h int, share float64) int {
	if s.HowTot == 0 {
		return -1
	}
	return nearestUsualHour(h, share, func(u int) float64 {
		var c float64
		for d := 0; d < 7; d++ {
			c += s.How.count(d*24 + u)
		}
		return c / float64(s.HowTot)
	})
}

// nearestUsualHour returns how many hours (around the clock) hour of the
// day h is from the nearest hour u whose share(u) reaches least, or -1
// when no hour is.
func nearestUsualHour(h int, least float64, share func(u int) float64) int {
	best := -1
	for u := 0; u < 24; u++ {
		if share(u) < least {
			continue
		}
		g := h - u
		if g < 0 {
			g = -g
		}
		g = min(g, 24-g)
		if best < 0 || g < best {
			best = g
		}
	}
	return best
}

// hourCount is the actor's remembered active windows in hour-of-day h
// (every day of the week).
func (s *actorState) hourCount(h int) int {
	c := 0
	for d := 0; d < 7; d++ {
		c += int(s.How.count(d*24 + h))
	}
	return c
}

// hourOfWeek returns 0..167, Monday 00:00 = 0.
func hourOfWeek(t time.Time) int {
	wd := (int(t.Weekday()) + 6) % 7
	return wd*24 + t.Hour()
}

// stats refreshes the cached medians and MADs when stale.
func (s *actorState) stats(scratch []float64) []float64 {
	if s.cacheAge > 0 && s.cacheAge < 8 {
		return scratch
	}
	s.recMed, s.recMAD, scratch = s.Records.medianMAD(scratch)
	s.subjMed, s.subjMAD, scratch = s.Subjects.medianMAD(scratch)
	s.spanMed, s.spanMAD, scratch = s.Span.medianMAD(scratch)
	s.cacheAge = 1
	return scratch
}

// seasonal returns the expected records of an active window at hour of
// week h: the mean at h and its neighbours (tolerating a daylight-saving
// shift), else the same hours of every day, else the robust median; and how
// many windows it rests on.
func (s *actorState) seasonal(h int) (mu float64, n float64, source string) {
	return s.seasonalFrom(h, false)
}

// seasonalFrom is seasonal, leaving out the current day's windows when
// past is set: the reference of the tenant multiplier, which must not learn
// a promotion while it happens.
func (s *actorState) seasonalFrom(h int, past bool) (mu float64, n float64, source string) {
	bin := func(k int) (float64, float64) {
		c, r := s.How.get(k)
		if past && int8(k/24) == s.TodayWD && s.TodayDay != 0 {
			c = math.Max(0, c-float64(s.TodayN[k%24]))
			r = math.Max(0, r-f16Decode(s.TodayRec[k%24]))
		}
		return c, r
	}
	var c, r float64
	for d := -1; d <= 1; d++ {
		bc, br := bin((h + d + 168) % 168)
		c, r = c+bc, r+br
	}
	if c >= 8 {
		return r / c, c, "actor hour-of-week"
	}
	c, r = 0, 0
	hod := h % 24
	for day := 0; day < 7; day++ {
		for d := -1; d <= 1; d++ {
			bc, br := bin((day*24 + hod + d + 168) % 168)
			c, r = c+bc, r+br
		}
	}
	if c >= 8 {
		return r / c, c, "actor hour-of-day"
	}
	return s.recMed, float64(s.Records.N), "actor median"
}

// share returns the smoothed share of the actor's activity at hour of week
// h (neighbours count half: daylight-saving shifts move work by an hour).
func (s *actorState) share(h int) float64 {
	if s.HowTot == 0 {
		return 0
	}
	c := s.How.count(h) + 0.5*s.How.count((h+167)%168) + 0.5*s.How.count((h+1)%168)
	return c / (2 * float64(s.HowTot))
}

// day returns the totals slot of day d, resetting it when it held an
// older day.
func (s *actorState) day(d int32) *dayTotal {
	t := &s.Days[int(d)%dayRingLen]
	if t.day() != d {
		*t = dayTotal{Day: uint16(d)}
	}
	return t
}

// recentDays returns the totals of the active days in (from, to] (day
// numbers), oldest first.
func (s *actorState) recentDays(from, to int32) []dayTotal {
	var out []dayTotal
	for d := from + 1; d <= to; d++ {
		t := s.Days[int(d)%dayRingLen]
		if t.day() == d && t.Windows > 0 {
			out = append(out, t)
		}
	}
	return out
}

// learn folds one active window into the state. rec and subj are the
// values to learn (clipped by the caller after a finding); h is the
// window's hour of the week, or -1 to leave the window out of the
// hour-of-week profile (How, TodayN: a session off_hours reported).
func (s *actorState) learn(start time.Time, h int, winSec int64, span int, rec, subj, denied, mult, heavy float64, w *windowRow) {
	raw := float64(w.Records) // rolling sums keep what happened; baselines learn rec
	ts := start.Unix()
	if s.FirstSeen == 0 {
		s.FirstSeen = ts
	}
	s.LastSeen = ts
	s.ActiveWindows++
	d := int32(ts / 86400)
	if d != s.LastDay {
		s.ActiveDays++
		s.LastDay = d
	}
	mult = math.Max(mult, 1)
	nrec := rec / mult // net of the tenant multiplier
	s.Records.add(rec)
	// the seed of the stochastic rounding of this window's sums
	seed := uint64(s.ActiveWindows) << 8
	s.Subjects.add(subj)
	s.RecMax = max(s.RecMax*maxDecay, float32(rec))
	s.ExportMax = max(s.ExportMax*maxDecay, float32(w.ExportOnly))
	wn := start.Unix() / winSec
	// The denied mean learns a window only when it leaves the rolling
	// ring (rollLen >= any span): a burst's own windows never raise the
	// expectation it is judged against (learned at once, a 10-minute
	// burst of 2-5 refusals a minute lifted the EWMA faster than 5x its
	// own rolling count could outgrow it).
	s.SpanBlocks *= maxDecay
	if s.RollMask == 0 || int64(s.RollLast)/int64(span) != wn/int64(span) {
		s.SpanBlocks++ // the first active window of its span-long block
	}
	if left, ok := s.roll(wn, raw, denied); ok {
		s.DeniedMean = 0.98*s.DeniedMean + 0.02*float32(left)
	}
	sp := s.rolling(wn, span)
	// A finding's window, or a window of the episode a volume finding
	// opened (Incident), teaches the span baselines nothing: the attack
	// is not the actor's habit. (Clipped to 3 times the median instead,
	// the samples of an attack of hours ratcheted the median up.)
	learnSpan := rec >= raw && !s.Incident
	// The span ring takes every spanEvery-th active window: consecutive
	// spans overlap, so this covers a longer history with less
	// autocorrelation, and an attack of an hour barely moves its median.
	if learnSpan && s.ActiveWindows%spanEvery == 0 {
		s.Span.add(sp)
	}
	if d != s.SpanDay {
		s.SpanMax, s.SpanMaxDay, s.SpanDay = max(s.SpanMax, s.SpanMaxDay), 0, d
	}
	s.SpanMax *= maxDecay
	if learnSpan {
		s.SpanMaxDay = max(s.SpanMaxDay, float32(sp))
	}
	s.cacheAge++
	if h >= 0 {
		s.How.add(h, rec, uniform(seed|1))
		if wd := int8(h / 24); wd != s.TodayWD || d != s.TodayDay {
			s.TodayWD, s.TodayDay, s.TodayN, s.TodayRec = wd, d, [24]uint16{}, [24]uint16{}
		}
		s.TodayN[h%24]++
		s.TodayRec[h%24] = f16Add(s.TodayRec[h%24], rec, uniform(seed|2))
		s.HowTot++
		if s.HowTot > howCap {
			s.TodayN, s.TodayRec = [24]uint16{}, [24]uint16{}
			s.HowTot = s.How.halve()
		}
	}
	// Day totals go to the day the session started (UTC): a shift that
	// runs past midnight UTC stays one working day, not a long day and a
	// stub. Round-the-clock actors (bots, sessions over maxShift) count by
	// the window's day.
	sd := d
	if s.SessStart > 0 && ts-s.SessStart < int64(maxShift/time.Second) {
		sd = int32(s.SessStart / 86400)
	}
	t := s.day(sd)
	t.Records = f16Add(t.Records, rec, uniform(seed|3))
	if mult > 1 {
		t.MultExcess = f16Add(t.MultExcess, mult-1, uniform(seed|4))
	}
	t.Windows++
	if s.MultAvg == 0 {
		s.MultAvg = 1
	}
	s.MultAvg = 0.9*s.MultAvg + 0.1*float32(mult)
	s.WinN = s.WinN*maxDecay + 1
	s.HeavyN *= maxDecay
	if raw >= heavy {
		// counted and sized as it happened, like HeavyN: a warm actor
		// whose first heavy calls were findings would otherwise never
		// learn its habit (the finding was raised; the next call of that
		// size is its habit, not news)
		s.HeavyN++
		if s.HeavyLog == nil {
			s.HeavyLog = &ring{}
		}
		s.HeavyLog.add(math.Log(raw))
	} else {
		t.Light = f16Add(t.Light, nrec, uniform(seed|5))
	}
	s.Stores = mergeSet(s.Stores, w.Stores)
	s.ResourceTypes = mergeSet(s.ResourceTypes, w.ResourceTypes)
	s.Categories = mergeSet(s.Categories, w.Categories)
	s.Countries = mergeSet(s.Countries, w.Countries)
	if len(w.Countries) > 0 {
		c := w.Countries[len(w.Countries)-1]
		if slices.Contains(w.Countries, s.LastCountry) && len(w.Countries) > 1 {
			// keep the previous country last only if it is the only one
			for _, x := range w.Countries {
				if x != s.LastCountry {
					c = x
				}
			}
		}
		s.LastCountry, s.LastCountryAt = c, ts
	}
}

// flaggedItem is an item (store, resource type, category, country) an
// actor first used in a window with a first_seen or new_country finding
// (Engine.flagged): its peers' shares leave it out until the actor has
// used it on flagDays later days. An attack's store is not what the role
// does: counted, each attack on a peer made the next one's store
// "common" and its first_seen score fell below first_seen_score. Day is
// the UTC day of the finding, LastDay the latest day of use, Days the
// later days it was used on.
type flaggedItem struct {
	Item         string
	Day, LastDay int32
	Days         uint8
}

// flagDays is how many later days of use make a flagged item the actor's
// routine (counted in its peers' shares again): the warm-up's default
// days.
const flagDays = 3

// flagItems adds items, learned during a finding on day d, to fl.
func flagItems(fl []flaggedItem, d int32, items []string) []flaggedItem {
	for _, it := range items {
		if !isFlagged(fl, it) {
			fl = append(fl, flaggedItem{Item: it, Day: d, LastDay: d})
		}
	}
	return fl
}

// isFlagged reports whether item is in fl.
func isFlagged(fl []flaggedItem, item string) bool {
	return slices.ContainsFunc(fl, func(f flaggedItem) bool { return f.Item == item })
}

// flaggedBefore reports whether item is in fl and was last used before
// day d (its first use on day d is a later day's).
func flaggedBefore(fl []flaggedItem, item string, d int32) bool {
	return slices.ContainsFunc(fl, func(f flaggedItem) bool { return f.Item == item && d > f.LastDay })
}

// useFlagged counts the window's use (day d) of the flagged items and
// drops those used on flagDays later days.
func useFlagged(fl []flaggedItem, d int32, w *windowRow) []flaggedItem {
	use := func(it string) {
		for i := range fl {
			if f := &fl[i]; f.Item == it && d > f.LastDay {
				f.LastDay = d
				f.Days++
			}
		}
	}
	for _, set := range [][]string{w.Stores, w.ResourceTypes, w.Categories, w.Countries} {
		for _, it := range set {
			use(it)
		}
	}
	if w.ExportOnly > 0 {
		use(itemExport)
	}
	return slices.DeleteFunc(fl, func(f flaggedItem) bool { return f.Days >= flagDays })
}

func mergeSet(set, add []string) []string {
	for _, a := range add {
		if !slices.Contains(set, a) {
			set = append(set, a)
		}
	}
	return set
}

// Checkpoint encoding: a format number, then the flate-compressed gob of
// the snapshot. Format 2: the compact state (f16 values, sparse profile,
// rolling mask); a format-1 checkpoint is rebuilt from ClickHouse.
const checkpointFormat = 2

type snapshot struct {
	AsOf   int64
	Next   int64
	Actors map[actorKey]*actorState
	Risk   map[actorKey]*riskState
	// Dests and TenantSeen are the destination detectors' state (absent
	// from checkpoints written before them: they start empty).
	Dests      map[destKey]*destState
	TenantSeen map[string]int64
	// Flagged is each actor's items learned during a finding (absent
	// from checkpoints written before it: none flagged).
	Flagged map[actorKey][]flaggedItem
	// GroupSeen is when each peer group of a tenant was first seen
	// (absent from checkpoints written before it: seeded from the
	// actors' first windows).
	GroupSeen map[groupKey]int64
	// Travel is each actor's latest impossible_travel incident (absent
	// from checkpoints written before it: none).
	Travel map[actorKey]travelMark
}

func encodeSnapshot(s *snapshot) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := flate.NewWriter(&buf, flate.BestSpeed)
	if err != nil {
		return nil, err
	}
	if err := gob.NewEncoder(zw).Encode(s); err != nil {
		return nil, fmt.Errorf("encoding detection state: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func decodeSnapshot(b []byte) (*snapshot, error) {
	var s snapshot
	if err := gob.NewDecoder(flate.NewReader(bytes.NewReader(b))).Decode(&s); err != nil {
		return nil, fmt.Errorf("decoding detection state: %w", err)
	}
	for _, a := range s.Actors {
		a.cacheAge = 0
	}
	return &s, nil
}

// clip bounds a value learned after a finding so that an attack does not
// poison the baseline: at most 3 times the expected value (plus one).
func clip(x, expected float64) float64 {
	return math.Min(x, 3*expected+1)
}

// busyDay returns the 90th percentile of the actor's daily distinct
// customers over the days it holds (ok false with fewer than 3 days).
func (s *actorState) busyDay(exclude int32) (float64, bool) {
	var xs []float64
	for _, d := range s.Days {
		if d.Windows > 0 && d.Subjects > 0 && d.day() != exclude {
			xs = append(xs, d.subjects()/d.mult()) // net of tenant-wide swings
		}
	}
	if len(xs) < 3 {
		return 0, false
	}
	slices.Sort(xs)
	return quantileSorted(xs, 0.9), true
}

// busyHour returns the 90th percentile of the actor's hourly distinct
// customers.
func (s *actorState) busyHour() float64 {
	return s.HourSubj.quantile(0.9)
}
