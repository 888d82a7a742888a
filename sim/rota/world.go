package rota

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// kind is what an actor does.
type kind uint8

const (
	kAgent    kind = iota // in-house agent on the 24/7 rota
	kLead                 // team lead, office hours
	kBot                  // virtual agent, one per channel
	kSync                 // sync service, every five minutes
	kReports              // reporting service, weekly export
	kVendor               // outsourced agent of Vendor
	kMarketer             // campaign manager
	kReviewer             // sparse: one fixed weekday
	kDormant              // an agent who leaves after two days (dormant_wakeup)
	numKinds
)

var kindRole = [numKinds]string{"care-agent", "team-lead", "virtual-agent", "crm-sync", "reporting", "outsourced-agent", "campaigns", "qa-reviewer", "care-agent"}

var kindType = [numKinds]models.ActorType{models.ActorHuman, models.ActorHuman, models.ActorBot, models.ActorService,
	models.ActorService, models.ActorVendor, models.ActorHuman, models.ActorHuman, models.ActorHuman}

// channel is a virtual agent's channel: its share of the tenant's
// conversations and its demand by local hour.
type channel struct {
	name  string
	share float64
	curve [24]float64
}

var channels = []channel{
	{"web", 0.5, [24]float64{.2, .12, .08, .06, .06, .1, .25, .5, .8, 1, 1, .95, .9, .95, 1, 1, .95, .85, .75, .7, .65, .55, .4, .3}},
	{"app", 0.35, [24]float64{.35, .25, .15, .1, .08, .1, .2, .45, .6, .6, .55, .6, .75, .65, .55, .55, .6, .75, .9, 1, 1, .9, .7, .5}},
	{"voice", 0.15, [24]float64{.02, .02, .02, .02, .02, .05, .2, .6, .9, 1, 1, .9, .8, .9, 1, .9, .8, .6, .3, .15, .08, .05, .03, .02}},
}

// actor is one principal with its fixed traits.
type actor struct {
	id     string
	kind   kind
	tenant int
	loc    *time.Location
	client models.Client
	speed  float64 // contacts handled per hour relative to the role's norm
	slot   int     // rota slot: 0 early, 1 late, 2 night
	phase  int     // position in the 8-day rota cycle
	ch     int     // bot: channel
	day    time.Weekday

	from, until time.Time // present in [from, until); zero: unbounded
	offFrom     time.Time // leave [offFrom, offTo)
	offTo       time.Time
	swapFrom    time.Time // rota swap: slot newSlot in [swapFrom, swapTo)
	swapTo      time.Time
	newSlot     int
	driftFrom   time.Time // slow drift: work rate grows from here
	picked      bool      // used by an attack or a negative
	idx         int       // position in world.actors (hash key of its shares)
	shares      bool      // passes delivery claims to the carrier (in-house agents, not an attack's stand-in)
}

func (a *actor) modelActor() models.Actor {
	ma := models.Actor{ID: a.id, Type: kindType[a.kind], Role: kindRole[a.kind]}
	if a.kind == kVendor {
		ma.Vendor = Vendor.Name
	}
	return ma
}

// special reports whether a hard negative or the dormant scenario owns a.
func (a *actor) special() bool {
	return !a.from.IsZero() || !a.until.IsZero() || !a.offTo.IsZero() || !a.swapFrom.IsZero() || a.kind == kDormant
}

func (a *actor) present(t time.Time) bool {
	if !a.from.IsZero() && t.Before(a.from) {
		return false
	}
	if !a.until.IsZero() && !t.Before(a.until) {
		return false
	}
	return a.offTo.IsZero() || t.Before(a.offFrom) || !t.Before(a.offTo)
}

// world is the population of one run.
type world struct {
	cfg     Config
	tenants []Tenant
	locs    []*time.Location
	actors  []*actor
	start   time.Time
	end     time.Time
}

func mustLoc(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(fmt.Sprintf("rota: time zone %s: %v", name, err)) // validated in Config.Validate
	}
	return l
}

// mix is splitmix64.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func (w *world) hash(vals ...uint64) uint64 {
	h := mix(w.cfg.Seed ^ 0x707a)
	for _, v := range vals {
		h = mix(h ^ v)
	}
	return h
}

// rng returns a generator for one stream identified by vals.
func (w *world) rng(vals ...uint64) *rand.Rand {
	return rand.New(rand.NewPCG(w.hash(vals...), w.hash(append(vals, 0xfeed)...)))
}

// ipFor is a plausible address of country for key h.
func ipFor(country string, h uint64) string {
	nets := map[string][2]int{"NL": {84, 80}, "US": {24, 60}, "DE": {93, 200}, "JP": {126, 11}, "BR": {189, 40},
		"PH": {49, 145}, "AU": {101, 160}, "IN": {117, 200}, "TR": {88, 230}, "ID": {36, 80}, "UA": {46, 211}, "MA": {105, 154}}
	n, ok := nets[country]
	if !ok {
		n = [2]int{100, 64}
	}
	return fmt.Sprintf("%d.%d.%d.%d", n[0], n[1], 1+h%250, 1+(h>>8)%250)
}

var userAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0",
	"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
}

