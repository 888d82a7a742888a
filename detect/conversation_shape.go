package detect

import (
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// conversation_shape (event tier): a hijacked assistant (prompt injection)
// shows up as a conversation whose shape its bot never produces: tool calls
// in an unusual order, data categories the topic never needs, far more
// records or customers than the bot's conversations touch.
//
// Per (tenant, bot) the detector learns a first-order Markov chain over
// call tokens (tool, store, action, sorted categories). A step's
// probability is a mixture of
//
//   - the long-run chain P(tok | prev) = (c[prev,tok] + a q(tok)) /
//     (c[prev] + a), Dirichlet-smoothed towards the bot's unigram q, itself
//     smoothed towards "a token never seen" (a Chinese-restaurant prior:
//     q(tok) = (u[tok] + g/(V+1)) / (U + g));
//   - the bot's recent calls (counts decaying with RecentHalfLife, the
//     conversation's own calls left out): a tool rolled out to every
//     conversation is new to the chain but common among the calls of the
//     last minutes, so it is ordinary once other conversations use it.
//
// Count features are folded into each step's surprise: the step's records
// against the token's own distribution of records (P(X >= r), log2 buckets
// plus a Pareto prior above the median), and reading a customer the
// conversation had not touched against the bot's rate of such switches.
// A conversation's score is its negative log-likelihood per step (mean
// surprise) and its most improbable step; each is calibrated as a tail
// probability on the bot's own history of conversations (peaks over the
// 95th percentile fitted by an exponential, the empirical tail below), the
// two combined by Bonferroni. A conversation is scored incrementally at
// each call; one that crosses TailProb is held for Hold and judged again
// with the counts of then (the conversations that followed it included),
// which is what keeps a rollout quiet and a one-off call loud.
//
// Day 0: a bot is not judged until MinConversations of its conversations
// have closed (idle for Idle) and been learned: the first half teaches the
// chain, the scores of the second half start the calibration (a score
// under a model that has seen almost nothing would be an outlier for as
// long as it stayed in the history). Until then only the conversation
// rules (bot_cross_customer, conversation_subjects) watch it.
// A conversation that fired is not learned.

// ConversationsConfig configures conversation_shape (detect.conversations).
type ConversationsConfig struct {
	// TailProb: a conversation fires when its shape is this improbable
	// under its bot's history (default 1e-6: a bot holding 1,000
	// conversations a day then raises a false alert about once in three
	// years of a calibrated model).
	TailProb float64 `yaml:"tail_prob"`
	// MinConversations is how many closed conversations a bot needs before
	// its conversations are judged (default 300).
	MinConversations int `yaml:"min_conversations"`
	// History is how many of its latest conversations' scores calibrate a
	// bot (default 3000).
	History int `yaml:"history"`
	// Hold is how long a conversation that crossed TailProb waits before it
	// is judged again and fires (default 15m).
	Hold time.Duration `yaml:"hold"`
	// Idle closes a conversation after this long without a call; a closed
	// conversation is learned (default 30m; more than Hold).
	Idle time.Duration `yaml:"idle"`
	// RecentHalfLife is the half-life of the recent calls' counts (default 30m).
	RecentHalfLife time.Duration `yaml:"recent_half_life"`
	// MaxSteps bounds the calls kept per conversation for re-scoring and
	// evidence (default 200; later calls still count in the running score).
	MaxSteps int `yaml:"max_steps"`
	// MaxBots bounds the bots modelled (default 10000); MaxOpen the open
	// conversations per bot (default 5000); MaxTokens the distinct call
	// tokens per bot (default 512, later ones share one "other" token).
	MaxBots   int `yaml:"max_bots"`
	MaxOpen   int `yaml:"max_open"`
	MaxTokens int `yaml:"max_tokens"`
}

func (c ConversationsConfig) withDefaults() ConversationsConfig {
	defInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	if c.TailProb == 0 {
		c.TailProb = 1e-6
	}
	defInt(&c.MinConversations, 300)
	defInt(&c.History, 3000)
	if c.Hold == 0 {
		c.Hold = 15 * time.Minute
	}
	if c.Idle == 0 {
		c.Idle = 30 * time.Minute
	}
	if c.RecentHalfLife == 0 {
		c.RecentHalfLife = 30 * time.Minute
	}
	defInt(&c.MaxSteps, 200)
	defInt(&c.MaxBots, 10000)
	defInt(&c.MaxOpen, 5000)
	defInt(&c.MaxTokens, 512)
	return c
}

// validate names every bad field (after defaults).
func (c ConversationsConfig) validate() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("detect.conversations.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.TailProb <= 0 || c.TailProb >= 1 {
		bad("tail_prob", "%g: want a probability in (0, 1)", c.TailProb)
	}
	if c.MinConversations < 20 {
		bad("min_conversations", "%d: want >= 20 (a tail needs conversations)", c.MinConversations)
	}
	if c.History < c.MinConversations || c.History > 100000 {
		bad("history", "%d: want min_conversations (%d) to 100000", c.History, c.MinConversations)
	}
	if c.Hold < 0 || c.Hold > 24*time.Hour {
		bad("hold", "%s: want 0 to 24h", c.Hold)
	}
	if c.Idle <= c.Hold || c.Idle > 7*24*time.Hour {
		bad("idle", "%s: want more than hold (%s), at most 168h", c.Idle, c.Hold)
	}
	if c.RecentHalfLife < time.Minute || c.RecentHalfLife > 7*24*time.Hour {
		bad("recent_half_life", "%s: want 1m to 168h", c.RecentHalfLife)
	}
	if c.MaxSteps < 2 || c.MaxSteps > 10000 {
		bad("max_steps", "%d: want 2 to 10000", c.MaxSteps)
	}
	if c.MaxBots < 1 || c.MaxOpen < 1 {
		bad("max_bots", "max_bots %d, max_open %d: want >= 1", c.MaxBots, c.MaxOpen)
	}
	if c.MaxTokens < 2 || c.MaxTokens > 65536 {
		bad("max_tokens", "%d: want 2 to 65536", c.MaxTokens)
	}
	return errs
}

