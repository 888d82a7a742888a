package sim

import (
	"fmt"
	"math"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// role is what an actor does all day; it decides its shift and its access mix.
type role uint8

const (
	roleSupportEU role = iota
	roleSupportUS
	roleBilling
	roleFraud
	roleBot
	roleETL
	roleIndexer
	roleVendor
	roleMarketing
	roleAnalytics
	roleAdmin
)

// roleInfo is the fixed description of a role.
type roleInfo struct {
	name    string
	typ     models.ActorType
	prefix  string
	purpose string
	human   bool // works shifts
}

var roles = [...]roleInfo{
	roleSupportEU: {"support-eu", models.ActorHuman, "agent", "support", true},
	roleSupportUS: {"support-us", models.ActorHuman, "agent", "support", true},
	roleBilling:   {"billing", models.ActorHuman, "agent", "billing", true},
	roleFraud:     {"fraud-analyst", models.ActorHuman, "analyst", "fraud", true},
	roleBot:       {"chat-assistant", models.ActorBot, "assistant", "support", false},
	roleETL:       {"etl", models.ActorService, "svc-etl", "analytics", false},
	roleIndexer:   {"kb-indexer", models.ActorService, "svc-indexer", "training", false},
	roleVendor:    {"vendor-agent", models.ActorVendor, "acme-bpo-ph", "support", true},
	roleMarketing: {"marketing", models.ActorHuman, "mkt", "marketing", true},
	roleAnalytics: {"analytics", models.ActorHuman, "ana", "analytics", true},
	roleAdmin:     {"admin", models.ActorAdmin, "admin", "support", true},
}

// VendorName and VendorCountry are the contracted vendor of the defaults.
const (
	VendorName    = "acme-bpo"
	VendorCountry = "PH"
)

// storeDef is a data store and the resource type it holds, with its JSON fragment.
type storeDef struct {
	store, resType, idPrefix string
	recBytes                 float64 // typical bytes per record
	frag                     []byte  // "store":"x","resource":{"type":"y"
}

func newStore(store, resType, idPrefix string, recBytes float64) *storeDef {
	return &storeDef{store: store, resType: resType, idPrefix: idPrefix, recBytes: recBytes,
		frag: fmt.Appendf(nil, `"store":%q,"resource":{"type":%q`, store, resType)}
}

var (
	stCRM         = newStore("crm", "customer_profile", "prof-", 1500)
	stTranscripts = newStore("transcripts", "transcript", "tr-", 12000)
	stOrders      = newStore("orders", "order", "ord-", 2200)
	stPayments    = newStore("payments", "payment_method", "pm-", 600)
	stTickets     = newStore("tickets", "ticket", "tk-", 3000)
	stVector      = newStore("vector_index", "embedding_chunk", "chunk-", 4000)
	stSession     = newStore("crm", "session", "sess-", 300)
)

// fieldSet is a shared, immutable list of data categories with its JSON.
type fieldSet struct {
	cats []string
	frag []byte // ,"fields":[...]
}

func fs(cats ...string) *fieldSet {
	b := []byte(`,"fields":[`)
	for i, c := range cats {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, "%q", c)
	}
	return &fieldSet{cats: cats, frag: append(b, ']')}
}

const (
	cEmail = models.CategoryEmail
	cPhone = models.CategoryPhone
	cAddr  = models.CategoryAddress
	cName  = models.CategoryName
	cPay   = models.CategoryPayment
	cGov   = models.CategoryGovernmentID
	cHlth  = models.CategoryHealth
	cDOB   = models.CategoryDOB
	cText  = models.CategoryTranscriptText
	cOrder = models.CategoryOrderHistory
)

var (
	fNone          = &fieldSet{}
	fNameEmail     = fs(cName, cEmail)
	fNameEmailPh   = fs(cName, cEmail, cPhone)
	fNamePhoneAddr = fs(cName, cPhone, cAddr)
	fContact       = fs(cName, cEmail, cPhone, cAddr)
	fNameEmailAddr = fs(cName, cEmail, cAddr)
	fOrders        = fs(cOrder)
	fOrdersAddr    = fs(cOrder, cName, cAddr)
	fText          = fs(cText)
	fTicket        = fs(cName, cEmail, cText)
	fPayName       = fs(cPay, cName)
	fPay           = fs(cPay)
	fKYC           = fs(cName, cDOB, cGov)
	fFraudProfile  = fs(cName, cEmail, cPhone, cAddr, cDOB)
	fEmail         = fs(cEmail)
	fGovName       = fs(cName, cGov)
	fDOBName       = fs(cName, cDOB)
	fHealthName    = fs(cName, cHlth)
)

