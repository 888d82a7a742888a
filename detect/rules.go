package detect

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// Rules evaluates the event rules: per event, no history beyond the consent
// register, the customers seen per open conversation, the bots'
// conversation shapes and each actor's sanctioned flows (the size of its
// calls to allow-listed destinations, for the bulk rule). Findings of one
// batch are folded per (rule, tenant, actor), so a scrape of ten thousand
// events makes one finding per rule, not ten thousand. Safe for concurrent
// use (calls are serialized).
type Rules struct {
	cfg      Config
	consents *ConsentRegister
	purposes map[string]map[string]bool // purpose -> allowed categories; nil map = every category
	gated    map[string]bool
	vendors  map[string]*vendorRule
	allow    *allowList

	mu        sync.Mutex
	convs     map[convKey]*convState
	lastSweep time.Time
	// noContract holds, per (tenant, vendor) without a contract, when
	// vendor_no_contract last fired.
	noContract map[convKey]time.Time
	// shapes is conversation_shape's model of each bot's conversations.
	shapes *shapes
	// flows are the sanctioned flows the bulk rule has seen (checkBulk).
	flows map[flowKey]*flow
}

// NoContractEvery is how often, at most, vendor_no_contract fires for one
// vendor: the missing contract is a configuration gap to close, not an
// incident; the vendor's behaviour is judged by the window detectors.
const NoContractEvery = 7 * 24 * time.Hour

type vendorRule struct {
	name       string
	stores     map[string]bool
	categories map[string]bool
	from, to   int // minutes of the day; from == to means all day
	hasHours   bool
	days       [7]bool
	hasDays    bool
	loc        *time.Location
}

type convKey struct{ tenant, id string }

type convState struct {
	subjects []string
	last     time.Time
	fired    bool
}

// NewRules builds the rules from cfg (defaults applied) over a consent
// register.
func NewRules(cfg Config, consents *ConsentRegister) (*Rules, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if consents == nil {
		consents = NewConsentRegister()
	}
	r := &Rules{cfg: cfg, consents: consents, purposes: map[string]map[string]bool{}, gated: map[string]bool{},
		vendors: map[string]*vendorRule{}, convs: map[convKey]*convState{}, noContract: map[convKey]time.Time{},
		allow: newAllowList(cfg.Destinations), shapes: newShapes(cfg.Conversations, cfg.EvictIdleAfter),
		flows: map[flowKey]*flow{}}
	for p, cats := range cfg.Rules.Purposes {
		if slices.Contains(cats, "*") {
			r.purposes[p] = nil
			continue
		}
		r.purposes[p] = setOf(cats)
	}
	for _, p := range cfg.Rules.ConsentGated {
		r.gated[p] = true
	}
	for name, v := range cfg.Rules.Vendors {
		vr := &vendorRule{name: name, stores: setOf(v.Stores), categories: setOf(v.Categories), loc: time.UTC}
		if v.Hours != "" {
			vr.from, vr.to, _ = parseHours(v.Hours)
			vr.hasHours = true
		}
		for _, d := range v.Days {
			vr.days[weekdays[strings.ToLower(d)]] = true
			vr.hasDays = true
		}
		if v.TimeZone != "" {
			vr.loc, _ = time.LoadLocation(v.TimeZone)
		}
		r.vendors[name] = vr
	}
	return r, nil
}

func setOf(ss []string) map[string]bool {
	m := make(map[string]bool, len(ss))
	for _, s := range ss {
		m[s] = true
	}
	return m
}

// Consents returns the consent register the rules read.
func (r *Rules) Consents() *ConsentRegister { return r.consents }

// ruleHit accumulates one rule's matches for one actor within a batch.
type ruleHit struct {
	rule       string
	ev         *models.Event // first matching event
	first      time.Time
	last       time.Time
	count      int
	records    uint64
	ids        []string
	subjects   []string
	stores     []string
	categories []string
	dests      []string
	reasons    []string
	cond       string
	observed   float64
	limit      float64
}

type hitKey struct{ rule, tenant, actor string }

const maxEvidenceIDs = 10