// Smoothing constants of the chain (pseudo-counts): a towards the unigram,
// g towards a token never seen, b of the recent counts; lambda weighs the
// long-run chain against the recent calls.
const (
	shapeAlpha  = 1.0
	shapeGamma  = 1.0
	shapeBeta   = 1.0
	shapeLambda = 0.5
	// shapeCountCap halves a bot's long-run counts when its steps learned
	// reach it: bounded numbers, and old habits fade.
	shapeCountCap = 50000
	// shapeMaxTrans bounds the transitions counted per bot.
	shapeMaxTrans = 16384
	// shapeRecBuckets are log2 buckets of records per call.
	shapeRecBuckets = 65
	// shapeMarkProb: a step is marked improbable when a conversation whose
	// worst step were it would be rarer than this on the bot's history.
	shapeMarkProb = 1e-3
	// shapeStart is the token before a conversation's first call.
	shapeStart int32 = 0
)

// botShape is one bot's model.
type botShape struct {
	tokens map[string]int32 // token -> id (0 is the start)
	names  []string         // id -> token
	other  int32            // id shared by tokens beyond MaxTokens (0: none yet)

	trans    map[[2]int32]float64
	from     []float64 // per prev: total transitions out
	uni      []float64 // per token: steps
	uniTotal float64
	recs     [][shapeRecBuckets]float64 // per token: records per call, log2 buckets
	allRecs  [shapeRecBuckets]float64
	// recStat and allStat cache the total and median bucket of recs[tok]
	// and allRecs, which recTail reads at every step and which change only
	// when a conversation is learned (learn and halve clear them)
	recStat  []recStat
	allStat  recStat
	switches float64 // steps that read a customer new to the conversation
	steps    float64 // steps learned

	recent      []float64 // per token: decayed recent steps
	recentTotal float64
	recentAt    time.Time

	means, maxes scoreHistory // the scores of its latest conversations
	learned      int          // conversations learned
	open         int
	last         time.Time
}