// clientInfo is where an actor's requests come from, with its JSON.
type clientInfo struct {
	ip, country, ua string
	frag            []byte // ,"client":{...}
}

func newClient(ip, country, ua string) *clientInfo {
	c := &clientInfo{ip: ip, country: country, ua: ua}
	c.frag = fmt.Appendf(nil, `,"client":{"ip":%q,"country":%q,"user_agent":%q}`, ip, country, ua)
	return c
}

const (
	uaChrome  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	uaMac     = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15"
	uaFirefox = "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0"
	uaBot     = "assistant-runtime/2.7 (tool-calls)"
	uaETL     = "airflow-worker/2.10.3 python-requests/2.32.3"
	uaIndexer = "kb-indexer/1.4 (go)"
	uaCurl    = "curl/8.5.0"
)

// countryNet is the first two octets of a plausible address block per country.
var countryNet = map[string][2]int{
	"DE": {91, 64}, "IE": {86, 40}, "ES": {83, 45}, "PL": {83, 24}, "GB": {81, 2}, "US": {73, 162},
	"PH": {112, 198}, "JP": {126, 11}, "AU": {101, 160}, "RU": {95, 24}, "NG": {105, 112}, "BR": {177, 33}, "VN": {113, 160}, "RO": {86, 120},
}

func ipIn(country string, h uint64) string {
	n := countryNet[country]
	return fmt.Sprintf("%d.%d.%d.%d", n[0], n[1], 1+h%250, 1+(h>>8)%250)
}

// zone is a time zone with the country its people connect from.
type zone struct {
	name, country string
}

var (
	zonesEU = []zone{{"Europe/Berlin", "DE"}, {"Europe/Berlin", "DE"}, {"Europe/Dublin", "IE"}, {"Europe/Madrid", "ES"}, {"Europe/Warsaw", "PL"}}
	zonesUS = []zone{{"America/New_York", "US"}, {"America/New_York", "US"}, {"America/Chicago", "US"}, {"America/Los_Angeles", "US"}}
)

// actor is one principal of the simulated world with its behaviour and state.
type actor struct {
	idx    int
	id     string
	tenant int
	role   role
	loc    *time.Location
	client *clientInfo
	base   float64 // events per minute at full activity

	workdays   uint8 // bit per local time.Weekday
	shiftStart int   // local minutes after midnight
	shiftLen   int   // minutes

	activeFrom, activeUntil int64 // unix minutes; 0: unbounded
	offFrom, offTo          int64 // leave, unix minutes
	shiftChangeDay          int64 // local day number from which newShiftStart applies; 0: never
	newShiftStart           int

	special bool // dormant, new hire or negative: never picked for an attack
	used    bool // already picked for an attack

	job *batchJob // service accounts with a nightly job

	frag []byte // ,"tenant":"t","actor":{...}

	// per-hour cache of the local time
	hourCached int64
	localOff   int64 // seconds
	// working state
	ticketSubject int32
	ticketLeft    int
	convs         []conv
	mods          []*scenario
}

// conv is a live chatbot conversation.
type conv struct {
	id      int64
	subject int32
	left    int
	// rollout: the conversation still gets the conversation_tool_rollout
	// call (conversations.go).
	rollout bool
}

// batchJob is a service account's nightly job.
type batchJob struct {
	st         *storeDef
	fields     *fieldSet
	purpose    string
	hourUTC    int
	minutes    int     // length
	pageRate   float64 // list pages per minute
	pageRecs   int     // records per page
	exportRecs int     // final export size
}

// world is every actor of the run.
type world struct {
	tenants  []string
	markets  []*time.Location // per tenant: where its customers live
	actors   []*actor
	byRole   [len(roles)][]*actor
	start    int64 // unix minute
	end      int64
	seed     uint64
	nextConv int64
	zones    []string // per tenant: staff time zone (Config.Zones)
	sparse   float64  // Config.SparseShare
}

