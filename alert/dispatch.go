package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// Options are the Dispatcher's collaborators. Store is required; every
// other field may be left zero.
type Options struct {
	Store *store.Store
	// Poster delivers to Slack; nil means Slack is off and notifications go
	// to the log only (alerts are still persisted).
	Poster Poster
	Log    *slog.Logger
	// Registerer receives the metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Exposure fills the blast radius of alerts whose finding has none.
	Exposure ExposureFunc
	// Digest builds the weekly digest (nil: no digest).
	Digest DigestFunc
	// Sources and Lag feed self-monitoring (nil: that check is off).
	Sources SourcesFunc
	Lag     LagFunc
	// Clock is read by Run only (default time.Now); Notify, Tick, Deliver
	// and Act take the time as an argument.
	Clock func() time.Time
}

// Dispatcher turns findings into alerts, groups them and delivers the
// groups' messages. Its methods are safe for concurrent use.
type Dispatcher struct {
	cfg      Config
	st       *store.Store
	poster   Poster
	log      *slog.Logger
	m        *metrics
	exposure ExposureFunc
	digestFn DigestFunc
	sources  SourcesFunc
	lag      LagFunc
	clock    func() time.Time
	loc      *time.Location
	digestWD time.Weekday
	digestAt time.Duration
	wake     chan struct{}

	mu         sync.Mutex
	loaded     bool
	ver        uint64
	alerts     map[string]*alertState // active alerts and those a live message shows
	byFP       map[string]string      // fingerprint -> active alert id
	groups     map[string]*group      // group key -> group
	msgs       map[string]*msgState   // live messages by id
	sups       []models.Suppression
	supsAt     time.Time
	chanNext   map[string]time.Time
	digestDone map[string]bool
	selfNext   time.Time
	lagSamples []int64
}

type alertState struct {
	row     store.AlertRow
	lastKey string // dedupe key of the latest finding folded in
}

func (a *alertState) view() AlertView {
	return AlertView{Alert: a.row.Alert, MutedBy: a.row.MutedBy, AckedAt: a.row.AckedAt, EscalatedAt: a.row.EscalatedAt}
}

// group is an aggregation group: the alerts routed to one channel about one
// (tenant, actor), shown in one Slack message.
type group struct {
	key, channel, tenant, actor string
	created                     time.Time
	alertIDs                    []string
	msgID                       string // empty until the first notification
	nextFlush                   time.Time
	lastNotify                  time.Time
	hash                        string
}

type msgState struct {
	row        store.AlertMessage
	body       messageBody
	hash       string
	nextTry    time.Time
	attempts   int
	uncertain  bool // a post may have reached Slack without us learning its ts
	inflight   bool
	dirty      bool // the latest state is not yet in ClickHouse
	firstQueue time.Time
}

// messageBody is the kind-specific part of a message row.
type messageBody struct {
	RemindedAt time.Time `json:"reminded_at,omitzero"`
	Digest     *Digest   `json:"digest,omitempty"`
}