// recStat is the total and median bucket of one records histogram, as
// sum and medianBucket compute them; ok false: not computed since it last
// changed.
type recStat struct {
	n, med float64
	ok     bool
}

// of returns st, first computing it from h when not cached.
func (st *recStat) of(h *[shapeRecBuckets]float64) *recStat {
	if !st.ok {
		*st = recStat{n: sum(h[:]), med: medianBucket(h), ok: true}
	}
	return st
}

// shapeStep is one call of a conversation.
type shapeStep struct {
	ts       time.Time
	tok      int32
	records  uint64
	switched bool
	id       string
	surprise float64
}

// convShape is one open conversation.
type convShape struct {
	bot       *botShape
	actor     models.Actor
	subject   string
	subjects  []string
	steps     []shapeStep
	n         int
	sum, max  float64
	records   uint64
	prev      int32
	first     time.Time
	last      time.Time
	own       []ownCount // own decayed recent steps, left out of the recent counts (nil: no step yet)
	ownTotal  float64
	ownAt     time.Time
	flaggedAt time.Time
	fired     bool
}

// ownCount is a conversation's decayed recent steps of one token (a
// conversation holds few tokens: a slice searched in order is cheaper
// than a map).
type ownCount struct {
	tok int32
	n   float64
}

// ownOf is c's decayed recent steps of tok.
func (c *convShape) ownOf(tok int32) float64 {
	for i := range c.own {
		if c.own[i].tok == tok {
			return c.own[i].n
		}
	}
	return 0
}

// addOwn counts one more recent step of tok.
func (c *convShape) addOwn(tok int32) {
	for i := range c.own {
		if c.own[i].tok == tok {
			c.own[i].n++
			return
		}
	}
	c.own = append(c.own, ownCount{tok: tok, n: 1})
}

type botKey struct{ tenant, actor string }

// shapes is conversation_shape's state, held by Rules (under its lock).
type shapes struct {
	cfg       ConversationsConfig
	evictBots time.Duration // forget a bot idle this long (detect.evict_idle_after)
	bots      map[botKey]*botShape
	convs     map[convKey]*convShape
	flagged   []convKey
	lastSweep time.Time
	// cleared counts the conversations that crossed TailProb and were
	// ordinary when judged again after the hold.
	cleared int
	// scratch of observe: the call's token and its sorted categories
	tokBuf  []byte
	tokCats []string
}

func newShapes(cfg ConversationsConfig, evictBots time.Duration) *shapes {
	return &shapes{cfg: cfg, evictBots: evictBots, bots: map[botKey]*botShape{}, convs: map[convKey]*convShape{}}
}

func newBotShape() *botShape {
	b := &botShape{tokens: map[string]int32{"(start)": 0}, names: []string{"(start)"}, trans: map[[2]int32]float64{}}
	b.grow()
	return b
}

// grow extends the per-token slices to the vocabulary.
func (b *botShape) grow() {
	for len(b.from) < len(b.names) {
		b.from = append(b.from, 0)
		b.uni = append(b.uni, 0)
		b.recs = append(b.recs, [shapeRecBuckets]float64{})
		b.recStat = append(b.recStat, recStat{})
		b.recent = append(b.recent, 0)
	}
}

// appendShapeToken appends the token naming e's call to buf: tool, store,
// action and its sorted categories ("tool store action [a,b]"). It sorts
// the categories in cats (a scratch slice) and returns the extended buf
// and cats.
func appendShapeToken(buf []byte, cats []string, e *models.Event) ([]byte, []string) {
	cats = append(cats[:0], e.Fields...)
	slices.Sort(cats)
	cats = slices.Compact(cats)
	buf = append(buf, e.Tool...)
	buf = append(buf, ' ')
	buf = append(buf, e.Store...)
	buf = append(buf, ' ')
	buf = append(buf, e.Action...)
	buf = append(buf, " ["...)
	for i, c := range cats {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, c...)
	}
	buf = append(buf, ']')
	return buf, cats
}