// zoneCountry is the country staff of a tenant zone connect from.
var zoneCountry = map[string]string{"Europe/Berlin": "DE", "Europe/Dublin": "IE", "Europe/Madrid": "ES", "Europe/Warsaw": "PL",
	"Europe/London": "GB", "America/New_York": "US", "America/Chicago": "US", "America/Los_Angeles": "US",
	"Asia/Manila": "PH", "Asia/Tokyo": "JP", "Australia/Sydney": "AU"}

// mix64 is splitmix64: a stateless hash for per-(actor, day) jitter.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func (w *world) hash(vals ...uint64) uint64 {
	h := mix64(w.seed)
	for _, v := range vals {
		h = mix64(h ^ v)
	}
	return h
}

func (w *world) hash01(vals ...uint64) float64 {
	return float64(w.hash(vals...)>>11) / (1 << 53)
}

func mustLoc(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(fmt.Sprintf("sim: time zone %s: %v", name, err)) // the tz database ships with Go (time/tzdata fallback)
	}
	return l
}

const (
	monFri uint8 = 1<<time.Monday | 1<<time.Tuesday | 1<<time.Wednesday | 1<<time.Thursday | 1<<time.Friday
	monSat       = monFri | 1<<time.Saturday
	satWed uint8 = 1<<time.Saturday | 1<<time.Sunday | 1<<time.Monday | 1<<time.Tuesday | 1<<time.Wednesday
	wedSun uint8 = 1<<time.Wednesday | 1<<time.Thursday | 1<<time.Friday | 1<<time.Saturday | 1<<time.Sunday
)

// roleShares is the mix of roles per tenant, in parts per 1000.
var roleShares = []struct {
	r     role
	share int
	min   int
}{
	{roleSupportEU, 250, 1}, {roleSupportUS, 190, 1}, {roleBilling, 80, 1}, {roleFraud, 40, 1},
	{roleBot, 110, 1}, {roleETL, 30, 1}, {roleIndexer, 15, 1}, {roleVendor, 160, 1},
	{roleMarketing, 45, 1}, {roleAnalytics, 45, 1}, {roleAdmin, 35, 1},
}

// newWorld builds the actors of cfg deterministically.
func newWorld(cfg Config) *world {
	w := &world{tenants: cfg.Tenants, seed: cfg.Seed,
		start: cfg.Start.Unix() / 60, end: cfg.Start.Add(cfg.Duration).Unix() / 60}
	w.zones = cfg.Zones
	w.sparse = cfg.SparseShare
	for i := range cfg.Tenants {
		if len(cfg.Zones) > i {
			w.markets = append(w.markets, mustLoc(cfg.Zones[i]))
		} else if i%2 == 0 {
			w.markets = append(w.markets, mustLoc("Europe/Berlin"))
		} else {
			w.markets = append(w.markets, mustLoc("America/New_York"))
		}
	}
	per := cfg.Actors / len(cfg.Tenants)
	for t := range cfg.Tenants {
		n := per
		if t < cfg.Actors%len(cfg.Tenants) {
			n++
		}
		for _, rs := range roleShares {
			if rs.r == roleVendor && cfg.NoVendors {
				continue
			}
			k := max(rs.min, int(math.Round(float64(n*rs.share)/1000)))
			for range k {
				w.addActor(t, rs.r)
			}
		}
	}
	return w
}

