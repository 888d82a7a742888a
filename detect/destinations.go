package detect

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// Third-party sharing: the events whose destination (access.v1's optional
// destination on share and export) names who outside the company received
// the data. Three detectors:
//
//   - destination_allowlist (event rule): a destination outside the
//     tenant's configured allow-list;
//   - destination_new (window): a destination new to the actor and rare in
//     the tenant (few actors and few days ever sent data to it), unless the
//     allow-list names it;
//   - destination_volume (window): the records sent to a destination in
//     the current clock hour far above the destination's own hours, as a
//     calibrated tail probability (a Student-t predictive on the log of its
//     past hourly volumes).

// DestinationsConfig configures third-party sharing detection
// (detect.destinations).
type DestinationsConfig struct {
	// Allow lists the destinations every tenant may send data to: exact
	// names (compared without letter case) or "*.domain" for any subdomain
	// of domain. Empty (with no Tenants entry): destination_allowlist does
	// not run for the tenant.
	Allow []string `yaml:"allow,omitempty"`
	// Tenants adds destinations per tenant to Allow.
	Tenants map[string][]string `yaml:"tenants,omitempty"`
	// RareActors and RareDays: a destination is rare in its tenant while
	// fewer than RareActors actors sent data to it and on fewer than
	// RareDays days (defaults 3 and 3).
	RareActors int `yaml:"rare_actors"`
	RareDays   int `yaml:"rare_days"`
	// WarmupDays is how long the engine must have watched a tenant before
	// destination_new judges it: before that every destination looks new
	// (default 1: a day shows the destinations used daily; at start-up the
	// back-fill replays detect.backfill_days of history, so only a new
	// deployment waits).
	WarmupDays int `yaml:"warmup_days"`
	// VolumeTailProb: destination_volume fires when the hour's records are
	// this improbable under the destination's own hours (default 1e-4:
	// with a few dozen destination-hours judged a day, about one false
	// alert in a year of a calibrated model).
	VolumeTailProb float64 `yaml:"volume_tail_prob"`
	// VolumeMinHours is how many hours with data a destination needs before
	// its volume is judged (default 5).
	VolumeMinHours int `yaml:"volume_min_hours"`
	// VolumeMin is the least excess of records over the destination's
	// median hour that can fire (default 100).
	VolumeMin float64 `yaml:"volume_min"`
	// VolumeHistory is how many of its latest hours with data a
	// destination's baseline keeps (default 500).
	VolumeHistory int `yaml:"volume_history"`
}

func (c DestinationsConfig) withDefaults() DestinationsConfig {
	if c.RareActors == 0 {
		c.RareActors = 3
	}
	if c.RareDays == 0 {
		c.RareDays = 3
	}
	if c.WarmupDays == 0 {
		c.WarmupDays = 1
	}
	if c.VolumeTailProb == 0 {
		c.VolumeTailProb = 1e-4
	}
	if c.VolumeMinHours == 0 {
		c.VolumeMinHours = 5
	}
	if c.VolumeMin == 0 {
		c.VolumeMin = 100
	}
	if c.VolumeHistory == 0 {
		c.VolumeHistory = 500
	}
	return c
}