// New returns a dispatcher. It validates cfg and loads nothing yet: state is
// read from the store on first use.
func New(cfg Config, o Options) (*Dispatcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.Store == nil {
		return nil, errors.New("alert: a store is required")
	}
	cfg = cfg.WithDefaults()
	loc, _ := time.LoadLocation(cfg.Digest.TZ)
	wd, _ := parseWeekday(cfg.Digest.Weekday)
	at, _ := time.Parse("15:04", cfg.Digest.At)
	d := &Dispatcher{
		cfg: cfg, st: o.Store, poster: o.Poster, log: o.Log, m: newMetrics(o.Registerer),
		exposure: o.Exposure, digestFn: o.Digest, sources: o.Sources, lag: o.Lag, clock: o.Clock,
		loc: loc, digestWD: wd, digestAt: time.Duration(at.Hour())*time.Hour + time.Duration(at.Minute())*time.Minute,
		wake:   make(chan struct{}, 1),
		alerts: map[string]*alertState{}, byFP: map[string]string{}, groups: map[string]*group{},
		msgs: map[string]*msgState{}, chanNext: map[string]time.Time{}, digestDone: map[string]bool{},
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.clock == nil {
		d.clock = time.Now
	}
	return d, nil
}

// Config returns the effective configuration (defaults applied).
func (d *Dispatcher) Config() Config { return d.cfg }

// nextVersion returns a row version larger than every one written before.
func (d *Dispatcher) nextVersion(now time.Time) uint64 {
	v := uint64(now.UnixNano())
	if v <= d.ver {
		v = d.ver + 1
	}
	d.ver = v
	return v
}

func (d *Dispatcher) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// ensureLoaded reads active alerts and live messages from the store once.
func (d *Dispatcher) ensureLoaded(ctx context.Context, now time.Time) error {
	if d.loaded {
		return nil
	}
	rows, err := d.st.ActiveAlerts(ctx)
	if err != nil {
		return fmt.Errorf("loading active alerts: %w", err)
	}
	msgs, err := d.st.OpenAlertMessages(ctx)
	if err != nil {
		return fmt.Errorf("loading alert messages: %w", err)
	}
	for _, r := range rows {
		d.alerts[r.Alert.ID] = &alertState{row: r, lastKey: findingKey(&r.Alert.Latest)}
		d.byFP[r.Alert.Fingerprint] = r.Alert.ID
		d.ver = max(d.ver, r.Version)
	}
	var missing []string
	for _, m := range msgs {
		ms := &msgState{row: m, uncertain: m.TS == "" && !m.IntentAt.IsZero()}
		if m.Body != "" {
			if err := json.Unmarshal([]byte(m.Body), &ms.body); err != nil {
				return fmt.Errorf("decoding body of alert message %s: %w", m.ID, err)
			}
		}
		d.msgs[m.ID] = ms
		d.ver = max(d.ver, m.Version)
		for _, id := range m.AlertIDs {
			if d.alerts[id] == nil {
				missing = append(missing, id)
			}
		}
		if m.Kind == string(KindDigest) {
			d.digestDone[m.ID] = true
		}
	}
	if len(missing) > 0 {
		more, err := d.st.AlertsByID(ctx, missing)
		if err != nil {
			return fmt.Errorf("loading alerts of live messages: %w", err)
		}
		for _, r := range more {
			d.alerts[r.Alert.ID] = &alertState{row: r}
			d.ver = max(d.ver, r.Version)
		}
	}
	grouped := map[string]bool{}
	for _, ms := range d.msgs {
		m := ms.row
		if m.Kind != string(KindGroup) || m.Closed {
			continue
		}
		g := &group{key: m.GroupKey, channel: m.Channel, tenant: m.Tenant, actor: m.ActorID, created: m.CreatedAt,
			alertIDs: append([]string(nil), m.AlertIDs...), msgID: m.ID, nextFlush: now, lastNotify: m.UpdatedAt}
		if !ms.body.RemindedAt.IsZero() {
			g.lastNotify = ms.body.RemindedAt
		}
		g.hash = d.groupHash(g)
		d.groups[g.key] = g
		for _, id := range g.alertIDs {
			grouped[id+"|"+g.channel] = true
		}
	}
	for _, ms := range d.msgs {
		if ms.row.Kind == string(KindEscalation) {
			ms.hash = d.escalationHash(ms)
		}
	}
	// Active alerts whose group had not been notified before a restart.
	for _, a := range d.alerts {
		if terminal(a.row.Alert.Status) {
			continue
		}
		for _, ch := range d.cfg.channels(&a.row.Alert) {
			if !grouped[a.row.Alert.ID+"|"+ch] {
				d.addToGroup(ch, a, now, now)
			}
		}
	}
	d.loaded = true
	d.log.Info("alert state loaded", "active_alerts", len(rows), "live_messages", len(msgs), "groups", len(d.groups))
	return nil
}

func terminal(s models.AlertStatus) bool {
	return s == models.StatusResolved || s == models.StatusFalsePositive
}

// refreshSuppressions re-reads the suppressions register every 10 s (of now).
func (d *Dispatcher) refreshSuppressions(ctx context.Context, now time.Time, force bool) {
	if !force && !d.supsAt.IsZero() && now.Sub(d.supsAt) < 10*time.Second && !now.Before(d.supsAt) {
		return
	}
	sups, err := d.st.Suppressions(ctx, now)
	if err != nil {
		d.m.storeErrors.Inc()
		d.log.Warn("reading suppressions; keeping the previous ones", "err", err)
		return
	}
	d.sups, d.supsAt = sups, now
}

// findingKey identifies a finding for dedupe: the same detector run on the
// same window (or the same event) is folded in once.
func findingKey(f *models.Finding) string {
	k := f.WindowStart.UTC().Format(time.RFC3339Nano) + "|" + f.WindowEnd.UTC().Format(time.RFC3339Nano)
	if len(f.Evidence.EventIDs) > 0 {
		k += "|" + f.Evidence.EventIDs[0]
	}
	return k
}

// isEventRule reports whether f comes from a per-event rule.
func (d *Dispatcher) isEventRule(f *models.Finding) bool {
	return f.Evidence.BaselineSource == "rule" || contains(d.cfg.EventRules, f.Detector)
}

// plan collects the rows one step writes. Nothing in memory changes until
// the rows are in ClickHouse (commit).
type plan struct {
	alerts  map[string]store.AlertRow
	order   []string
	changes []store.AlertChange
	msgs    map[string]store.AlertMessage
	after   []func()
}

func newPlan() *plan {
	return &plan{alerts: map[string]store.AlertRow{}, msgs: map[string]store.AlertMessage{}}
}

func (p *plan) empty() bool { return len(p.alerts) == 0 && len(p.msgs) == 0 && len(p.changes) == 0 }

// row returns the planned version of alert id, or the current one.
func (p *plan) row(d *Dispatcher, id string) (store.AlertRow, bool) {
	if r, ok := p.alerts[id]; ok {
		return r, true
	}
	if a := d.alerts[id]; a != nil {
		return a.row, true
	}
	return store.AlertRow{}, false
}

func (p *plan) putAlert(d *Dispatcher, now time.Time, r store.AlertRow) {
	r.Version = d.nextVersion(now)
	if _, ok := p.alerts[r.Alert.ID]; !ok {
		p.order = append(p.order, r.Alert.ID)
	}
	p.alerts[r.Alert.ID] = r
}

// setStatus plans a status change of r and its audit row.
func (p *plan) setStatus(d *Dispatcher, now time.Time, r store.AlertRow, to models.AlertStatus, by, note string) store.AlertRow {
	from := r.Alert.Status
	r.Alert.Status, r.Alert.UpdatedAt, r.Alert.UpdatedBy = to, now, by
	p.putAlert(d, now, r)
	p.changes = append(p.changes, store.AlertChange{AlertID: r.Alert.ID, At: now, Status: to, Previous: from, By: by,
		Note: note, Tenant: r.Alert.Tenant, ActorID: r.Alert.ActorID, Detector: r.Alert.Detector, Severity: r.Alert.Severity})
	return r
}

func (p *plan) putMsg(d *Dispatcher, now time.Time, m store.AlertMessage) {
	m.Version, m.UpdatedAt = d.nextVersion(now), now
	p.msgs[m.ID] = m
}

// commit writes the plan (alerts, then changes, then messages) and applies
// it to memory when every write succeeded.
func (d *Dispatcher) commit(ctx context.Context, p *plan) error {
	if p.empty() {
		for _, f := range p.after {
			f()
		}
		return nil
	}
	rows := make([]store.AlertRow, 0, len(p.order))
	for _, id := range p.order {
		rows = append(rows, p.alerts[id])
	}
	if err := d.st.PutAlerts(ctx, rows); err != nil {
		d.m.storeErrors.Inc()
		return err
	}
	if err := d.st.PutAlertChanges(ctx, p.changes); err != nil {
		d.m.storeErrors.Inc()
		return err
	}
	msgs := make([]store.AlertMessage, 0, len(p.msgs))
	for _, m := range p.msgs {
		msgs = append(msgs, m)
	}
	sort.Slice(msgs, func(i, j int) bool { return msgs[i].ID < msgs[j].ID })
	if err := d.st.PutAlertMessages(ctx, msgs); err != nil {
		d.m.storeErrors.Inc()
		return err
	}
	for _, r := range rows {
		a := d.alerts[r.Alert.ID]
		if a == nil {
			a = &alertState{}
			d.alerts[r.Alert.ID] = a
		}
		a.row = r
		a.lastKey = findingKey(&r.Alert.Latest)
		if terminal(r.Alert.Status) {
			if d.byFP[r.Alert.Fingerprint] == r.Alert.ID {
				delete(d.byFP, r.Alert.Fingerprint)
			}
		} else {
			d.byFP[r.Alert.Fingerprint] = r.Alert.ID
		}
	}
	for _, c := range p.changes {
		d.m.changes.WithLabelValues(string(c.Status)).Inc()
	}
	for _, m := range msgs {
		ms := d.msgs[m.ID]
		if ms == nil {
			ms = &msgState{firstQueue: m.CreatedAt}
			d.msgs[m.ID] = ms
		}
		ms.row = m
		if m.Body != "" {
			_ = json.Unmarshal([]byte(m.Body), &ms.body)
		}
	}
	for _, f := range p.after {
		f()
	}
	return nil
}

// Notify folds findings into alerts and persists them. A critical
// event-rule finding flushes its group at once; a new group holding an
// urgent alert (severity >= urgent_severity) waits urgent_group_wait (by
// default it is flushed at once too); the rest wait for their group's timer
// (Tick). It returns an error when the alerts could not be
// written; nothing is sent in that case, and calling again with the same
// findings is safe (they are deduplicated).
func (d *Dispatcher) Notify(ctx context.Context, now time.Time, fs ...models.Finding) error {
	if len(fs) == 0 {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.ensureLoaded(ctx, now); err != nil {
		return err
	}
	d.refreshSuppressions(ctx, now, false)
	if err := d.notifyLocked(ctx, now, fs); err != nil {
		return err
	}
	d.poke()
	return nil
}

func (d *Dispatcher) notifyLocked(ctx context.Context, now time.Time, fs []models.Finding) error {
	p := newPlan()
	fps := map[string]string{} // fingerprints opened in this call
	immediate := map[string]bool{}
	urgent := map[string]bool{}
	inhibitors := d.inhibitors(p)
	for i := range fs {
		f := fs[i]
		d.m.findings.Inc()
		if f.Tenant == "" {
			f.Tenant = "default"
		}
		fp := f.Fingerprint()
		id, ok := fps[fp]
		if !ok {
			id, ok = d.byFP[fp]
		}
		var r store.AlertRow
		isNew := !ok
		if ok {
			r, _ = p.row(d, id)
			if terminal(r.Alert.Status) {
				isNew = true
			} else if findingKey(&r.Alert.Latest) == findingKey(&f) && r.Alert.Latest.Detector == f.Detector {
				d.m.duplicates.Inc()
				continue
			}
		}
		rose := false
		if isNew {
			d.fillExposure(ctx, &f)
			id = fp + "-" + strconv.FormatInt(now.UnixNano(), 36)
			r = store.AlertRow{Alert: models.Alert{ID: id, Fingerprint: fp, Detector: f.Detector, Tenant: f.Tenant,
				ActorID: f.ActorID, ActorType: f.ActorType, Severity: f.Severity, FirstSeen: now, LastSeen: now,
				Findings: 1, Latest: f}}
			fps[fp] = id
			d.m.opened.Inc()
		} else {
			rose = f.Severity > r.Alert.Severity
			if f.Severity >= r.Alert.Severity || !f.DetectedAt.Before(r.Alert.Latest.DetectedAt) {
				if f.Evidence.Subjects == 0 && f.Evidence.Records == 0 && len(f.Evidence.Categories) == 0 {
					f.Evidence.Subjects, f.Evidence.Records = r.Alert.Latest.Evidence.Subjects, r.Alert.Latest.Evidence.Records
					f.Evidence.Categories = r.Alert.Latest.Evidence.Categories
				}
				r.Alert.Latest = f
			}
			r.Alert.Severity = max(r.Alert.Severity, f.Severity)
			if r.Alert.ActorType == "" {
				r.Alert.ActorType = f.ActorType
			}
			r.Alert.Findings++
			r.Alert.LastSeen = now
		}
		muted := d.muteReason(&r.Alert, inhibitors)
		if muted != "" {
			d.m.muted.Inc()
		}
		switch {
		case isNew && muted != "":
			r.MutedBy = muted
			r = p.setStatus(d, now, r, models.StatusSilenced, "chatwarden", "muted by "+muted)
		case isNew:
			r = p.setStatus(d, now, r, models.StatusOpen, "chatwarden", f.Summary)
		case muted != r.MutedBy:
			r.MutedBy = muted
			if muted != "" {
				r = p.setStatus(d, now, r, models.StatusSilenced, "chatwarden", "muted by "+muted)
			} else {
				r = p.setStatus(d, now, r, restored(r), "chatwarden", "no longer muted")
			}
		default:
			p.putAlert(d, now, r)
		}
		if r.Alert.Severity == models.SeverityCritical && muted == "" && !isSelf(r.Alert.Detector) {
			inhibitors[r.Alert.Tenant+"|"+r.Alert.ActorID] = r.Alert.ID
		}
		if r.Alert.Severity == models.SeverityCritical && d.isEventRule(&f) && (isNew || rose) {
			immediate[r.Alert.ID] = true
		}
		if r.Alert.Severity >= *d.cfg.UrgentSeverity && muted == "" && (isNew || rose) {
			urgent[r.Alert.ID] = true
		}
	}
	// Group membership follows the commit: the alert rows exist first.
	ids := append([]string(nil), p.order...)
	due := false
	p.after = append(p.after, func() {
		for _, id := range ids {
			a := d.alerts[id]
			for _, ch := range d.cfg.channels(&a.row.Alert) {
				g := d.addToGroup(ch, a, now, now.Add(d.cfg.GroupWait))
				switch {
				case immediate[id]:
					g.nextFlush = now
				case urgent[id] && g.msgID == "" && g.nextFlush.After(now.Add(d.cfg.UrgentGroupWait)):
					// The group's first message waits urgent_group_wait
					// only; once posted, the group_interval applies.
					g.nextFlush = now.Add(d.cfg.UrgentGroupWait)
				}
				if !g.nextFlush.After(now) {
					due = true
				}
			}
		}
	})
	if err := d.commit(ctx, p); err != nil {
		return fmt.Errorf("persisting alerts of %d findings: %w", len(fs), err)
	}
	if len(immediate) > 0 || due {
		if err := d.flushDue(ctx, now); err != nil {
			return err
		}
	}
	return nil
}

// restored is the status an alert returns to when it is no longer muted.
func restored(r store.AlertRow) models.AlertStatus {
	switch {
	case !r.AckedAt.IsZero():
		return models.StatusAcknowledged
	case !r.EscalatedAt.IsZero():
		return models.StatusEscalated
	}
	return models.StatusOpen
}

// fillExposure adds the blast radius to a finding that carries none.
func (d *Dispatcher) fillExposure(ctx context.Context, f *models.Finding) {
	ev := &f.Evidence
	if d.exposure == nil || ev.Subjects > 0 || ev.Records > 0 || len(ev.Categories) > 0 || isSelf(f.Detector) {
		return
	}
	from, to := f.WindowStart, f.WindowEnd
	if from.IsZero() || to.IsZero() {
		return
	}
	if !to.After(from) {
		from, to = from.Add(-time.Minute), to.Add(time.Minute)
	}
	subj, recs, cats, err := d.exposure(ctx, f.Tenant, f.ActorID, from, to)
	if err != nil {
		d.m.storeErrors.Inc()
		d.log.Warn("reading blast radius; the message shows none", "detector", f.Detector, "tenant", f.Tenant, "err", err)
		return
	}
	ev.Subjects, ev.Records, ev.Categories = subj, recs, cats
}

// inhibitors maps "tenant|actor" to an active, unmuted critical alert.
func (d *Dispatcher) inhibitors(p *plan) map[string]string {
	out := map[string]string{}
	for id := range d.alerts {
		r, _ := p.row(d, id)
		a := &r.Alert
		if a.Severity == models.SeverityCritical && !terminal(a.Status) && r.MutedBy == "" && !isSelf(a.Detector) {
			if cur, ok := out[a.Tenant+"|"+a.ActorID]; !ok || id < cur {
				out[a.Tenant+"|"+a.ActorID] = id
			}
		}
	}
	return out
}

// muteReason says what keeps a quiet: a matching suppression, or a critical
// alert on the same actor (inhibition); "" when nothing does.
func (d *Dispatcher) muteReason(a *models.Alert, inhibitors map[string]string) string {
	stores := a.Latest.Evidence.TopStores
	if len(stores) == 0 {
		stores = []string{""}
	}
	for i := range d.sups {
		sp := &d.sups[i]
		if isSelf(a.Detector) && sp.MatchesEverything() {
			continue // a silence on everything must not hide the alert about it
		}
		for _, st := range stores {
			if sp.Matches(a.Detector, a.Tenant, a.ActorID, st) {
				return sp.ID
			}
		}
	}
	if a.Severity < models.SeverityCritical {
		if id, ok := inhibitors[a.Tenant+"|"+a.ActorID]; ok && id != a.ID {
			return "inhibited:" + id
		}
	}
	return ""
}

// groupKey names the aggregation group of (channel, tenant, actor).
func groupKey(channel, tenant, actor string) string {
	return channel + "|" + tenant + "|" + actor
}

func (d *Dispatcher) addToGroup(channel string, a *alertState, now, flushAt time.Time) *group {
	k := groupKey(channel, a.row.Alert.Tenant, a.row.Alert.ActorID)
	g := d.groups[k]
	if g == nil {
		g = &group{key: k, channel: channel, tenant: a.row.Alert.Tenant, actor: a.row.Alert.ActorID,
			created: now, nextFlush: flushAt}
		d.groups[k] = g
	}
	if !contains(g.alertIDs, a.row.Alert.ID) {
		g.alertIDs = append(g.alertIDs, a.row.Alert.ID)
	}
	return g
}

// groupHash summarizes what a group message shows, so that an unchanged
// group is not re-sent.
func (d *Dispatcher) groupHash(g *group) string {
	var b strings.Builder
	for _, id := range g.alertIDs {
		a := d.alerts[id]
		if a == nil {
			continue
		}
		r := a.row
		fmt.Fprintf(&b, "%s %s %d %s %t;", id, r.Alert.Status, r.Alert.Severity, r.MutedBy, !r.EscalatedAt.IsZero())
	}
	return b.String()
}

func (d *Dispatcher) escalationHash(ms *msgState) string {
	var b strings.Builder
	for _, id := range ms.row.AlertIDs {
		if a := d.alerts[id]; a != nil {
			fmt.Fprintf(&b, "%s %s %d;", id, a.row.Alert.Status, a.row.Alert.Severity)
		}
	}
	return b.String()
}

func shortHash(s string) string {
	h := fnv.New64a()
	h.Write([]byte(s))
	return strconv.FormatUint(h.Sum64(), 36)
}

// flushDue evaluates every group whose timer is due at now.
func (d *Dispatcher) flushDue(ctx context.Context, now time.Time) error {
	p := newPlan()
	var notified []*group
	type upd struct {
		g          *group
		hash       string
		notify     bool
		drop       bool
		remindedAt time.Time
	}
	var ups []upd
	keys := make([]string, 0, len(d.groups))
	for k := range d.groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		g := d.groups[k]
		if now.Before(g.nextFlush) {
			continue
		}
		h := d.groupHash(g)
		firing, done := false, true
		for _, id := range g.alertIDs {
			a := d.alerts[id]
			if a == nil {
				continue
			}
			s := a.row.Alert.Status
			if !terminal(s) {
				done = false
			}
			if (s == models.StatusOpen || s == models.StatusEscalated) && a.row.MutedBy == "" {
				firing = true
			}
		}
		u := upd{g: g, hash: h}
		switch {
		case g.msgID == "" && done:
			u.drop = true // everything ended before anyone was told
		case g.msgID == "" && firing:
			u.notify = true
		case g.msgID == "":
			// only muted alerts so far: nothing to say yet
		case h != g.hash:
			u.notify, u.drop = true, done
		case firing && now.Sub(g.lastNotify) >= d.cfg.RepeatInterval:
			u.notify, u.remindedAt = true, now
		}
		if u.notify {
			if d.poster == nil {
				d.logGroup(g, now)
			} else {
				var m store.AlertMessage
				if ms := d.msgs[g.msgID]; ms != nil {
					m = ms.row
				} else {
					m = store.AlertMessage{ID: "g" + shortHash(g.key) + "-" + strconv.FormatInt(now.UnixNano(), 36),
						Kind: string(KindGroup), Channel: g.channel, GroupKey: g.key, Tenant: g.tenant, ActorID: g.actor,
						CreatedAt: now}
					g.msgID = m.ID
				}
				m.AlertIDs = append([]string(nil), g.alertIDs...)
				m.Rev++
				m.Closed = done
				if !u.remindedAt.IsZero() {
					b, _ := json.Marshal(messageBody{RemindedAt: u.remindedAt})
					m.Body = string(b)
				}
				p.putMsg(d, now, m)
				notified = append(notified, g)
			}
		}
		ups = append(ups, u)
	}
	p.after = append(p.after, func() {
		for _, u := range ups {
			g := u.g
			g.nextFlush = now.Add(d.cfg.GroupInterval)
			if u.notify {
				g.hash, g.lastNotify = u.hash, now
			}
			if u.drop {
				delete(d.groups, g.key)
			}
		}
	})
	if err := d.commit(ctx, p); err != nil {
		for _, g := range notified {
			if ms := d.msgs[g.msgID]; ms == nil {
				g.msgID = "" // the message row was not written: create it next time
			}
		}
		return fmt.Errorf("persisting group notifications: %w", err)
	}
	if len(notified) > 0 {
		d.poke()
	}
	return nil
}

// logGroup is the notification when Slack is off.
func (d *Dispatcher) logGroup(g *group, now time.Time) {
	for _, id := range g.alertIDs {
		a := d.alerts[id]
		if a == nil {
			continue
		}
		r := a.row.Alert
		d.log.Info("alert (Slack is off)", "alert", r.ID, "detector", r.Detector, "tenant", r.Tenant, "actor", r.ActorID,
			"severity", r.Severity, "status", r.Status, "muted_by", a.row.MutedBy, "findings", r.Findings,
			"summary", r.Latest.Summary, "channel", g.channel)
	}
}

// Tick runs the timers at now: resolution, silences and inhibition,
// escalation, group flushes, the weekly digest and self-monitoring. Run
// calls it; tests call it with a simulated clock.
func (d *Dispatcher) Tick(ctx context.Context, now time.Time) error {
	d.mu.Lock()
	if err := d.ensureLoaded(ctx, now); err != nil {
		d.mu.Unlock()
		return err
	}
	d.refreshSuppressions(ctx, now, false)
	var errs []error
	if err := d.evaluate(ctx, now); err != nil {
		errs = append(errs, err)
	}
	if err := d.flushDue(ctx, now); err != nil {
		errs = append(errs, err)
	}
	if err := d.updateEscalations(ctx, now); err != nil {
		errs = append(errs, err)
	}
	d.writeDirty(ctx, now)
	d.m.unsent.Set(float64(d.unsentLocked()))
	selfDue := !now.Before(d.selfNext)
	if selfDue {
		d.selfNext = now.Add(d.cfg.Self.CheckEvery)
	}
	d.mu.Unlock()
	if selfDue {
		if err := d.selfCheck(ctx, now); err != nil {
			errs = append(errs, err)
		}
	}
	if err := d.scheduleDigest(ctx, now); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// evaluate applies resolution, mute changes and escalation to active alerts.
func (d *Dispatcher) evaluate(ctx context.Context, now time.Time) error {
	p := newPlan()
	inhibitors := d.inhibitors(p)
	// Alerts resolving now no longer inhibit.
	for k, id := range inhibitors {
		if now.Sub(d.alerts[id].row.Alert.LastSeen) >= d.cfg.ResolveTimeout {
			delete(inhibitors, k)
		}
	}
	ids := make([]string, 0, len(d.alerts))
	for id := range d.alerts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var escalate []string
	for _, id := range ids {
		r := d.alerts[id].row
		if terminal(r.Alert.Status) {
			continue
		}
		if now.Sub(r.Alert.LastSeen) >= d.cfg.ResolveTimeout {
			p.setStatus(d, now, r, models.StatusResolved, "chatwarden",
				fmt.Sprintf("no finding for %s", d.cfg.ResolveTimeout))
			continue
		}
		if muted := d.muteReason(&r.Alert, inhibitors); muted != r.MutedBy {
			r.MutedBy = muted
			if muted != "" {
				r = p.setStatus(d, now, r, models.StatusSilenced, "chatwarden", "muted by "+muted)
			} else {
				r = p.setStatus(d, now, r, restored(r), "chatwarden", "no longer muted")
			}
		}
		if r.Alert.Severity == models.SeverityCritical && r.Alert.Status == models.StatusOpen && r.MutedBy == "" &&
			r.EscalatedAt.IsZero() && now.Sub(r.Alert.FirstSeen) >= d.cfg.EscalateAfter {
			escalate = append(escalate, id)
		}
	}
	for _, id := range escalate {
		d.planEscalation(p, now, id, "chatwarden", fmt.Sprintf("not acknowledged within %s", d.cfg.EscalateAfter))
	}
	if err := d.commit(ctx, p); err != nil {
		return fmt.Errorf("persisting alert state changes: %w", err)
	}
	return nil
}

// planEscalation marks alert id escalated and plans its escalation message;
// the groups showing it are flushed at once.
func (d *Dispatcher) planEscalation(p *plan, now time.Time, id, by, note string) {
	r, ok := p.row(d, id)
	if !ok || terminal(r.Alert.Status) || !r.EscalatedAt.IsZero() {
		return
	}
	r.EscalatedAt = now
	st := models.StatusEscalated
	if !r.AckedAt.IsZero() {
		st = models.StatusAcknowledged
	}
	if r.MutedBy != "" {
		st = models.StatusSilenced
	}
	p.setStatus(d, now, r, st, by, "escalated: "+note)
	if d.poster != nil {
		p.putMsg(d, now, store.AlertMessage{ID: "e-" + id, Kind: string(KindEscalation), Channel: d.cfg.EscalationChannel,
			GroupKey: "escalation|" + id, Tenant: r.Alert.Tenant, ActorID: r.Alert.ActorID, AlertIDs: []string{id},
			Rev: 1, CreatedAt: now})
	} else {
		d.log.Warn("alert escalated (Slack is off)", "alert", id, "detector", r.Alert.Detector, "tenant", r.Alert.Tenant,
			"actor", r.Alert.ActorID, "by", by, "reason", note)
	}
	p.after = append(p.after, func() {
		for _, g := range d.groups {
			if contains(g.alertIDs, id) {
				g.nextFlush = now
			}
		}
		if ms := d.msgs["e-"+id]; ms != nil {
			ms.hash = d.escalationHash(ms)
		}
	})
}

// updateEscalations re-renders escalation messages whose alert changed.
func (d *Dispatcher) updateEscalations(ctx context.Context, now time.Time) error {
	p := newPlan()
	hashes := map[string]string{}
	for id, ms := range d.msgs {
		if ms.row.Kind != string(KindEscalation) || ms.row.Closed {
			continue
		}
		h := d.escalationHash(ms)
		if h == ms.hash {
			continue
		}
		m := ms.row
		m.Rev++
		done := true
		for _, aid := range m.AlertIDs {
			if a := d.alerts[aid]; a != nil && !terminal(a.row.Alert.Status) {
				done = false
			}
		}
		m.Closed = done
		p.putMsg(d, now, m)
		hashes[id] = h
	}
	p.after = append(p.after, func() {
		for id, h := range hashes {
			d.msgs[id].hash = h
		}
	})
	if err := d.commit(ctx, p); err != nil {
		return fmt.Errorf("persisting escalation updates: %w", err)
	}
	if len(hashes) > 0 {
		d.poke()
	}
	return nil
}

// writeDirty retries writes of delivery results that failed before.
func (d *Dispatcher) writeDirty(ctx context.Context, now time.Time) {
	var rows []store.AlertMessage
	var dirty []*msgState
	for _, ms := range d.msgs {
		if ms.dirty && !ms.inflight {
			ms.row.Version, ms.row.UpdatedAt = d.nextVersion(now), now
			rows = append(rows, ms.row)
			dirty = append(dirty, ms)
		}
	}
	if len(rows) == 0 {
		return
	}
	if err := d.st.PutAlertMessages(ctx, rows); err != nil {
		d.m.storeErrors.Inc()
		d.log.Warn("recording delivered messages; will retry", "messages", len(rows), "err", err)
		return
	}
	for _, ms := range dirty {
		ms.dirty = false
	}
	d.forgetDone()
}

// forgetDone drops delivered, closed messages and the alerts only they
// referenced from memory.
func (d *Dispatcher) forgetDone() {
	for id, ms := range d.msgs {
		if ms.row.Closed && ms.row.SentRev >= ms.row.Rev && !ms.dirty && !ms.inflight {
			delete(d.msgs, id)
		}
	}
	if len(d.alerts) < 1024 {
		return
	}
	used := map[string]bool{}
	for _, g := range d.groups {
		for _, id := range g.alertIDs {
			used[id] = true
		}
	}
	for _, ms := range d.msgs {
		for _, id := range ms.row.AlertIDs {
			used[id] = true
		}
	}
	for id, a := range d.alerts {
		if terminal(a.row.Alert.Status) && !used[id] {
			delete(d.alerts, id)
		}
	}
}

func (d *Dispatcher) unsentLocked() int {
	n := 0
	for _, ms := range d.msgs {
		if ms.row.Rev > ms.row.SentRev {
			n++
		}
	}
	return n
}

// Unsent returns how many messages have a revision Slack does not show yet.
func (d *Dispatcher) Unsent() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.unsentLocked()
}

// investigateURL links to the investigate page for an actor and window.
func (d *Dispatcher) investigateURL(tenant, actor string, from, to time.Time) string {
	if d.cfg.InvestigateURL == "" {
		return ""
	}
	q := url.Values{}
	q.Set("actor", actor)
	q.Set("tenant", tenant)
	q.Set("from", from.UTC().Format(time.RFC3339))
	q.Set("to", to.UTC().Format(time.RFC3339))
	return strings.TrimRight(d.cfg.InvestigateURL, "/") + "/investigate?" + q.Encode()
}

// render builds what message ms shows from the current alert states.
func (d *Dispatcher) render(ms *msgState) *Message {
	m := &Message{ID: ms.row.ID, Kind: MessageKind(ms.row.Kind), Rev: ms.row.Rev, Tenant: ms.row.Tenant,
		ActorID: ms.row.ActorID, MaxListed: d.cfg.MaxListed, EscalationChannel: d.cfg.EscalationChannel,
		EscalateAfter: d.cfg.EscalateAfter, RemindedAt: ms.body.RemindedAt, Closed: ms.row.Closed, Digest: ms.body.Digest}
	var from, to time.Time
	for _, id := range ms.row.AlertIDs {
		a := d.alerts[id]
		if a == nil {
			continue
		}
		v := a.view()
		m.Alerts = append(m.Alerts, v)
		start := v.Latest.WindowStart
		if start.IsZero() || v.FirstSeen.Before(start) {
			start = v.FirstSeen
		}
		end := v.Latest.WindowEnd
		if end.Before(v.LastSeen) {
			end = v.LastSeen
		}
		if from.IsZero() || start.Before(from) {
			from = start
		}
		if end.After(to) {
			to = end
		}
	}
	SortAlerts(m.Alerts)
	if m.Kind != KindDigest && len(m.Alerts) > 0 {
		m.InvestigateURL = d.investigateURL(m.Tenant, m.ActorID, from.Add(-15*time.Minute), to.Add(15*time.Minute))
	}
	return m
}

// SortAlerts orders alerts worst first: unmuted before muted, active before
// ended, higher severity, more findings, then id.
func SortAlerts(vs []AlertView) {
	rank := func(v *AlertView) int {
		switch {
		case terminal(v.Status):
			return 2
		case v.Muted():
			return 1
		}
		return 0
	}
	sort.SliceStable(vs, func(i, j int) bool {
		a, b := &vs[i], &vs[j]
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra < rb
		}
		if a.Severity != b.Severity {
			return a.Severity > b.Severity
		}
		if a.Findings != b.Findings {
			return a.Findings > b.Findings
		}
		return a.ID < b.ID
	})
}

// Run evaluates timers and delivers every SendEvery (sooner when woken by
// new work) until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) error {
	if d.poster == nil {
		d.log.Info("Slack is off (no alert.slack.token): alerts go to ClickHouse and the log only")
	} else {
		d.log.Info("alerting to Slack", "default_channel", d.cfg.DefaultChannel, "escalation_channel", d.cfg.EscalationChannel)
	}
	t := time.NewTicker(d.cfg.SendEvery)
	defer t.Stop()
	for {
		now := d.clock()
		if err := d.Tick(ctx, now); err != nil && ctx.Err() == nil {
			d.log.Warn("alert timers", "err", err)
		}
		if _, err := d.Deliver(ctx, d.clock()); err != nil && ctx.Err() == nil {
			d.log.Warn("delivering alert messages", "err", err)
		}
		select {
		case <-ctx.Done():
			d.flushOnStop(ctx)
			return nil
		case <-t.C:
		case <-d.wake:
		}
	}
}

// flushOnStop records delivery results whose write the cancelled context
// interrupted (a message Slack shows but ClickHouse does not know was sent),
// so that a restart updates it instead of searching Slack's history for it.
func (d *Dispatcher) flushOnStop(ctx context.Context) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.writeDirty(wctx, d.clock())
}