// addActor creates one actor of role r in tenant t.
func (w *world) addActor(t int, r role) *actor {
	i := len(w.actors)
	h := w.hash(uint64(i), 0xac70)
	ri := roles[r]
	a := &actor{idx: i, tenant: t, role: r, ticketSubject: -1}
	a.id = fmt.Sprintf("%s-%04d", ri.prefix, i+1)
	a.base = math.Exp(0.25 * normFromHash(w.hash(uint64(i), 0xba5e)))
	pick := func(zs []zone) zone { return zs[h%uint64(len(zs))] }
	var z zone
	ua := []string{uaChrome, uaChrome, uaMac, uaFirefox}[(h>>16)%4]
	switch r {
	case roleSupportEU, roleSupportUS:
		if r == roleSupportEU {
			z = pick(zonesEU)
			a.shiftStart = 7*60 + int((h>>20)%7)*30
		} else {
			z = pick(zonesUS)
			a.shiftStart = 8*60 + int((h>>20)%7)*30
		}
		a.shiftLen = 510
		a.base *= 1.1
		switch (h >> 24) % 10 {
		case 0, 1:
			a.workdays = satWed
		case 2:
			a.workdays = wedSun
		default:
			a.workdays = monFri
		}
	case roleBilling:
		z = []zone{zonesEU[0], zonesUS[0]}[h%2]
		a.shiftStart, a.shiftLen, a.workdays = 9*60, 510, monFri
		a.base *= 0.8
	case roleFraud:
		z = []zone{{"Europe/London", "GB"}, zonesUS[0]}[h%2]
		a.shiftStart, a.shiftLen, a.workdays = 8*60+int((h>>20)%4)*30, 510, monFri
		a.base *= 0.7
	case roleVendor:
		z = zone{"UTC", VendorCountry}
		a.shiftStart, a.shiftLen = int((h>>20)%3)*60+30, 480 // 00:30..10:30 UTC at the latest
		off := time.Weekday(1 + (h>>24)%5)                   // one weekday off besides Sunday
		a.workdays = monSat &^ (1 << off)
		a.base *= 1.0
	case roleMarketing, roleAnalytics, roleAdmin:
		z = []zone{zonesEU[0], zonesUS[0]}[h%2]
		a.shiftStart, a.shiftLen, a.workdays = 9*60, 480, monFri
		a.base *= map[role]float64{roleMarketing: 0.45, roleAnalytics: 0.4, roleAdmin: 0.05}[r]
	case roleBot:
		z = zone{w.markets[t].String(), map[bool]string{true: "IE", false: "US"}[t%2 == 0]}
		a.base *= 5.5
		ua = uaBot
	case roleETL:
		z = zone{"UTC", "DE"}
		ua = uaETL
		a.job = w.newJob(i, h)
	case roleIndexer:
		z = zone{"UTC", "DE"}
		a.base *= 0.3
		ua = uaIndexer
	}
	if ri.typ == models.ActorAdmin {
		ua = uaCurl
	}
	if t < len(w.zones) && ri.human && r != roleVendor {
		// a tenant's staff work in its own zone (Config.Zones)
		z = zone{w.zones[t], zoneCountry[w.zones[t]]}
		if z.country == "" {
			z.country = "US"
		}
	}
	if (r == roleSupportEU || r == roleSupportUS) && w.hash01(uint64(i), 0x5a) < w.sparse {
		a.workdays = 1 << time.Weekday(1+(h>>40)%5) // one fixed weekday a week
	}
	a.loc = mustLoc(z.name)
	a.hourCached = -1
	var ip string
	switch r {
	case roleBot:
		ip = fmt.Sprintf("10.20.%d.%d", t, 10+h%200)
	case roleETL, roleIndexer:
		ip = fmt.Sprintf("10.30.%d.%d", t, 10+h%200)
	default:
		ip = ipIn(z.country, h>>32)
	}
	a.client = newClient(ip, z.country, ua)
	vendor := ""
	if r == roleVendor {
		vendor = fmt.Sprintf(`,"vendor":%q`, VendorName)
	}
	a.frag = fmt.Appendf(nil, `,"tenant":%q,"actor":{"id":%q,"type":%q,"role":%q%s}`, w.tenants[t], a.id, ri.typ, ri.name, vendor)
	w.actors = append(w.actors, a)
	w.byRole[r] = append(w.byRole[r], a)
	return a
}

func (w *world) newJob(i int, h uint64) *batchJob {
	if (h>>8)%3 == 2 {
		return &batchJob{st: stTranscripts, fields: fText, purpose: "training", hourUTC: 3,
			minutes: 25, pageRate: 0.5, pageRecs: 2000, exportRecs: 8000 + int(h%4000)}
	}
	return &batchJob{st: stOrders, fields: fOrders, purpose: "analytics", hourUTC: 2,
		minutes: 40, pageRate: 0.6, pageRecs: 5000, exportRecs: 20000 + int(h%20000)}
}