// validate names every bad field (after defaults).
func (c DestinationsConfig) validate() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("detect.destinations.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	check := func(field string, list []string) {
		for i, d := range list {
			if err := checkDestinationPattern(d); err != nil {
				bad(fmt.Sprintf("%s[%d]", field, i), "%v", err)
			}
		}
	}
	check("allow", c.Allow)
	tenants := make([]string, 0, len(c.Tenants))
	for t := range c.Tenants {
		tenants = append(tenants, t)
	}
	slices.Sort(tenants)
	for _, t := range tenants {
		if strings.TrimSpace(t) == "" {
			bad("tenants", "empty tenant name")
			continue
		}
		if len(c.Tenants[t]) == 0 {
			bad("tenants."+t, "lists no destination")
		}
		check("tenants."+t, c.Tenants[t])
	}
	if c.RareActors < 1 {
		bad("rare_actors", "%d: want >= 1", c.RareActors)
	}
	if c.RareDays < 1 {
		bad("rare_days", "%d: want >= 1", c.RareDays)
	}
	if c.WarmupDays < 0 {
		bad("warmup_days", "%d: want >= 0", c.WarmupDays)
	}
	if c.VolumeTailProb <= 0 || c.VolumeTailProb >= 1 {
		bad("volume_tail_prob", "%g: want a probability in (0, 1)", c.VolumeTailProb)
	}
	if c.VolumeMinHours < 3 {
		bad("volume_min_hours", "%d: want >= 3 (a spread needs hours)", c.VolumeMinHours)
	}
	if c.VolumeMin < 0 {
		bad("volume_min", "%g: want >= 0", c.VolumeMin)
	}
	if c.VolumeHistory < c.VolumeMinHours || c.VolumeHistory > 10000 {
		bad("volume_history", "%d: want volume_min_hours (%d) to 10000", c.VolumeHistory, c.VolumeMinHours)
	}
	return errs
}

// checkDestinationPattern reports an allow-list entry that cannot match a
// destination: blank, padded, too long, or a "*" anywhere but a leading
// "*." before a domain.
func checkDestinationPattern(p string) error {
	switch {
	case strings.TrimSpace(p) == "":
		return fmt.Errorf("empty destination")
	case strings.TrimSpace(p) != p:
		return fmt.Errorf("%q has leading or trailing spaces", p)
	case len(p) > models.MaxStringLen:
		return fmt.Errorf("%d bytes, longer than a destination can be (%d)", len(p), models.MaxStringLen)
	}
	rest, wild := strings.CutPrefix(p, "*.")
	if strings.Contains(rest, "*") || (wild && rest == "") {
		return fmt.Errorf("%q: a wildcard is only a leading \"*.\" before a domain (*.example.com)", p)
	}
	return nil
}

// allowList answers whether a tenant's destination is allowed.
type allowList struct {
	global  []string
	tenants map[string][]string
}

func newAllowList(c DestinationsConfig) *allowList {
	a := &allowList{tenants: map[string][]string{}}
	for _, d := range c.Allow {
		a.global = append(a.global, strings.ToLower(d))
	}
	for t, ds := range c.Tenants {
		for _, d := range ds {
			a.tenants[t] = append(a.tenants[t], strings.ToLower(d))
		}
	}
	return a
}

// configured reports whether tenant has an allow-list at all.
func (a *allowList) configured(tenant string) bool {
	return len(a.global) > 0 || len(a.tenants[tenant]) > 0
}

// allowed reports whether dest matches an entry for tenant.
func (a *allowList) allowed(tenant, dest string) bool {
	d := strings.ToLower(dest)
	match := func(p string) bool {
		if dom, ok := strings.CutPrefix(p, "*."); ok {
			return strings.HasSuffix(d, "."+dom)
		}
		return d == p
	}
	return slices.ContainsFunc(a.global, match) || slices.ContainsFunc(a.tenants[tenant], match)
}

// checkDestination is the destination_allowlist rule.
func (r *Rules) checkDestination(e *models.Event, hit hitFunc) {
	if !e.Shared() || e.Denied() || !r.allow.configured(e.Tenant) || r.allow.allowed(e.Tenant, e.Destination) {
		return
	}
	hit(RuleDestinationAllowlist, e, "destination = "+lit(e.Destination), 1, 0, "destination "+e.Destination, e.Fields...)
}

// DestinationSource returns what each actor of shard sent to each
// destination per window of [from, to) (store.Store.DestinationWindows).
type DestinationSource func(ctx context.Context, from, to time.Time, window time.Duration, shard store.Shard) ([]store.DestinationActivity, error)

type destKey struct{ Tenant, Dest string }