// intern returns the id of token, adding it while the vocabulary has room.
func (b *botShape) intern(tok string, limit int) int32 {
	return b.internBytes([]byte(tok), limit)
}

// internBytes is intern of a token given as bytes: copied only when the
// vocabulary adds it.
func (b *botShape) internBytes(t []byte, limit int) int32 {
	if id, ok := b.tokens[string(t)]; ok {
		return id
	}
	tok := string(t)
	if len(b.names) >= limit {
		if b.other == 0 {
			b.other = int32(len(b.names))
			b.names = append(b.names, "(other tokens)")
			b.grow()
		}
		return b.other
	}
	id := int32(len(b.names))
	b.tokens[tok] = id
	b.names = append(b.names, tok)
	b.grow()
	return id
}

// decay brings the recent counts to t.
func (b *botShape) decay(t time.Time, half time.Duration) {
	if b.recentAt.IsZero() || !t.After(b.recentAt) {
		if b.recentAt.IsZero() {
			b.recentAt = t
		}
		return
	}
	f := math.Exp2(-float64(t.Sub(b.recentAt)) / float64(half))
	for i := range b.recent {
		b.recent[i] *= f
	}
	b.recentTotal *= f
	b.recentAt = t
}

// decayOwn brings c's own recent counts to at (the bot's recent clock).
func (c *convShape) decayOwn(at time.Time, half time.Duration) {
	if c.own == nil || !at.After(c.ownAt) {
		return
	}
	f := math.Exp2(-float64(at.Sub(c.ownAt)) / float64(half))
	for i := range c.own {
		c.own[i].n *= f
	}
	c.ownTotal *= f
	c.ownAt = at
}

// base is the smoothed unigram probability of tok.
func (b *botShape) base(tok int32) float64 {
	v := float64(len(b.names))
	u := 0.0
	if int(tok) < len(b.uni) {
		u = b.uni[tok]
	}
	return (u + shapeGamma/(v+1)) / (b.uniTotal + shapeGamma)
}

// recTail is P(records >= r) for tok: its learned buckets (the bot's
// when it has none) plus one pseudo-count of a Pareto tail above the median.
func (b *botShape) recTail(tok int32, r uint64) float64 {
	h, st := &b.allRecs, &b.allStat
	if int(tok) < len(b.recs) {
		if ts := b.recStat[tok].of(&b.recs[tok]); ts.n > 0 {
			h, st = &b.recs[tok], ts
		}
	}
	st.of(h)
	n := st.n
	k := bits.Len64(r)
	tail := sum(h[k:])
	med := st.med
	prior := math.Min(1, (1+med)/(1+float64(r)))
	return (tail + prior) / (n + 1)
}

func sum(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s
}

// medianBucket is the lower edge of the bucket holding the median (0 when empty).
func medianBucket(h *[shapeRecBuckets]float64) float64 {
	n := sum(h[:])
	if n == 0 {
		return 0
	}
	acc := 0.0
	for k, c := range h {
		acc += c
		if acc >= n/2 {
			if k == 0 {
				return 0
			}
			return math.Exp2(float64(k - 1))
		}
	}
	return 0
}

// surprise is -log P of a step under the bot's model, c's own recent calls
// left out.
func (b *botShape) surprise(c *convShape, prev int32, st *shapeStep) float64 {
	q := b.base(st.tok)
	pl := (b.trans[[2]int32{prev, st.tok}] + shapeAlpha*q) / (b.from[prev] + shapeAlpha)
	own := 0.0
	if c.own != nil {
		own = c.ownOf(st.tok)
	}
	r := math.Max(0, b.recent[st.tok]-own)
	rt := math.Max(0, b.recentTotal-c.ownTotal)
	pr := (r + shapeBeta*q) / (rt + shapeBeta)
	s := -math.Log(shapeLambda*pl + (1-shapeLambda)*pr)
	s -= math.Log(b.recTail(st.tok, st.records))
	ps := (b.switches + 0.5) / (b.steps + 1)
	if st.switched {
		s -= math.Log(ps)
	} else {
		s -= math.Log1p(-ps)
	}
	return s
}

