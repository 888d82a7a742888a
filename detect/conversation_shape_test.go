package detect

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// call parses a readable call: "tool store action [cat,cat] xN [@subject]".
func call(t *testing.T, spec string) models.Event {
	t.Helper()
	f := strings.Fields(spec)
	if len(f) < 5 {
		t.Fatalf("call %q: want tool store action [cats] xN", spec)
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(f[4], "x"), 10, 64)
	if err != nil {
		t.Fatalf("call %q: %v", spec, err)
	}
	var cats []string
	if c := strings.Trim(f[3], "[]"); c != "" {
		cats = strings.Split(c, ",")
	}
	e := models.Event{Tool: f[0], Store: f[1], Action: models.Action(f[2]), Fields: cats, Records: n}
	if len(f) > 5 {
		e.SubjectID = strings.TrimPrefix(f[5], "@")
	}
	return e
}

// The office model's bot: five tools, each call drawn independently.
var botCalls = []struct {
	spec string
	p    float64
}{
	{"search_kb vector_index search [transcript_text] x%d", 0.28},
	{"lookup_order orders read [order_history] x%d", 0.30},
	{"get_profile crm read [email,name] x1", 0.20},
	{"get_conversation_history transcripts read [transcript_text] x1", 0.10},
	{"create_ticket tickets update [name,email] x1", 0.12},
}

// botTraffic writes a bot's ordinary conversations: one starts about every
// 50 s, each of 2 to 7 calls 10 to 40 s apart, for the conversation's
// customer.
type botTraffic struct {
	t    *testing.T
	rng  *rand.Rand
	evs  []models.Event
	conv int
	// extra, when set, is added to every conversation started at or after
	// extraFrom (a rollout).
	extra     string
	extraFrom time.Time
}

func (b *botTraffic) ordinaryCall() string {
	r := b.rng.Float64()
	for _, c := range botCalls {
		if r < c.p {
			return strings.Replace(c.spec, "%d", strconv.Itoa(1+b.rng.IntN(3)+2*b.rng.IntN(2)), 1)
		}
		r -= c.p
	}
	return strings.Replace(botCalls[0].spec, "%d", "4", 1)
}

// conversation adds one conversation's calls from at; it returns its id.
func (b *botTraffic) conversation(at time.Time, calls []string, gap func() time.Duration) string {
	b.conv++
	id := fmt.Sprintf("cv-%d", b.conv)
	subject := fmt.Sprintf("cust-%d", b.rng.IntN(50000))
	for i, spec := range calls {
		e := call(b.t, spec)
		e.EventID = fmt.Sprintf("%s-%d", id, i)
		e.TS = at
		e.Tenant = "default"
		e.Actor = models.Actor{ID: "assistant-1", Type: models.ActorBot, Role: "chat-assistant"}
		e.Conversation = models.Conversation{ID: id, SubjectID: subject}
		if e.SubjectID == "" && e.Store != "vector_index" {
			e.SubjectID = subject
		}
		b.evs = append(b.evs, e)
		at = at.Add(gap())
	}
	return id
}

func (b *botTraffic) gap() time.Duration { return time.Duration(10+b.rng.IntN(30)) * time.Second }

// ordinary adds ordinary conversations over [from, to).
func (b *botTraffic) ordinary(from, to time.Time) {
	for at := from; at.Before(to); at = at.Add(time.Duration(20+b.rng.IntN(60)) * time.Second) {
		n := 2 + b.rng.IntN(6)
		calls := make([]string, 0, n+1)
		for range n {
			calls = append(calls, b.ordinaryCall())
		}
		if b.extra != "" && !at.Before(b.extraFrom) {
			calls = slices.Insert(calls, b.rng.IntN(len(calls)+1), b.extra)
		}
		b.conversation(at, calls, b.gap)
	}
}