// maxDestActors bounds the actors remembered per destination: beyond it a
// destination is common, whoever sends next.
const maxDestActors = 64

// destState is one destination's history in its tenant.
type destState struct {
	Actors  []string // who sent data to it (at most maxDestActors)
	Days    int      // distinct UTC days it received data
	LastDay int32
	// Hours are log(records) of its latest hours with data, oldest first.
	Hours []float64
	// Hour is the clock hour (Unix hours) being summed; HourRecords and
	// HourByActor its records so far; Fired whether destination_volume
	// fired in it (a fired hour is not learned).
	Hour        int64
	HourRecords uint64
	HourByActor map[string]uint64
	Fired       bool
}

// roll closes the summed hour when h is a later one, learning it.
func (d *destState) roll(h int64, keep int) {
	if d.Hour == h {
		return
	}
	if d.HourRecords > 0 && !d.Fired {
		d.Hours = append(d.Hours, math.Log(float64(d.HourRecords)))
		if over := len(d.Hours) - keep; over > 0 {
			d.Hours = append(d.Hours[:0], d.Hours[over:]...)
		}
	}
	d.Hour, d.HourRecords, d.HourByActor, d.Fired = h, 0, nil, false
}

// volumeTail returns the Student-t predictive tail probability of an hour
// of records under the destination's learned hours (log scale), with the
// baseline's median hour and scale. The predictive of a new draw from a
// normal with unknown mean and variance is t with n-1 degrees of freedom,
// scale s*sqrt(1+1/n); s is floored by the Poisson noise of a count at the
// median (var log X ~ 1/mu), so a destination that always got the same
// few records is not judged to a spread of zero.
func (d *destState) volumeTail(records float64) (p, median, scale float64) {
	n := float64(len(d.Hours))
	var mean, ss float64
	for _, x := range d.Hours {
		mean += x
	}
	mean /= n
	for _, x := range d.Hours {
		ss += (x - mean) * (x - mean)
	}
	s2 := ss / (n - 1)
	sorted := slices.Clone(d.Hours)
	slices.Sort(sorted)
	median = math.Exp(sorted[len(sorted)/2])
	s := math.Sqrt(s2 + 1/math.Max(median, 1))
	scale = s * math.Sqrt(1+1/n)
	t := distuv.StudentsT{Mu: mean, Sigma: scale, Nu: n - 1}
	return t.Survival(math.Log(records)), median, scale
}

// destinations runs destination_new and destination_volume on one
// window's rows (ordered by tenant, actor, destination) and learns them.
func (e *Engine) destinations(start, end time.Time, rows []store.DestinationActivity) []models.Finding {
	c := e.cfg.Destinations
	var out []models.Finding
	hour := start.Unix() / 3600
	day := int32(start.Unix() / 86400)
	var touched []destKey
	for i := range rows {
		r := &rows[i]
		k := destKey{r.Tenant, r.Destination}
		d := e.dests[k]
		if d == nil {
			d = &destState{Hour: hour}
			e.dests[k] = d
		}
		d.roll(hour, c.VolumeHistory)
		if !slices.Contains(touched, k) {
			touched = append(touched, k)
		}
		isNew := !slices.Contains(d.Actors, r.ActorID) && len(d.Actors) < maxDestActors
		// a tenant (or the actor's peer group) watched for fewer than
		// RareDays whole days asks for as many days as it was watched: a
		// destination used every day so far is not rare on the second day
		rareDays := min(c.RareDays, max(1, e.watchedDays(r.Tenant, r.ActorID, start)))
		rare := len(d.Actors) < c.RareActors && d.Days < rareDays
		if isNew && rare && !e.learnOnly && e.cfg.enabled(DetDestinationNew) && e.destWatched(r.Tenant, r.ActorID, start) &&
			!e.allow.allowed(r.Tenant, r.Destination) {
			out = append(out, e.destNewFinding(start, end, r, d))
		}
		if isNew {
			d.Actors = append(d.Actors, r.ActorID)
		}
		if d.Days == 0 || d.LastDay != day {
			d.Days++
			d.LastDay = day
		}
		d.HourRecords += r.Records
		if d.HourByActor == nil {
			d.HourByActor = map[string]uint64{}
		}
		d.HourByActor[r.ActorID] += r.Records
	}
	for _, k := range touched {
		d := e.dests[k]
		if d.Fired || len(d.Hours) < c.VolumeMinHours || e.learnOnly || !e.cfg.enabled(DetDestinationVolume) {
			continue
		}
		obs := float64(d.HourRecords)
		p, med, scale := d.volumeTail(obs)
		if p >= c.VolumeTailProb || obs-med < c.VolumeMin {
			continue
		}
		d.Fired = true
		out = append(out, e.destVolumeFinding(start, end, k, d, obs, p, med, scale))
	}
	return out
}