// learn folds a closed conversation's steps into the long-run counts.
func (b *botShape) learn(c *convShape) {
	prev := shapeStart
	for i := range c.steps {
		st := &c.steps[i]
		k := [2]int32{prev, st.tok}
		if _, ok := b.trans[k]; ok || len(b.trans) < shapeMaxTrans {
			b.trans[k]++
			b.from[prev]++
		}
		b.uni[st.tok]++
		b.uniTotal++
		kb := bits.Len64(st.records)
		b.recs[st.tok][kb]++
		b.allRecs[kb]++
		b.recStat[st.tok].ok, b.allStat.ok = false, false
		if st.switched {
			b.switches++
		}
		b.steps++
		prev = st.tok
	}
	if b.uniTotal > shapeCountCap {
		b.halve()
	}
}

// halve halves every long-run count.
func (b *botShape) halve() {
	for k := range b.trans {
		b.trans[k] /= 2
	}
	for i := range b.from {
		b.from[i] /= 2
		b.uni[i] /= 2
		for k := range b.recs[i] {
			b.recs[i][k] /= 2
		}
	}
	for k := range b.allRecs {
		b.allRecs[k] /= 2
	}
	clear(b.recStat)
	b.allStat = recStat{}
	b.uniTotal /= 2
	b.switches /= 2
	b.steps /= 2
}

// scoreHistory is a ring of the latest scores, also kept sorted.
type scoreHistory struct {
	ring   []float64
	pos    int
	sorted []float64
}

// add adds x, dropping the oldest score beyond size.
func (h *scoreHistory) add(x float64, size int) {
	if len(h.ring) < size {
		h.ring = append(h.ring, x)
		h.sorted = slices.Insert(h.sorted, sortSearch(h.sorted, x), x)
		return
	}
	old := h.ring[h.pos]
	h.ring[h.pos] = x
	h.pos = (h.pos + 1) % size
	// the old score's place is x's when x sorts there; else the scores
	// between the two places move by one (what deleting old, then
	// inserting x, would leave, moving fewer)
	i := sortSearch(h.sorted, old)
	j := sortSearch(h.sorted, x) // x's place with old still in
	if j > i {
		j-- // and without it
		copy(h.sorted[i:j], h.sorted[i+1:j+1])
	} else {
		copy(h.sorted[j+1:i+1], h.sorted[j:i])
	}
	h.sorted[j] = x
}

// median is the history's median (0 when empty).
func (h *scoreHistory) median() float64 {
	if len(h.sorted) == 0 {
		return 0
	}
	return h.sorted[len(h.sorted)/2]
}

// tail is P(X >= x) under the history.
func (h *scoreHistory) tail(x float64) float64 { return tailProb(h.sorted, x) }

// remember adds a conversation's scores to the bot's history.
func (b *botShape) remember(mean, maxS float64, size int) {
	b.means.add(mean, size)
	b.maxes.add(maxS, size)
}

// tailProb is P(X >= x) under the sorted history s: the empirical tail up
// to the 99th percentile (the top 10 scores while fewer than 1,000), above
// it an exponential fitted to the exceedances (peaks over threshold; the
// scale floored at 0.25 nats so that a history of identical scores still
// has a tail). The threshold is high because the scores are a mixture: a
// rare but ordinary call (a hand-off one conversation in thirty makes) is
// a second mode; fitted from the 95th percentile, the tail's scale was the
// distance between the modes, and a call never seen (14 nats) had a tail
// probability of only 1e-5.
func tailProb(s []float64, x float64) float64 {
	n := len(s)
	if n == 0 {
		return 1
	}
	k := tailCount(n)
	u := s[n-k-1]
	if x <= u {
		ge := n - sortSearch(s, x)
		return float64(ge+1) / float64(n+1)
	}
	ex := 0.0
	for _, v := range s[n-k:] {
		ex += v - u
	}
	scale := math.Max(ex/float64(k), 0.25)
	return float64(k) / float64(n+1) * math.Exp(-(x-u)/scale)
}