// replay runs the events through the rules in batches of 10 s of event
// time, as ingest would, and returns the conversation_shape findings.
func replay(t *testing.T, r *Rules, evs []models.Event) []models.Finding {
	t.Helper()
	slices.SortStableFunc(evs, func(x, y models.Event) int { return x.TS.Compare(y.TS) })
	var out []models.Finding
	start := 0
	for i := 1; i <= len(evs); i++ {
		if i < len(evs) && evs[i].TS.Sub(evs[start].TS) < 10*time.Second {
			continue
		}
		for _, f := range r.Check(evs[i-1].TS, evs[start:i], nil) {
			if f.Detector == RuleConversationShape {
				out = append(out, f)
			}
		}
		start = i
	}
	return out
}

// firedOn returns the conversation ids the findings name.
func firedOn(fs []models.Finding) []string {
	var ids []string
	for _, f := range fs {
		_, cond, _ := strings.Cut(f.Evidence.Query, "conversation_id = '")
		id, _, _ := strings.Cut(cond, "'")
		ids = append(ids, id)
	}
	return ids
}

var shapeT0 = time.Date(2026, 10, 19, 8, 0, 0, 0, time.UTC)

func newShapeRules(t *testing.T) *Rules {
	t.Helper()
	r, err := NewRules(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestShapeFixture: after two days of one bot's ordinary conversations,
// conversation_shape fires on each attack style (one-shot, slow, one extra
// call in an ordinary flow, a search then lookups of other customers) and
// stays quiet on each hard negative (a new tool rolled out to every
// conversation, a long but ordinary conversation) and on the ordinary
// conversations around them.
func TestShapeFixture(t *testing.T) {
	b := &botTraffic{t: t, rng: rand.New(rand.NewPCG(7, 7))}
	warm := shapeT0.Add(40 * time.Hour)
	end := warm.Add(30 * time.Hour)
	b.ordinary(shapeT0, end)
	fixed := func(d time.Duration) func() time.Duration { return func() time.Duration { return d } }
	attacks := map[string]string{}
	// one-shot: a knowledge-base search, then the directory dumped in a minute
	oneShot := []string{"search_kb vector_index search [transcript_text] x4"}
	for range 8 {
		oneShot = append(oneShot, "get_profile crm search [address,email,name,phone] x30")
	}
	attacks[b.conversation(warm.Add(2*time.Hour), oneShot, fixed(6*time.Second))] = "one-shot"
	// slow: one transcript search every five minutes for an hour
	var slow []string
	for i := range 12 {
		if i%3 == 0 {
			slow = append(slow, b.ordinaryCall())
		}
		slow = append(slow, "get_conversation_history transcripts search [transcript_text] x12")
	}
	attacks[b.conversation(warm.Add(5*time.Hour), slow, fixed(5*time.Minute))] = "slow"
	// disguised: an ordinary flow with one extra call for the customer's ids
	disguised := []string{b.ordinaryCall(), b.ordinaryCall(), "get_profile crm read [dob,government_id] x1", b.ordinaryCall()}
	attacks[b.conversation(warm.Add(8*time.Hour), disguised, b.gap)] = "disguised"
	// the example: a search followed by lookups of other customers
	lookups := []string{"search_kb vector_index search [transcript_text] x5"}
	for i := range 5 {
		lookups = append(lookups, fmt.Sprintf("lookup_order orders read [order_history] x1 @other-%d", i))
	}
	attacks[b.conversation(warm.Add(11*time.Hour), lookups, b.gap)] = "search then lookups"

	// hard negative: a long but ordinary conversation (40 calls, 40 minutes)
	long := make([]string, 40)
	for i := range long {
		long[i] = b.ordinaryCall()
	}
	longID := b.conversation(warm.Add(14*time.Hour), long, fixed(time.Minute))
	// hard negative: a new tool in every conversation from warm+18h on
	rollout := &botTraffic{t: t, rng: rand.New(rand.NewPCG(8, 8)), conv: 1_000_000,
		extra: "summarize_conversation transcripts read [transcript_text] x1", extraFrom: warm.Add(18 * time.Hour)}
	// the bot's traffic from then on carries the new tool: regenerate the
	// tail of its ordinary traffic with it
	keep := b.evs[:0]
	for _, e := range b.evs {
		if e.TS.Before(rollout.extraFrom) || attacks[e.Conversation.ID] != "" || e.Conversation.ID == longID {
			keep = append(keep, e)
		}
	}
	b.evs = keep
	rollout.ordinary(rollout.extraFrom, end)
	evs := append(b.evs, rollout.evs...)

	r := newShapeRules(t)
	fs := replay(t, r, evs)
	got := firedOn(fs)
	if r.shapes.cleared == 0 {
		t.Error("no conversation was held and cleared: the rollout's first conversations should cross, then be ordinary")
	}
	for id, style := range attacks {
		if !slices.Contains(got, id) {
			t.Errorf("%s attack (conversation %s): no finding", style, id)
		}
	}
	for i, id := range got {
		if attacks[id] == "" {
			t.Errorf("false finding on conversation %s: %s", id, fs[i].Summary)
		}
	}
	for _, f := range fs {
		ev := f.Evidence
		if len(ev.Calls) == 0 || !slices.ContainsFunc(ev.Calls, func(c models.CallStep) bool { return c.Improbable }) {
			t.Errorf("finding %q: no improbable call marked in %d calls", f.Summary, len(ev.Calls))
		}
		if f.Probability <= 0 || f.Probability >= 1e-6 || f.Severity != models.SeverityHigh {
			t.Errorf("finding %q: probability %g severity %s", f.Summary, f.Probability, f.Severity)
		}
	}
	// the disguised attack's marked call is the extra one, and only it
	for _, f := range fs {
		if attacks[firedOn([]models.Finding{f})[0]] != "disguised" {
			continue
		}
		for _, c := range f.Evidence.Calls {
			if want := c.Tool == "get_profile" && slices.Contains(c.Categories, "government_id"); c.Improbable != want {
				t.Errorf("disguised attack: call %s marked %v", c.Label(), c.Improbable)
			}
		}
	}
}

// TestShapeDayZero: a bot is not judged before MinConversations of its
// conversations have closed, however strange its first ones.
func TestShapeDayZero(t *testing.T) {
	b := &botTraffic{t: t, rng: rand.New(rand.NewPCG(1, 2))}
	b.ordinary(shapeT0, shapeT0.Add(2*time.Hour)) // ~140 conversations < 300
	var dump []string
	for range 10 {
		dump = append(dump, "get_profile crm search [address,email,name,phone] x30")
	}
	b.conversation(shapeT0.Add(time.Hour), dump, b.gap)
	r := newShapeRules(t)
	if fs := replay(t, r, b.evs); len(fs) != 0 {
		t.Fatalf("findings before the bot has a history: %s", fs[0].Summary)
	}
	if n := r.shapes.bots[botKey{"default", "assistant-1"}].learned; n >= r.cfg.Conversations.MinConversations {
		t.Fatalf("learned %d conversations, the test wants fewer than %d", n, r.cfg.Conversations.MinConversations)
	}
}

// TestShapeSmoothing: the chain's probabilities are the Dirichlet-smoothed
// counts, backed off to the smoothed unigram, itself backed off to "a
// token never seen".
func TestShapeSmoothing(t *testing.T) {
	b := newBotShape()
	a := b.intern("a", 10)
	x := b.intern("x", 10)
	c := &convShape{}
	// learn 9 conversations "a a" and one "a x"
	for i := range 10 {
		second := a
		if i == 9 {
			second = x
		}
		b.learn(&convShape{steps: []shapeStep{{tok: a, records: 1}, {tok: second, records: 1}}})
	}
	v := float64(len(b.names)) // start, a, x
	qa := (19 + shapeGamma/(v+1)) / (20 + shapeGamma)
	if got := b.base(a); math.Abs(got-qa) > 1e-12 {
		t.Errorf("base(a) = %g, want %g", got, qa)
	}
	unseen := b.intern("never", 10)
	qn := (shapeGamma / (v + 2)) / (20 + shapeGamma)
	if got := b.base(unseen); math.Abs(got-qn) > 1e-12 {
		t.Errorf("base(never) = %g, want %g", got, qn)
	}
	// P(a | a) long-run = (9 + alpha q(a)) / (10 + alpha); no recent calls:
	// the recent part is the base itself
	qa = b.base(a)
	pl := (9 + shapeAlpha*qa) / (10 + shapeAlpha)
	want := -math.Log(shapeLambda*pl+(1-shapeLambda)*qa) - math.Log(b.recTail(a, 1)) - math.Log1p(-(0+0.5)/(20+1))
	if got := b.surprise(c, a, &shapeStep{tok: a, records: 1}); math.Abs(got-want) > 1e-9 {
		t.Errorf("surprise(a | a) = %g, want %g", got, want)
	}
	// an unseen transition and an unseen token cost more, in that order
	sA := b.surprise(c, a, &shapeStep{tok: a, records: 1})
	sX := b.surprise(c, a, &shapeStep{tok: x, records: 1})
	sN := b.surprise(c, a, &shapeStep{tok: unseen, records: 1})
	if !(sA < sX && sX < sN) {
		t.Errorf("surprises a %.2f, x %.2f, never %.2f: want increasing", sA, sX, sN)
	}
	// records: one within the token's own, one far above
	if p1, p40 := b.recTail(a, 1), b.recTail(a, 40); p1 < 0.9 || p40 > 0.01 {
		t.Errorf("P(records >= 1) = %g, P(records >= 40) = %g", p1, p40)
	}
	// recent calls of other conversations make a token ordinary; the
	// conversation's own do not
	b.recentAt = shapeT0
	b.recent[unseen] += 20
	b.recentTotal += 40
	own := &convShape{own: []ownCount{{tok: unseen, n: 20}}, ownTotal: 20}
	if got := b.surprise(c, a, &shapeStep{tok: unseen, records: 1}); got > 2 {
		t.Errorf("a token of half the recent calls: surprise %.2f, want < 2", got)
	}
	if got := b.surprise(own, a, &shapeStep{tok: unseen, records: 1}); math.Abs(got-sN) > 3 {
		t.Errorf("a token only the conversation itself used: surprise %.2f, want about %.2f", got, sN)
	}
}

// TestShapeTailCalibration: the tail probability recovers an exponential
// tail beyond the history, and is uniform on fresh draws (a threshold p
// fires on about a share p of ordinary conversations).
func TestShapeTailCalibration(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var h scoreHistory
	for range 3000 {
		h.add(1+rng.ExpFloat64(), 3000)
	}
	for _, want := range []float64{1e-2, 1e-4, 1e-6, 1e-9} {
		x := 1 - math.Log(want)
		if got := h.tail(x); got < want/3 || got > want*3 {
			t.Errorf("P(X >= %.1f) = %.2g, want %.2g within a factor 3", x, got, want)
		}
	}
	for _, thr := range []float64{0.1, 0.01} {
		n, hit := 20000, 0
		for range n {
			if h.tail(1+rng.ExpFloat64()) < thr {
				hit++
			}
		}
		if got := float64(hit) / float64(n); got < thr/1.5 || got > thr*1.5 {
			t.Errorf("share of fresh draws with p < %g: %.4f", thr, got)
		}
	}
	// the ring forgets the oldest: the sorted copy holds the ring's values
	for range 5000 {
		h.add(rng.Float64(), 3000)
	}
	s := slices.Clone(h.ring)
	slices.Sort(s)
	if !slices.Equal(s, h.sorted) {
		t.Error("sorted history differs from the ring")
	}
}

// TestShapeIncremental: the running score (each call scored as it came)
// equals the conversation scored again at once when nothing else happened
// in between (up to the vocabulary its own new call added: 1e-5).
func TestShapeIncremental(t *testing.T) {
	b := &botTraffic{t: t, rng: rand.New(rand.NewPCG(5, 6))}
	b.ordinary(shapeT0, shapeT0.Add(20*time.Hour))
	r := newShapeRules(t)
	replay(t, r, b.evs)
	at := shapeT0.Add(22 * time.Hour)
	calls := []string{"search_kb vector_index search [transcript_text] x4", "lookup_order orders read [order_history] x2",
		"get_profile crm read [dob,government_id] x1", "lookup_order orders read [order_history] x40"}
	b.evs = nil
	id := b.conversation(at, calls, func() time.Duration { return 0 })
	s := r.shapes
	var running []float64
	for i := range b.evs {
		s.observe(&b.evs[i])
		c := s.convs[convKey{"default", id}]
		running = append(running, c.steps[i].surprise)
	}
	c := s.convs[convKey{"default", id}]
	if c.n != 4 || math.Abs(c.sum-sumOf(running)) > 1e-9 {
		t.Fatalf("running score: %d calls, sum %g, want 4 and %g", c.n, c.sum, sumOf(running))
	}
	mean, maxS := s.rescore(c, at)
	if math.Abs(mean-c.sum/4) > 1e-5 || math.Abs(maxS-c.max) > 1e-5 {
		t.Errorf("rescored mean %g max %g, running %g %g", mean, maxS, c.sum/4, c.max)
	}
	for i, want := range running {
		if math.Abs(c.steps[i].surprise-want) > 1e-5 {
			t.Errorf("call %d: rescored %g, running %g", i, c.steps[i].surprise, want)
		}
	}
	if !(running[2] > running[1]+5 && running[3] > running[1]+5) {
		t.Errorf("surprises %v: the identity read and the 40-row lookup should stand out", running)
	}
}

func sumOf(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s
}

// TestShapeBounded: idle conversations are closed and learned, the
// vocabulary stops at max_tokens, and an idle bot is forgotten.
func TestShapeBounded(t *testing.T) {
	cfg := Config{Conversations: ConversationsConfig{MaxTokens: 4, MinConversations: 20, History: 20}}
	r, err := NewRules(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var evs []models.Event
	for i := range 50 {
		evs = append(evs, models.Event{EventID: fmt.Sprint(i), TS: shapeT0.Add(time.Duration(i) * time.Minute), Tenant: "t",
			Actor: models.Actor{ID: "bot", Type: models.ActorBot}, Action: models.ActionRead, Store: "s",
			Tool: fmt.Sprintf("tool%d", i), Records: 1, Conversation: models.Conversation{ID: fmt.Sprint("c", i)}})
	}
	r.Check(shapeT0.Add(50*time.Minute), evs, nil)
	b := r.shapes.bots[botKey{"t", "bot"}]
	if len(b.names) > 5 { // start + 3 tokens + other
		t.Errorf("%d tokens kept, want at most 5", len(b.names))
	}
	r.Check(shapeT0.Add(3*time.Hour), []models.Event{{EventID: "late", TS: shapeT0.Add(3 * time.Hour), Tenant: "t",
		Actor: models.Actor{ID: "other", Type: models.ActorHuman}, Action: models.ActionRead, Store: "s"}}, nil)
	if len(r.shapes.convs) != 0 || b.open != 0 || b.learned != 50 {
		t.Errorf("after idle: %d open conversations (bot says %d), %d learned; want 0, 0, 50", len(r.shapes.convs), b.open, b.learned)
	}
	// a bot idle for evict_idle_after is forgotten
	later := shapeT0.Add(r.cfg.EvictIdleAfter + 2*time.Hour)
	r.Check(later, []models.Event{{EventID: "later", TS: later, Tenant: "t",
		Actor: models.Actor{ID: "other", Type: models.ActorHuman}, Action: models.ActionRead, Store: "s"}}, nil)
	if _, ok := r.shapes.bots[botKey{"t", "bot"}]; ok {
		t.Errorf("bot idle for %s still modelled", r.cfg.EvictIdleAfter)
	}
}

// TestShapeConfigValidate names the field.
func TestShapeConfigValidate(t *testing.T) {
	for field, c := range map[string]ConversationsConfig{
		"tail_prob":         {TailProb: 2},
		"min_conversations": {MinConversations: 3},
		"idle":              {Hold: time.Hour, Idle: 30 * time.Minute},
		"max_tokens":        {MaxTokens: 1},
	} {
		err := Config{Conversations: c}.Validate()
		if err == nil || !strings.Contains(err.Error(), "detect.conversations."+field) {
			t.Errorf("%s: %v", field, err)
		}
	}
}

// TestShapeTailFloor: tailFloor, which lets observe skip pValue, never
// exceeds tail, on histories of 0 to 3000 scores and scores below, at
// and above tailProb's threshold; and it is a bound (not 0) at the
// threshold.
func TestShapeTailFloor(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 2, 10, 11, 12, 50, 999, 1000, 1001, 3000} {
		var h scoreHistory
		for range n {
			h.add(math.Round(rng.ExpFloat64()*8)/4, n) // ties included
		}
		xs := []float64{-1, 0, 0.25, 1, 2.5, 7, 40, math.Inf(1)}
		if n > 0 {
			u := h.sorted[n-tailCount(n)-1]
			xs = append(xs, u, math.Nextafter(u, math.Inf(-1)), math.Nextafter(u, math.Inf(1)))
			if f := h.tailFloor(u); f == 0 {
				t.Errorf("n %d: tailFloor at the threshold %g is 0", n, u)
			}
		}
		for range 200 {
			xs = append(xs, rng.Float64()*20)
		}
		for _, x := range xs {
			if f, p := h.tailFloor(x), h.tail(x); f > p {
				t.Fatalf("n %d: tailFloor(%g) = %g > tail %g", n, x, f, p)
			}
		}
	}
}

// TestScoreHistoryAddMatchesDeleteInsert: add keeps the sorted scores
// exactly as deleting the dropped score and inserting the new one did,
// through many turns of a small ring, with ties, -0 and +0 and scores
// above, below and between the kept ones.
func TestScoreHistoryAddMatchesDeleteInsert(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	for _, size := range []int{1, 2, 3, 7, 50} {
		var h scoreHistory
		var ring, want []float64
		pos := 0
		for step := range 5000 {
			x := math.Round(rng.NormFloat64()*4) / 2
			switch step % 97 {
			case 0:
				x = math.Copysign(0, -1)
			case 1:
				x = 1e9
			case 2:
				x = -1e9
			}
			if len(ring) < size {
				ring = append(ring, x)
			} else {
				old := ring[pos]
				ring[pos] = x
				pos = (pos + 1) % size
				i := sortSearch(want, old)
				want = slices.Delete(want, i, i+1)
			}
			want = slices.Insert(want, sortSearch(want, x), x)
			h.add(x, size)
			if !slices.Equal(h.sorted, want) || !slices.Equal(h.ring, ring) {
				t.Fatalf("size %d, step %d: sorted %v, want %v", size, step, h.sorted, want)
			}
		}
	}
}

// TestShapeRecTailCached: recTail with its cached totals and medians gives,
// bit for bit, what summing the buckets at each call gave, through
// conversations learned and counts halved.
func TestShapeRecTailCached(t *testing.T) {
	ref := func(b *botShape, tok int32, r uint64) float64 {
		h := &b.allRecs
		if int(tok) < len(b.recs) && sum(b.recs[tok][:]) > 0 {
			h = &b.recs[tok]
		}
		n := sum(h[:])
		tail := sum(h[bits.Len64(r):])
		prior := math.Min(1, (1+medianBucket(h))/(1+float64(r)))
		return (tail + prior) / (n + 1)
	}
	rng := rand.New(rand.NewPCG(10, 11))
	b := newBotShape()
	toks := []int32{b.intern("a", 10), b.intern("b", 10), b.intern("c", 10)}
	check := func(step int) {
		t.Helper()
		for _, tok := range append(toks, 0, 99) {
			for _, r := range []uint64{0, 1, 2, 3, 7, 40, 1000, 1 << 40} {
				if got, want := b.recTail(tok, r), ref(b, tok, r); got != want {
					t.Fatalf("step %d: recTail(%d, %d) = %v, want %v", step, tok, r, got, want)
				}
			}
		}
	}
	check(-1)
	for step := range 400 {
		var c convShape
		for range 1 + rng.IntN(5) {
			c.steps = append(c.steps, shapeStep{tok: toks[rng.IntN(2)], records: uint64(rng.ExpFloat64() * 20)})
		}
		b.learn(&c)
		if step%50 == 49 {
			b.halve()
		}
		check(step)
	}
}