// groupKey is an actor's peer group in its tenant (exported fields: it is
// a key of the checkpoint's GroupSeen).
type groupKey struct{ Tenant, Group string }

// watchedSince is when the engine first saw the tenant of r, or the peer
// group (role and vendor) of r's actor in it when that is later: the
// destinations a group shares with are learned from that group's own days,
// so a team that starts work after the rest of the tenant (a support team
// whose first shift is on the tenant's second day) does not find its
// everyday carrier "new" to a tenant whose bots and services were watched
// first. ok is false when neither was seen (the window's rows note both
// before the destinations are judged).
func (e *Engine) watchedSince(tenant, actor string) (int64, bool) {
	first, ok := e.tenantSeen[tenant]
	if st := e.actors[actorKey{tenant, actor}]; st != nil {
		if g, gok := e.groupSeen[groupKey{tenant, e.groupOf(st.Role, st.Vendor)}]; gok && (!ok || g > first) {
			first, ok = g, true
		}
	}
	return first, ok
}

// destWatched reports whether the engine has watched the tenant and the
// actor's peer group for Destinations.WarmupDays before t.
func (e *Engine) destWatched(tenant, actor string, t time.Time) bool {
	first, ok := e.watchedSince(tenant, actor)
	if !ok {
		e.tenantSeen[tenant] = t.Unix()
		first = t.Unix()
	}
	return t.Unix()-first >= int64(e.cfg.Destinations.WarmupDays)*86400
}

// watchedDays is how many whole days the engine has watched the tenant and
// the actor's peer group at t.
func (e *Engine) watchedDays(tenant, actor string, t time.Time) int {
	first, ok := e.watchedSince(tenant, actor)
	if !ok {
		return 0
	}
	return int((t.Unix() - first) / 86400)
}

// noteTenants records the first window each tenant, and each peer group
// of a tenant, of rows was seen.
func (e *Engine) noteTenants(t time.Time, rows []windowRow) {
	for i := range rows {
		r := &rows[i]
		if _, ok := e.tenantSeen[r.Tenant]; !ok {
			e.tenantSeen[r.Tenant] = t.Unix()
		}
		k := groupKey{r.Tenant, e.groupOf(r.ActorRole, r.ActorVendor)}
		if _, ok := e.groupSeen[k]; !ok {
			e.groupSeen[k] = t.Unix()
		}
	}
}

// seedGroupSeen fills groupSeen from the actors' first windows, for a
// checkpoint written before groups were recorded: each group was first
// seen when its earliest remembered actor was.
func (e *Engine) seedGroupSeen() {
	for k, st := range e.actors {
		if st.FirstSeen == 0 {
			continue
		}
		g := groupKey{k.Tenant, e.groupOf(st.Role, st.Vendor)}
		if v, ok := e.groupSeen[g]; !ok || st.FirstSeen < v {
			e.groupSeen[g] = st.FirstSeen
		}
	}
}