// Check applies the consent events of the batch to the register, then runs
// every rule over evs (pseudonymized, as stored) and returns the findings,
// detected at now. It keeps no reference to evs.
func (r *Rules) Check(now time.Time, evs []models.Event, cs []models.Consent) []models.Finding {
	r.consents.Apply(cs)
	if len(evs) == 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var hits map[hitKey]*ruleHit // allocated on first hit only
	var order []hitKey
	hit := func(rule string, e *models.Event, cond string, observed, limit float64, reason string, cats ...string) {
		if !r.cfg.enabled(rule) {
			return
		}
		if hits == nil {
			hits = map[hitKey]*ruleHit{}
		}
		k := hitKey{rule, e.Tenant, e.Actor.ID}
		h := hits[k]
		if h == nil {
			h = &ruleHit{rule: rule, ev: e, first: e.TS, last: e.TS, cond: cond, limit: limit}
			hits[k] = h
			order = append(order, k)
		}
		h.count++
		h.records += e.Records
		h.observed = max(h.observed, observed)
		if e.TS.Before(h.first) {
			h.first = e.TS
		}
		if e.TS.After(h.last) {
			h.last = e.TS
		}
		if len(h.ids) < maxEvidenceIDs {
			h.ids = append(h.ids, e.EventID)
		}
		h.subjects = addUnique(h.subjects, e.SubjectID, 10)
		h.stores = addUnique(h.stores, e.Store, 10)
		h.dests = addUnique(h.dests, e.Destination, 10)
		for _, c := range cats {
			h.categories = addUnique(h.categories, c, 20)
		}
		if reason != "" {
			h.reasons = addUnique(h.reasons, reason, 5)
		}
	}
	for i := range evs {
		e := &evs[i]
		for _, er := range eventRules {
			er.check(r, e, hit)
		}
	}
	r.sweep(now)
	shaped := r.shapeFindings(now)
	if len(order) == 0 {
		return shaped
	}
	out := make([]models.Finding, 0, len(order)+len(shaped))
	for _, k := range order {
		out = append(out, r.finding(now, hits[k]))
	}
	return append(out, shaped...)
}

func addUnique(ss []string, s string, limit int) []string {
	if s == "" || len(ss) >= limit || slices.Contains(ss, s) {
		return ss
	}
	return append(ss, s)
}

type hitFunc func(rule string, e *models.Event, cond string, observed, limit float64, reason string, cats ...string)

func (r *Rules) checkBulk(e *models.Event, hit hitFunc) {
	limit := r.cfg.Rules.BulkRecords
	if l, ok := r.cfg.Rules.BulkRecordsByType[string(e.Actor.Type)]; ok {
		limit = l
	}
	if e.Denied() {
		return
	}
	switch e.Action {
	case models.ActionRead, models.ActionExport, models.ActionShare, models.ActionSearch, models.ActionList:
	default:
		return
	}
	bar, reason := limit, string(e.Action)
	k, sanctioned := r.flowKey(e)
	if fl := r.flows[k]; sanctioned && fl != nil && fl.carries(e, r.cfg.Detectors.WarmupDays) {
		bar = limit + fl.largest
		reason = fmt.Sprintf("%s to the allow-listed %s, where its calls within the limit on %d days reached %d records; limit %d + %d",
			e.Action, e.Destination, fl.days, fl.largest, limit, fl.largest)
	}
	if e.Records > bar {
		hit(RuleBulkAccess, e, fmt.Sprintf("records > %d", bar), float64(e.Records),
			float64(bar), reason, e.Fields...)
	}
	if sanctioned && e.Records <= limit {
		r.learnFlow(k, e)
	}
}

// flowKey returns the sanctioned flow e belongs to: an export or share to
// a destination the tenant's allow-list names. ok is false for any other
// event.
func (r *Rules) flowKey(e *models.Event) (flowKey, bool) {
	if !e.Shared() || !r.allow.configured(e.Tenant) || !r.allow.allowed(e.Tenant, e.Destination) {
		return flowKey{}, false
	}
	return flowKey{e.Tenant, e.Actor.ID, strings.ToLower(e.Destination)}, true
}

// flowKey names a sanctioned flow: one actor's exports and shares to one
// destination on its tenant's allow-list.
type flowKey struct{ tenant, actor, dest string }

// flow is what a sanctioned flow has carried in calls within the bulk
// limit (a call over it is the bulk rule's finding, never the flow's
// habit, so the bar a flow lifts stays under twice the limit).
type flow struct {
	days       int   // distinct UTC days with such a call
	lastDay    int64 // the latest of them (days since 1970)
	largest    uint64
	stores     []string
	categories []string
	last       time.Time
}

// maxFlowItems bounds the stores and categories a flow remembers.
const maxFlowItems = 32

// carries reports whether e is the flow's habit: established on at least
// minDays days, and e's store and every category already on it (nothing
// new leaves through the flow).
func (f *flow) carries(e *models.Event, minDays int) bool {
	if f.days < minDays || !slices.Contains(f.stores, e.Store) {
		return false
	}
	for _, c := range e.Fields {
		if !slices.Contains(f.categories, c) {
			return false
		}
	}
	return true
}