// tailCount is how many of n sorted scores tailProb fits the exponential
// to (those above its threshold s[n-k-1]).
func tailCount(n int) int {
	k := max(10, n/100)
	if k >= n {
		k = n - 1
	}
	return k
}

// tailFloor is a lower bound of tail(x), cheaper than tail: for x at most
// tailProb's threshold u, at least k+1 scores are not below x, so tail(x)
// = (ge+1)/(n+1) >= (k+2)/(n+1); 0 (no bound) above u or on an empty
// history.
func (h *scoreHistory) tailFloor(x float64) float64 {
	n := len(h.sorted)
	if n == 0 {
		return 0
	}
	k := tailCount(n)
	if !(x <= h.sorted[n-k-1]) {
		return 0
	}
	return float64(k+2) / float64(n+1)
}

// sortSearch is the index of the first value of sorted s not below x.
func sortSearch(s []float64, x float64) int {
	i, _ := slices.BinarySearch(s, x)
	return i
}

// pValue is the conversation's combined tail probability (Bonferroni over
// the mean and the worst step).
func (b *botShape) pValue(mean, maxS float64) (p, pMean, pMax float64) {
	pMean, pMax = b.means.tail(mean), b.maxes.tail(maxS)
	return math.Min(1, 2*math.Min(pMean, pMax)), pMean, pMax
}

// checkShape is conversation_shape's per-event check: it scores the event
// as its conversation's next call (the findings come from shapeFindings).
func (r *Rules) checkShape(e *models.Event, _ hitFunc) {
	if r.cfg.enabled(RuleConversationShape) {
		r.shapes.observe(e)
	}
}

// shapeFindings judges the conversations whose hold has passed at now and
// closes (learns) the idle ones.
func (r *Rules) shapeFindings(now time.Time) []models.Finding {
	if !r.cfg.enabled(RuleConversationShape) {
		return nil
	}
	fs := r.shapes.due(now, r.cfg.severity(RuleConversationShape))
	r.shapes.sweep(now)
	return fs
}

// observe scores one event as the next call of its conversation; a
// conversation that crosses TailProb is held (due judges it after Hold).
func (s *shapes) observe(e *models.Event) {
	if e.Conversation.ID == "" || (e.Actor.Type != models.ActorBot && e.Tool == "") || e.Denied() {
		return
	}
	bk := botKey{e.Tenant, e.Actor.ID}
	b := s.bots[bk]
	if b == nil {
		if len(s.bots) >= s.cfg.MaxBots {
			return
		}
		b = newBotShape()
		s.bots[bk] = b
	}
	ck := convKey{e.Tenant, e.Conversation.ID}
	c := s.convs[ck]
	if c == nil {
		if b.open >= s.cfg.MaxOpen {
			return
		}
		c = &convShape{bot: b, actor: e.Actor, subject: e.Conversation.SubjectID, first: e.TS, last: e.TS, prev: shapeStart,
			steps: make([]shapeStep, 0, 8)} // most conversations are a few calls
		s.convs[ck] = c
		b.open++
	}
	if c.bot != b { // a conversation id reused by another bot: judged with the first
		return
	}
	if e.TS.After(b.last) {
		b.last = e.TS
	}
	b.decay(e.TS, s.cfg.RecentHalfLife)
	c.decayOwn(b.recentAt, s.cfg.RecentHalfLife)
	s.tokBuf, s.tokCats = appendShapeToken(s.tokBuf[:0], s.tokCats, e)
	st := shapeStep{ts: e.TS, tok: b.internBytes(s.tokBuf, s.cfg.MaxTokens), records: e.Records, id: e.EventID}
	if e.SubjectID != "" && e.SubjectID != c.subject && !slices.Contains(c.subjects, e.SubjectID) {
		st.switched = true
		if len(c.subjects) < 64 {
			c.subjects = append(c.subjects, e.SubjectID)
		}
	}
	st.surprise = b.surprise(c, c.prev, &st)
	c.prev = st.tok
	c.n++
	c.sum += st.surprise
	c.max = math.Max(c.max, st.surprise)
	c.records += e.Records
	if len(c.steps) < s.cfg.MaxSteps {
		c.steps = append(c.steps, st)
	}
	if e.TS.After(c.last) {
		c.last = e.TS
	}
	b.recent[st.tok]++
	b.recentTotal++
	if c.own == nil {
		c.ownAt = b.recentAt
	}
	c.addOwn(st.tok)
	c.ownTotal++
	if c.fired || !c.flaggedAt.IsZero() || b.learned < s.cfg.MinConversations {
		return
	}
	mean := c.sum / float64(c.n)
	// pValue is at least this floor (each step of it is monotone): most
	// conversations are ordinary, and the floor needs no search
	if math.Min(1, 2*math.Min(b.means.tailFloor(mean), b.maxes.tailFloor(c.max))) >= s.cfg.TailProb {
		return
	}
	if p, _, _ := b.pValue(mean, c.max); p < s.cfg.TailProb {
		c.flaggedAt = e.TS
		s.flagged = append(s.flagged, ck)
	}
}