// sharesQuery is the shares query behind a destination finding.
func sharesQuery(tenant, dest, actor string, from, to time.Time) string {
	q := fmt.Sprintf(`SELECT ts, event_id, actor_id, action, store, resource_type, subject_id, records, fields, purpose, destination, result
FROM shares
WHERE tenant = %s AND destination = %s AND ts >= %s AND ts < %s`, lit(tenant), lit(dest), litTime(from), litTime(to))
	if actor != "" {
		q += "\n  AND actor_id = " + lit(actor)
	}
	return q + "\nORDER BY ts"
}

func (e *Engine) destFinding(det string, start, end time.Time, tenant, actor string, score, prob float64, ev models.Evidence) models.Finding {
	st := e.actors[actorKey{tenant, actor}]
	f := models.Finding{Detector: det, Tenant: tenant, ActorID: actor, WindowStart: start, WindowEnd: end, DetectedAt: end,
		Score: score, Probability: prob, Severity: e.cfg.severity(det), Evidence: ev}
	if st != nil {
		f.ActorType, f.ActorRole, f.ActorVendor = models.ActorType(st.Type), st.Role, st.Vendor
	}
	return f
}

func (e *Engine) destNewFinding(start, end time.Time, r *store.DestinationActivity, d *destState) models.Finding {
	c := e.cfg.Destinations
	ev := models.Evidence{Metric: "actors and days that sent data to the destination before", Observed: float64(len(d.Actors)),
		Baseline: float64(c.RareActors), Threshold: float64(c.RareActors), BaselineSource: "tenant",
		Destinations: []string{r.Destination}, Categories: slices.Clone(r.Categories), Records: r.Records, Subjects: r.Subjects,
		Query: sharesQuery(r.Tenant, r.Destination, "", start.Add(-30*24*time.Hour), end),
		Notes: map[string]float64{"actors_before": float64(len(d.Actors)), "days_before": float64(d.Days),
			"rare_actors": float64(c.RareActors), "rare_days": float64(c.RareDays), "events": float64(r.Events)}}
	f := e.destFinding(DetDestinationNew, start, end, r.Tenant, r.ActorID, float64(c.RareActors-len(d.Actors)), 0, ev)
	f.Summary = fmt.Sprintf("%s sent %d records to %s, a destination it never used and that %d actor(s) of the tenant used on %d day(s) before",
		r.ActorID, r.Records, r.Destination, len(d.Actors), d.Days)
	return f
}

func (e *Engine) destVolumeFinding(start, end time.Time, k destKey, d *destState, obs, p, med, scale float64) models.Finding {
	type ac struct {
		id  string
		rec uint64
	}
	var acs []ac
	for id, n := range d.HourByActor {
		acs = append(acs, ac{id, n})
	}
	slices.SortFunc(acs, func(a, b ac) int { return cmp.Or(cmp.Compare(b.rec, a.rec), cmp.Compare(a.id, b.id)) })
	top := acs[0]
	hourStart := time.Unix(d.Hour*3600, 0).UTC()
	ev := models.Evidence{Metric: "records sent to the destination this hour", Observed: obs, Baseline: med, Spread: scale,
		BaselineSource: "destination", Destinations: []string{k.Dest}, Records: uint64(obs),
		Query: sharesQuery(k.Tenant, k.Dest, "", hourStart, end),
		Notes: map[string]float64{"tail_probability": p, "hours_learned": float64(len(d.Hours)), "ratio": obs / math.Max(med, 1),
			"top_actor_records": float64(top.rec), "actors_this_hour": float64(len(acs))}}
	f := e.destFinding(DetDestinationVolume, start, end, k.Tenant, top.id, -math.Log10(math.Max(p, 1e-300)), p, ev)
	f.Summary = fmt.Sprintf("%.0f records sent to %s since %s, %.0fx its median hour of %.0f (p %.1e); %s sent %d",
		obs, k.Dest, hourStart.Format("15:04"), obs/math.Max(med, 1), med, p, top.id, top.rec)
	return f
}