// learnFlow adds e, a call within the bulk limit, to its sanctioned flow.
func (r *Rules) learnFlow(k flowKey, e *models.Event) {
	f := r.flows[k]
	if f == nil {
		f = &flow{lastDay: -1 << 62}
		r.flows[k] = f
	}
	if d := e.TS.Unix() / 86400; d > f.lastDay {
		f.days++
		f.lastDay = d
	}
	f.largest = max(f.largest, e.Records)
	f.stores = addUnique(f.stores, e.Store, maxFlowItems)
	for _, c := range e.Fields {
		f.categories = addUnique(f.categories, c, maxFlowItems)
	}
	if e.TS.After(f.last) {
		f.last = e.TS
	}
}

func (r *Rules) checkConversation(e *models.Event, hit hitFunc) {
	if e.Conversation.ID == "" || e.SubjectID == "" {
		return
	}
	if (e.Actor.Type == models.ActorBot || e.Tool != "") && e.Conversation.SubjectID != "" && e.SubjectID != e.Conversation.SubjectID {
		hit(RuleBotCrossCustomer, e, "conversation_subject_id != '' AND subject_id != conversation_subject_id",
			1, 0, "tool "+e.Tool, e.Fields...)
	}
	k := convKey{e.Tenant, e.Conversation.ID}
	c := r.convs[k]
	if c == nil {
		c = &convState{}
		r.convs[k] = c
	}
	if e.TS.After(c.last) {
		c.last = e.TS
	}
	if c.fired || slices.Contains(c.subjects, e.SubjectID) {
		return
	}
	c.subjects = append(c.subjects, e.SubjectID)
	if len(c.subjects) > r.cfg.Rules.ConversationSubjects {
		c.fired = true
		hit(RuleConversationSubjects, e, "conversation_id = "+lit(e.Conversation.ID),
			float64(len(c.subjects)), float64(r.cfg.Rules.ConversationSubjects), "conversation "+e.Conversation.ID, e.Fields...)
	}
}

// sweep forgets idle conversations.
func (r *Rules) sweep(now time.Time) {
	idle := r.cfg.Rules.ConversationIdle
	if now.Sub(r.lastSweep) < idle/4 && len(r.convs) < 100000 {
		return
	}
	r.lastSweep = now
	for k, c := range r.convs {
		if now.Sub(c.last) > idle {
			delete(r.convs, k)
		}
	}
	for k, f := range r.flows {
		if now.Sub(f.last) > r.cfg.EvictIdleAfter {
			delete(r.flows, k)
		}
	}
}

func (r *Rules) checkConsent(e *models.Event, hit hitFunc) {
	if e.SubjectID == "" || !r.gated[e.Purpose] || e.Denied() {
		return
	}
	if w, at := r.consents.Withdrawn(e.Tenant, e.SubjectID, e.Purpose, e.TS); w {
		hit(RuleConsentWithdrawn, e, "purpose = "+lit(e.Purpose)+" AND subject_id = "+lit(e.SubjectID),
			1, 0, "purpose "+e.Purpose+" withdrawn "+at.UTC().Format(time.RFC3339), e.Fields...)
	}
}

func (r *Rules) checkPurpose(e *models.Event, hit hitFunc) {
	if e.Purpose == "" || len(e.Fields) == 0 || e.Denied() {
		return
	}
	allowed, ok := r.purposes[e.Purpose]
	if !ok || allowed == nil {
		return
	}
	for _, f := range e.Fields {
		if !allowed[f] {
			var bad []string
			for _, g := range e.Fields {
				if !allowed[g] {
					bad = append(bad, g)
				}
			}
			hit(RulePurposeCategory, e, "purpose = "+lit(e.Purpose)+" AND hasAny(fields, ["+strings.Trim(litList(bad), "()")+"])",
				float64(len(bad)), 0, "purpose "+e.Purpose, bad...)
			return
		}
	}
}

func (r *Rules) checkVendor(e *models.Event, hit hitFunc) {
	if e.Actor.Vendor == "" && e.Actor.Type != models.ActorVendor {
		return
	}
	v := r.vendors[e.Actor.Vendor]
	if v == nil {
		// No contract: the window detectors judge the vendor by its learned
		// scope (first_seen, off_hours against its own history, else its
		// vendor organisation's peers); the gap itself is reported once a
		// week per vendor.
		if !*r.cfg.Rules.UnknownVendor {
			return
		}
		k := convKey{e.Tenant, e.Actor.Vendor}
		if last, ok := r.noContract[k]; ok && e.TS.Sub(last) < NoContractEvery {
			return
		}
		r.noContract[k] = e.TS
		name := e.Actor.Vendor
		if name == "" {
			name = "(none named)"
		}
		hit(RuleVendorNoContract, e, "", 1, 0, "vendor "+name)
		return
	}
	var reasons []string
	var cats []string
	if len(v.stores) > 0 && !v.stores[e.Store] {
		reasons = append(reasons, "store "+e.Store)
	}
	if len(v.categories) > 0 {
		for _, f := range e.Fields {
			if !v.categories[f] {
				cats = append(cats, f)
			}
		}
		if len(cats) > 0 {
			reasons = append(reasons, "categories "+strings.Join(cats, ","))
		}
	}
	if v.hasHours || v.hasDays {
		t := e.TS.In(v.loc)
		if v.hasDays && !v.days[t.Weekday()] {
			reasons = append(reasons, "day "+t.Weekday().String())
		} else if v.hasHours && !inHours(t.Hour()*60+t.Minute(), v.from, v.to) {
			reasons = append(reasons, "time "+t.Format("15:04 MST"))
		}
	}
	if len(reasons) == 0 {
		return
	}
	hit(RuleVendorScope, e, "", float64(len(reasons)), 0, strings.Join(reasons, "; "), cats...)
}