// newWorld lays out the actors of cfg. Per tenant: one bot per channel,
// one sync and one reporting service, a campaign manager, leads at one per
// eight agents, vendor agents (a fifth of the agents) and agents.
func newWorld(cfg Config) *world {
	w := &world{cfg: cfg, tenants: cfg.Tenants, start: cfg.Start, end: cfg.Start.Add(cfg.Duration)}
	for _, t := range cfg.Tenants {
		w.locs = append(w.locs, mustLoc(t.Zone))
	}
	nt := len(cfg.Tenants)
	per := max(1, cfg.Actors/nt)
	for t := range nt {
		fixed := len(channels) + 3 // bots, sync, reports, campaigns
		people := max(4, per-fixed)
		leads := max(1, people/9)
		vendors := 0
		if !cfg.NoVendors {
			vendors = max(1, people/5)
		}
		agents := max(2, people-leads-vendors)
		sparse := int(math.Round(float64(agents) * cfg.SparseShare))
		for c := range channels {
			a := w.add(t, kBot)
			a.ch = c
		}
		w.add(t, kSync)
		w.add(t, kReports)
		w.add(t, kMarketer)
		for range leads {
			w.add(t, kLead)
		}
		for range vendors {
			w.add(t, kVendor)
		}
		for i := range agents {
			if i < sparse {
				w.add(t, kReviewer)
			} else {
				w.add(t, kAgent)
			}
		}
	}
	return w
}

func (w *world) add(t int, k kind) *actor {
	i := len(w.actors)
	h := w.hash(uint64(i), 0xac)
	a := &actor{kind: k, tenant: t, loc: w.locs[t], idx: i, shares: k == kAgent}
	ten := w.tenants[t]
	a.speed = math.Exp(0.3 * (float64(h%1000)/1000*2 - 1) * 1.7)
	a.slot = []int{0, 0, 0, 1, 1, 1, 2}[(h>>12)%7]
	a.phase = int((h >> 20) % 8)
	a.day = time.Weekday(1 + (h>>28)%5)
	ua := userAgents[(h>>32)%uint64(len(userAgents))]
	country, ip := ten.Country, ipFor(ten.Country, h>>40)
	switch k {
	case kAgent, kDormant:
		a.id = fmt.Sprintf("%s.agent%03d", shortTenant(ten.Name), i)
	case kLead:
		a.id = fmt.Sprintf("%s.lead%02d", shortTenant(ten.Name), i)
	case kBot:
		a.id = fmt.Sprintf("va-%s-%s", shortTenant(ten.Name), channels[a.ch].name)
		ua, ip, country = "virtual-agent/5.2", fmt.Sprintf("172.20.%d.%d", t, 10+i%200), ""
	case kSync:
		a.id = fmt.Sprintf("svc-crm-sync-%s", shortTenant(ten.Name))
		ua, ip, country = "crm-sync/3.1 (java)", fmt.Sprintf("172.21.%d.%d", t, 10+i%200), ""
	case kReports:
		a.id = fmt.Sprintf("svc-reporting-%s", shortTenant(ten.Name))
		ua, ip, country = "reporting-engine/9.0", fmt.Sprintf("172.21.%d.%d", t, 100+i%100), ""
	case kVendor:
		a.id = fmt.Sprintf("nw-%s-%03d", shortTenant(ten.Name), i)
		a.loc = mustLoc(Vendor.TimeZone)
		country, ip = Vendor.Country, ipFor(Vendor.Country, h>>40)
		a.slot = int((h >> 12) % 2)
	case kMarketer:
		a.id = fmt.Sprintf("%s.campaigns%02d", shortTenant(ten.Name), i)
	case kReviewer:
		a.id = fmt.Sprintf("%s.qa%03d", shortTenant(ten.Name), i)
	}
	a.client = models.Client{IP: ip, Country: country, UserAgent: ua}
	w.actors = append(w.actors, a)
	return a
}

func shortTenant(name string) string {
	if len(name) > 12 {
		return name[:12]
	}
	return name
}

// localMidnight returns the start of the local day holding t.
func localMidnight(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc)
}

// rotaDay is the day number of a local date (days since 1970-01-01).
func rotaDay(mid time.Time) int {
	y, m, d := mid.Date()
	return int(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

// shift returns the working interval of the actor on the local day whose
// midnight is mid, and whether it works that day (presence aside).
func (w *world) shift(a *actor, mid time.Time) (from, to time.Time, ok bool) {
	at := func(h, m int, d time.Duration) (time.Time, time.Time) {
		f := time.Date(mid.Year(), mid.Month(), mid.Day(), h, m, 0, 0, a.loc)
		return f, f.Add(d)
	}
	wd := mid.Weekday()
	switch a.kind {
	case kAgent, kDormant:
		rd := rotaDay(mid)
		if (rd+a.phase)%8 >= 4 {
			return from, to, false
		}
		slot := a.slot
		if !a.swapFrom.IsZero() && !mid.Before(localMidnight(a.swapFrom, a.loc)) && mid.Before(a.swapTo) {
			slot = a.newSlot
		}
		from, to = at(6+8*slot, 0, 8*time.Hour)
		return from, to, true
	case kLead:
		if wd == time.Saturday || wd == time.Sunday {
			return from, to, false
		}
		from, to = at(8, 30, 8*time.Hour+30*time.Minute)
		return from, to, true
	case kMarketer:
		if wd == time.Saturday || wd == time.Sunday {
			return from, to, false
		}
		from, to = at(9, 30, 7*time.Hour)
		return from, to, true
	case kVendor:
		if wd == time.Sunday || (a.slot == 1 && wd == time.Saturday) {
			return from, to, false
		}
		from, to = at(8+3*a.slot, 0, 8*time.Hour)
		return from, to, true
	case kReviewer:
		if wd != a.day {
			return from, to, false
		}
		from, to = at(13, 0, 3*time.Hour)
		return from, to, true
	}
	return from, to, false
}