// normFromHash maps a hash to a standard normal deviate (Box-Muller).
func normFromHash(h uint64) float64 {
	u1 := (float64(h>>40) + 1) / (1<<24 + 1)
	u2 := float64(h&0xffffff) / (1 << 24)
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// localInfo returns the actor's local minute-of-day and weekday at unix minute m.
func (a *actor) localInfo(m int64) (minOfDay int, wd time.Weekday, localDay int64) {
	hour := m / 60
	if hour != a.hourCached {
		_, off := time.Unix(hour*3600, 0).In(a.loc).Zone()
		a.localOff = int64(off)
		a.hourCached = hour
	}
	lm := m + a.localOff/60
	localDay = floorDiv(lm, 1440)
	minOfDay = int(lm - localDay*1440)
	wd = time.Weekday((localDay + 4) % 7) // 1970-01-01 was a Thursday
	return minOfDay, wd, localDay
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// shiftFor returns the actor's shift start (local minutes) on a local day.
func (a *actor) shiftFor(localDay int64) int {
	if a.shiftChangeDay != 0 && localDay >= a.shiftChangeDay {
		return a.newShiftStart
	}
	return a.shiftStart
}

// present reports whether the actor exists and is not on leave at minute m.
func (a *actor) present(m int64) bool {
	if a.activeFrom != 0 && m < a.activeFrom {
		return false
	}
	if a.activeUntil != 0 && m >= a.activeUntil {
		return false
	}
	return !(a.offTo != 0 && m >= a.offFrom && m < a.offTo)
}

// botHourly is the chat volume by local hour of the tenant's customers.
var botHourly = [24]float64{0.14, 0.09, 0.07, 0.06, 0.07, 0.11, 0.22, 0.42, 0.68, 0.88, 0.98, 1.0,
	0.95, 0.93, 0.97, 1.0, 0.96, 0.9, 0.86, 0.82, 0.72, 0.56, 0.38, 0.24}

// rateAt is the actor's normal activity in events per minute at unix minute m.
func (w *world) rateAt(a *actor, m int64) float64 {
	if !a.present(m) {
		return 0
	}
	switch a.role {
	case roleBot:
		mod, wd, _ := a.localInfo(m)
		r := a.base * botHourly[mod/60]
		if wd == time.Saturday || wd == time.Sunday {
			r *= 0.85
		}
		return r
	case roleIndexer:
		return a.base
	case roleETL:
		return 0 // jobs are scheduled, not rated
	}
	mod, wd, day := a.localInfo(m)
	if a.workdays&(1<<wd) == 0 {
		return 0
	}
	start := a.shiftFor(day)
	// per-day jitter: start -20..+20 min, length -15..+45 min (overtime)
	jit := w.hash01(uint64(a.idx), uint64(day), 1)
	start += int(jit*40) - 20
	length := a.shiftLen + int(w.hash01(uint64(a.idx), uint64(day), 2)*60) - 15
	x := mod - start
	if x < 0 || x >= length {
		return 0
	}
	r := a.base
	switch {
	case x < 20:
		r *= 0.5 // logging in, reading the queue
	case x >= length-20:
		r *= 0.6
	}
	lunch := length/2 - 30 + int(w.hash01(uint64(a.idx), uint64(day), 3)*40)
	if x >= lunch && x < lunch+40 {
		r *= 0.12
	}
	return r
}

// shiftWindow returns the unix minutes of the actor's shift on the local
// day localDay, and whether it works that day.
func (w *world) shiftWindow(a *actor, localDay int64) (from, to int64, ok bool) {
	wd := time.Weekday((localDay + 4) % 7)
	if a.workdays&(1<<wd) == 0 {
		return 0, 0, false
	}
	midnight := time.Unix(localDay*86400, 0).UTC()
	t := time.Date(midnight.Year(), midnight.Month(), midnight.Day(), 0, 0, 0, 0, a.loc)
	from = t.Unix()/60 + int64(a.shiftFor(localDay))
	return from, from + int64(a.shiftLen), true
}

// localDayOf returns the actor's local day number at unix minute m.
func (a *actor) localDayOf(m int64) int64 {
	_, off := time.Unix(m*60, 0).In(a.loc).Zone()
	return floorDiv(m+int64(off)/60, 1440)
}