// inHours reports whether minute m of the day is in [from, to), which may
// wrap midnight; from == to means the whole day.
func inHours(m, from, to int) bool {
	switch {
	case from == to:
		return true
	case from < to:
		return m >= from && m < to
	default:
		return m >= from || m < to
	}
}

func (r *Rules) finding(now time.Time, h *ruleHit) models.Finding {
	e := h.ev
	f := models.Finding{
		Detector: h.rule, Tenant: e.Tenant, ActorID: e.Actor.ID, ActorType: e.Actor.Type,
		ActorRole: e.Actor.Role, ActorVendor: e.Actor.Vendor,
		WindowStart: h.first, WindowEnd: h.last, DetectedAt: now,
		Score: float64(h.count), Severity: r.cfg.severity(h.rule),
		Evidence: models.Evidence{
			Observed: h.observed, Baseline: h.limit, Threshold: h.limit, BaselineSource: "rule",
			TopSubjects: h.subjects, TopStores: h.stores, Categories: h.categories, Destinations: h.dests,
			Records: h.records, Subjects: uint64(len(h.subjects)), EventIDs: h.ids,
			Notes: map[string]float64{"events": float64(h.count)},
		},
	}
	why := strings.Join(h.reasons, "; ")
	cond := h.cond
	switch h.rule {
	case RuleBulkAccess:
		f.Evidence.Metric = "records in one event"
		f.Summary = fmt.Sprintf("%s read %.0f records in one %s (limit %.0f)", e.Actor.ID, h.observed, why, h.limit)
	case RuleBotCrossCustomer:
		f.Evidence.Metric = "reads of a customer other than the conversation's"
		f.Summary = fmt.Sprintf("bot %s read %d record(s) of a customer other than the conversation's authenticated customer", e.Actor.ID, h.count)
	case RuleConversationSubjects:
		f.Evidence.Metric = "distinct customers in one conversation"
		f.Summary = fmt.Sprintf("%s read %.0f distinct customers in one conversation (limit %.0f)", e.Actor.ID, h.observed, h.limit)
	case RuleConsentWithdrawn:
		f.Evidence.Metric = "accesses after consent withdrawal"
		f.Summary = fmt.Sprintf("%s accessed %d record(s) for a purpose the customer withdrew consent for (%s)", e.Actor.ID, h.count, why)
		if len(h.subjects) > 1 {
			cond = "purpose = " + lit(e.Purpose) + " AND subject_id IN " + litList(h.subjects)
		}
	case RulePurposeCategory:
		f.Evidence.Metric = "categories outside the purpose policy"
		f.Summary = fmt.Sprintf("%s read %s under %s, which the purpose policy does not allow", e.Actor.ID, strings.Join(h.categories, ", "), why)
	case RuleVendorNoContract:
		f.Evidence.Metric = "vendor without a configured contract"
		f.Summary = fmt.Sprintf("%s has no contract configured (rules.vendors); its accesses are judged statistically against its own history and its vendor's other users; first seen with user %s (reported at most once a week)",
			why, e.Actor.ID)
	case RuleVendorScope:
		f.Evidence.Metric = "accesses outside the vendor contract"
		f.Summary = fmt.Sprintf("vendor %s user %s outside its contract: %s", e.Actor.Vendor, e.Actor.ID, why)
	case RuleDestinationAllowlist:
		f.Evidence.Metric = "shares and exports to a destination outside the allow-list"
		f.Summary = fmt.Sprintf("%s sent %d records in %d share(s)/export(s) to %s, which the destination allow-list does not name",
			e.Actor.ID, h.records, h.count, strings.Join(h.dests, ", "))
	}
	f.Evidence.Query = eventsQuery(e.Tenant, e.Actor.ID, h.first, h.last, cond)
	return f
}