// rescore scores c's kept steps again with the counts of now, its own
// recent calls left out; it returns the mean and worst step surprise.
func (s *shapes) rescore(c *convShape, now time.Time) (mean, maxS float64) {
	b := c.bot
	b.decay(now, s.cfg.RecentHalfLife)
	c.decayOwn(b.recentAt, s.cfg.RecentHalfLife)
	prev := shapeStart
	total := 0.0
	for i := range c.steps {
		st := &c.steps[i]
		st.surprise = b.surprise(c, prev, st)
		total += st.surprise
		maxS = math.Max(maxS, st.surprise)
		prev = st.tok
	}
	if len(c.steps) == 0 {
		return 0, 0
	}
	return total / float64(len(c.steps)), maxS
}

// due judges the held conversations whose hold has passed at now and
// returns the findings of those still improbable.
func (s *shapes) due(now time.Time, sev models.Severity) []models.Finding {
	var out []models.Finding
	keep := s.flagged[:0]
	for _, k := range s.flagged {
		c := s.convs[k]
		if c == nil || c.fired || c.flaggedAt.IsZero() {
			continue
		}
		if now.Sub(c.flaggedAt) < s.cfg.Hold {
			keep = append(keep, k)
			continue
		}
		mean, maxS := s.rescore(c, now)
		p, pMean, pMax := c.bot.pValue(mean, maxS)
		c.flaggedAt = time.Time{}
		if p >= s.cfg.TailProb {
			s.cleared++ // the calls that followed made it ordinary (a rollout)
			continue
		}
		c.fired = true
		out = append(out, s.finding(now, k, c, mean, maxS, p, pMean, pMax, sev))
	}
	s.flagged = keep
	return out
}

// sweep closes the conversations idle for Idle at now: each one that did
// not fire is scored with the counts of now, remembered in its bot's
// history and learned. A bot with no open conversation and no call for
// evictBots (detect.evict_idle_after, as the window detectors' actors) is
// forgotten: one that comes back warms up again.
func (s *shapes) sweep(now time.Time) {
	// a tenth of Idle: closing late only delays learning (a replay of
	// 14 days swept every minute spent half the rule's time here)
	if now.Sub(s.lastSweep) < s.cfg.Idle/10 {
		return
	}
	s.lastSweep = now
	type closingConv struct {
		k convKey
		c *convShape
	}
	var closing []closingConv
	for k, c := range s.convs {
		if now.Sub(c.last) > s.cfg.Idle {
			closing = append(closing, closingConv{k, c})
		}
	}
	// close in time order: the counts each one is scored with do not depend
	// on map order
	slices.SortFunc(closing, func(x, y closingConv) int {
		return cmp.Or(x.c.first.Compare(y.c.first), cmp.Compare(x.k.tenant, y.k.tenant), cmp.Compare(x.k.id, y.k.id))
	})
	for _, cc := range closing {
		k, c := cc.k, cc.c
		b := c.bot
		delete(s.convs, k)
		b.open--
		if c.fired || len(c.steps) == 0 {
			continue
		}
		if b.learned >= s.cfg.MinConversations/2 {
			// the first half of the warm-up teaches the chain; a score
			// under a model that has seen almost nothing would be an
			// outlier in the calibration for as long as it stayed in it
			mean, maxS := s.rescore(c, now)
			b.remember(mean, maxS, s.cfg.History)
		}
		b.learn(c)
		b.learned++
	}
	if s.evictBots > 0 {
		for k, b := range s.bots {
			if b.open == 0 && now.Sub(b.last) > s.evictBots {
				delete(s.bots, k)
			}
		}
	}
}

// finding builds conversation_shape's finding: the call sequence with the
// improbable steps marked.
func (s *shapes) finding(now time.Time, k convKey, c *convShape, mean, maxS, p, pMean, pMax float64, sev models.Severity) models.Finding {
	b := c.bot
	med := b.means.median()
	calls := make([]models.CallStep, 0, len(c.steps))
	var stores, cats, ids []string
	improbable := 0
	for i := range c.steps {
		st := &c.steps[i]
		tool, store, action, fields := splitToken(b.names[st.tok])
		mark := b.maxes.tail(st.surprise) < shapeMarkProb
		if mark {
			improbable++
			if len(ids) < maxEvidenceIDs {
				ids = append(ids, st.id)
			}
		}
		calls = append(calls, models.CallStep{TS: st.ts, Tool: tool, Store: store, Action: action, Categories: fields,
			Records: st.records, OtherCustomer: st.switched, Surprise: round2(st.surprise), Improbable: mark})
		stores = addUnique(stores, store, 10)
		for _, f := range fields {
			cats = addUnique(cats, f, 20)
		}
	}
	var worst []string
	for i := range calls {
		if calls[i].Improbable && len(worst) < 3 {
			worst = append(worst, calls[i].Label())
		}
	}
	f := models.Finding{Detector: RuleConversationShape, Tenant: k.tenant, ActorID: c.actor.ID, ActorType: c.actor.Type,
		ActorRole: c.actor.Role, ActorVendor: c.actor.Vendor, WindowStart: c.first, WindowEnd: c.last, DetectedAt: now,
		Score: -math.Log10(math.Max(p, 1e-300)), Probability: p, Severity: sev,
		Evidence: models.Evidence{Metric: "negative log-likelihood per call of the conversation (nats)", Observed: round2(mean),
			Baseline: round2(med), BaselineSource: "actor", TopStores: stores, Categories: cats, TopSubjects: c.subjects,
			Subjects: uint64(len(c.subjects)), Records: c.records, EventIDs: ids, Calls: calls,
			Query: eventsQuery(k.tenant, c.actor.ID, c.first, c.last, "conversation_id = "+lit(k.id)),
			Notes: map[string]float64{"calls": float64(c.n), "worst_call_nats": round2(maxS), "tail_probability_mean": pMean,
				"tail_probability_worst_call": pMax, "improbable_calls": float64(improbable),
				"conversations_learned": float64(b.learned), "other_customers": float64(len(c.subjects))}},
	}
	f.Summary = fmt.Sprintf("%s: conversation %s has a shape its bot's conversations have with probability %.1e (%.1f nats per call, median %.1f; %d of %d calls improbable",
		c.actor.ID, k.id, p, mean, med, improbable, c.n)
	if len(worst) > 0 {
		f.Summary += ": " + strings.Join(worst, "; ")
	}
	f.Summary += ")"
	return f
}

// splitToken undoes appendShapeToken.
func splitToken(tok string) (tool, store, action string, cats []string) {
	head, catList, _ := strings.Cut(tok, " [")
	parts := strings.SplitN(head, " ", 3)
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	if c := strings.TrimSuffix(catList, "]"); c != "" {
		cats = strings.Split(c, ",")
	}
	return parts[0], parts[1], parts[2], cats
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }
