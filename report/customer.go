package report

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// A customer report is the data-subject access report as a document the
// business can hand to its customer: which kinds of staff, bots and vendors
// accessed the customer's data, when, for which purpose, which categories,
// and whether and with whom it was shared. It names no person and no
// internal id: a staff member appears as their role, a bot or service as
// what it is, a vendor by its company; actor ids, event ids, record ids,
// conversation ids, pseudonyms, tenant and store names are left out. The
// wording is plain language and the dates are written out.

// CustomerInput is what a customer report is built from: the data-subject
// report's lines and the customer's shares, of one tenant.
type CustomerInput struct {
	// From and To are the period reported on; Issued is when the report
	// was made.
	From, To, Issued time.Time
	Accesses         []store.SubjectAccess
	Shares           []store.SubjectShare
	// Truncated says that the lines were cut at a limit.
	Truncated bool
	// Withheld says whether a value must not be shown to the customer (a
	// pseudonymized destination); such a recipient is named "a recipient
	// whose name we hold only in coded form". Nil: none is withheld.
	Withheld func(string) bool
}

// CustomerReport is the customer-readable access report. Every string in it
// is meant for the customer.
type CustomerReport struct {
	Title  string    `json:"title"`
	Period string    `json:"period"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Issued string    `json:"issued"`
	// IssuedAt is when the report was made.
	IssuedAt time.Time `json:"issued_at"`
	// Summary is the report in a few sentences.
	Summary []string `json:"summary"`
	// Accesses are who accessed the data, one line per kind of accessor
	// and purpose, most recent first.
	Accesses []CustomerAccess `json:"accesses"`
	// Shares are the organisations the data was sent to.
	Shares []CustomerShare `json:"shares"`
	// Unrecorded counts the shares and exports whose recipient was not
	// recorded.
	Unrecorded uint64 `json:"unrecorded_recipient"`
	// Incomplete says that the report lists the most recent accesses only.
	Incomplete bool `json:"incomplete"`
	// Notes explain how to read the report.
	Notes []string `json:"notes"`
}

// CustomerAccess is one kind of accessor (staff of one role, a chatbot, an
// automated system, a vendor) for one purpose.
type CustomerAccess struct {
	// Who is the kind of accessor in words ("Staff member, role: Billing").
	Who string `json:"who"`
	// Kind is staff, chatbot, automated system, service provider or
	// administrator.
	Kind string `json:"kind"`
	// People is how many different accounts of that kind it was.
	People     int      `json:"accounts"`
	Purpose    string   `json:"purpose"`
	Data       []string `json:"data"`
	Activities []string `json:"activities"`
	// InChat says that some of it happened during a chat conversation.
	InChat bool `json:"in_chat"`
	// Times counts the accesses; Refused the attempts that were refused.
	Times   uint64 `json:"times"`
	Refused uint64 `json:"refused"`
	// When is the first and last date in words.
	When  string    `json:"when"`
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// CustomerShare is one organisation the data was sent to, by one kind of
// accessor for one purpose.
type CustomerShare struct {
	Recipient string    `json:"recipient"`
	How       string    `json:"how"`
	By        string    `json:"by"`
	Purpose   string    `json:"purpose"`
	Data      []string  `json:"data"`
	Times     uint64    `json:"times"`
	When      string    `json:"when"`
	First     time.Time `json:"first"`
	Last      time.Time `json:"last"`
}

// customerDate is how the report writes a date.
const customerDate = "2 January 2006"

// Customer builds the customer report of in.
func Customer(in CustomerInput) *CustomerReport {
	rep := &CustomerReport{
		Title:  "Who has accessed your personal data",
		Period: periodWords(in.From, in.To),
		From:   in.From.UTC(), To: in.To.UTC(),
		Issued:     in.Issued.UTC().Format(customerDate),
		IssuedAt:   in.Issued.UTC(),
		Accesses:   []CustomerAccess{},
		Shares:     []CustomerShare{},
		Incomplete: in.Truncated,
	}
	type accKey struct{ who, purpose string }
	idx := map[accKey]int{}
	actors := map[accKey]map[string]bool{}
	var outbound uint64
	for _, a := range in.Accesses {
		kind, who := accessorWords(a.ActorType, a.ActorRole, a.ActorVendor)
		k := accKey{who, purposeWords(a.Purpose)}
		i, ok := idx[k]
		if !ok {
			i = len(rep.Accesses)
			idx[k] = i
			actors[k] = map[string]bool{}
			rep.Accesses = append(rep.Accesses, CustomerAccess{Who: who, Kind: kind, Purpose: k.purpose, Data: []string{},
				Activities: []string{}, First: a.First.UTC(), Last: a.Last.UTC()})
		}
		c := &rep.Accesses[i]
		actors[k][a.Tenant+"\x00"+a.ActorID] = true
		c.People = len(actors[k])
		for _, cat := range a.Categories {
			c.Data = addWord(c.Data, categoryWords(cat))
		}
		for _, act := range a.Actions {
			c.Activities = addWord(c.Activities, activityWords(act))
		}
		c.InChat = c.InChat || a.ConversationID != ""
		c.Times += a.Events
		c.Refused += a.Denied
		if a.First.Before(c.First) {
			c.First = a.First.UTC()
		}
		if a.Last.After(c.Last) {
			c.Last = a.Last.UTC()
		}
		outbound += a.Outbound
	}
	for i := range rep.Accesses {
		c := &rep.Accesses[i]
		c.When = spanWords(c.First, c.Last)
		slices.Sort(c.Data)
		slices.SortFunc(c.Activities, func(a, b string) int { return activityRank(a) - activityRank(b) })
	}
	slices.SortStableFunc(rep.Accesses, func(a, b CustomerAccess) int { return b.Last.Compare(a.Last) })

	type shareKey struct{ to, how, by, purpose string }
	sidx := map[shareKey]int{}
	var named uint64
	for _, s := range in.Shares {
		_, by := accessorWords(s.ActorType, s.ActorRole, s.ActorVendor)
		to := s.Destination
		if in.Withheld != nil && in.Withheld(to) {
			to = "a recipient whose name we hold only in coded form (ask us for it)"
		}
		k := shareKey{to, shareWords(s.Action), by, purposeWords(s.Purpose)}
		i, ok := sidx[k]
		if !ok {
			i = len(rep.Shares)
			sidx[k] = i
			rep.Shares = append(rep.Shares, CustomerShare{Recipient: k.to, How: k.how, By: by, Purpose: k.purpose, Data: []string{},
				First: s.First.UTC(), Last: s.Last.UTC()})
		}
		c := &rep.Shares[i]
		for _, cat := range s.Categories {
			c.Data = addWord(c.Data, categoryWords(cat))
		}
		c.Times += s.Events
		named += s.Events
		if s.First.Before(c.First) {
			c.First = s.First.UTC()
		}
		if s.Last.After(c.Last) {
			c.Last = s.Last.UTC()
		}
	}
	for i := range rep.Shares {
		c := &rep.Shares[i]
		c.When = spanWords(c.First, c.Last)
		slices.Sort(c.Data)
	}
	slices.SortStableFunc(rep.Shares, func(a, b CustomerShare) int { return b.Last.Compare(a.Last) })
	if outbound > named {
		rep.Unrecorded = outbound - named
	}
	rep.Summary = customerSummary(rep)
	rep.Notes = []string{
		"Dates are in Coordinated Universal Time (UTC).",
		"Staff are named by their role, not by name. A chatbot or automated system is a computer program acting on our behalf; a service provider is a company that works for us under contract.",
		"\"Refused\" means someone tried to access your data and our access controls stopped them.",
		"This report lists the kinds of data involved (for example your e-mail address), never the data itself.",
	}
	return rep
}

// customerSummary writes the report's opening sentences.
func customerSummary(rep *CustomerReport) []string {
	if len(rep.Accesses) == 0 {
		return []string{fmt.Sprintf("We found no access to your personal data between %s.", between(rep.From, rep.To))}
	}
	var times, refused uint64
	kinds := map[string]bool{}
	var who []string
	for _, a := range rep.Accesses {
		times += a.Times
		refused += a.Refused
		if !kinds[a.Who] {
			kinds[a.Who] = true
			who = append(who, a.Who)
		}
	}
	out := []string{fmt.Sprintf("Between %s, your personal data was accessed %s.", between(rep.From, rep.To), timesWords(times))}
	out = append(out, "It was accessed by: "+strings.Join(who, "; ")+".")
	if refused > 0 {
		occ := fmt.Sprintf("On %d occasions", refused)
		if refused == 1 {
			occ = "Once"
		}
		out = append(out, occ+", someone tried to access your data and was refused by our access controls.")
	}
	switch {
	case len(rep.Shares) == 0 && rep.Unrecorded == 0:
		out = append(out, "Your data was not shared with or sent to any other organisation in this period.")
	case len(rep.Shares) > 0:
		var to []string
		for _, s := range rep.Shares {
			if !slices.Contains(to, s.Recipient) {
				to = append(to, s.Recipient)
			}
		}
		out = append(out, "Your data was shared with or sent to: "+strings.Join(to, "; ")+".")
	}
	if rep.Unrecorded > 0 {
		out = append(out, fmt.Sprintf("Your data was also exported or shared %s without the recipient being recorded.", timesWords(rep.Unrecorded)))
	}
	if rep.Incomplete {
		out = append(out, "This report lists the most recent accesses only: ask us for the complete record.")
	}
	return out
}

// accessorWords says what kind of accessor an actor is, by type, role and
// vendor: never by id or name.
func accessorWords(typ, role, vendor string) (kind, who string) {
	r := words(role)
	switch models.ActorType(typ) {
	case models.ActorHuman:
		kind, who = "staff", "Staff member"
	case models.ActorBot:
		kind, who = "chatbot", "Chatbot (an automated assistant)"
	case models.ActorService:
		kind, who = "automated system", "Automated system"
	case models.ActorVendor:
		kind, who = "service provider", "Service provider"
		if v := words(vendor); v != "" {
			who += " " + v
		}
	case models.ActorAdmin:
		kind, who = "administrator", "System administrator"
	default:
		kind, who = "other", "Other account"
	}
	// A vendor's staff member or bot is the vendor's, whatever its type.
	if v := words(vendor); v != "" && models.ActorType(typ) != models.ActorVendor {
		kind, who = "service provider", "Service provider "+v+": "+strings.ToLower(who[:1])+who[1:]
	}
	// A role that only repeats the kind ("admin" of a System
	// administrator) adds nothing.
	if r != "" && !strings.Contains(strings.ToLower(who), strings.ToLower(r)) {
		who += ", role: " + r
	}
	return kind, who
}

var purposeText = map[string]string{
	"support":    "Customer support (answering your questions and requests)",
	"billing":    "Billing and payments",
	"fraud":      "Fraud prevention and security",
	"security":   "Security",
	"marketing":  "Marketing",
	"analytics":  "Analytics and improving our services",
	"training":   "Training our automated assistants",
	"legal":      "Meeting our legal obligations",
	"compliance": "Meeting our legal obligations",
	"delivery":   "Delivering your orders",
	"":           "No purpose was recorded",
}

// purposeWords is a declared purpose in plain language.
func purposeWords(p string) string {
	if s, ok := purposeText[p]; ok {
		return s
	}
	return capital(words(p))
}

var categoryText = map[string]string{
	models.CategoryEmail:          "e-mail address",
	models.CategoryPhone:          "phone number",
	models.CategoryAddress:        "postal address",
	models.CategoryName:           "name",
	models.CategoryPayment:        "payment details",
	models.CategoryGovernmentID:   "government-issued ID number",
	models.CategoryHealth:         "health information",
	models.CategoryDOB:            "date of birth",
	models.CategoryTranscriptText: "text of your chat conversations",
	models.CategoryOrderHistory:   "order history",
}

// categoryWords is a data category in plain language.
func categoryWords(c string) string {
	if s, ok := categoryText[c]; ok {
		return s
	}
	return strings.ToLower(words(c))
}

var activityText = map[models.Action]string{
	models.ActionRead:   "viewed",
	models.ActionSearch: "searched for",
	models.ActionList:   "listed",
	models.ActionExport: "exported (copied out of our systems)",
	models.ActionUpdate: "changed",
	models.ActionDelete: "deleted",
	models.ActionShare:  "shared with another organisation",
	models.ActionLogin:  "signed in to your account",
}

// activityOrder is the order activities are listed in: looking, changing,
// sending out.
var activityOrder = []models.Action{models.ActionLogin, models.ActionSearch, models.ActionList, models.ActionRead, models.ActionUpdate,
	models.ActionDelete, models.ActionExport, models.ActionShare}

// activityRank is the place of an activity's words in activityOrder (others
// last).
func activityRank(words string) int {
	for i, a := range activityOrder {
		if activityText[a] == words {
			return i
		}
	}
	return len(activityOrder)
}

func activityWords(a string) string {
	if s, ok := activityText[models.Action(a)]; ok {
		return s
	}
	return strings.ToLower(words(a))
}

func shareWords(a string) string {
	if a == string(models.ActionExport) {
		return "Exported to"
	}
	return "Shared with"
}

// acronyms are written in capitals by words.
var acronyms = map[string]bool{"eu": true, "us": true, "uk": true, "kb": true, "crm": true, "etl": true, "it": true, "hr": true,
	"qa": true, "bpo": true, "api": true, "id": true, "vip": true, "emea": true, "apac": true, "gdpr": true}

// words turns an identifier-like name ("support-eu", "kb_indexer") into
// words ("Support EU", "KB indexer").
func words(s string) string {
	parts := strings.FieldsFunc(strings.TrimSpace(s), func(r rune) bool { return r == '-' || r == '_' || r == '.' || r == ' ' })
	for i, p := range parts {
		lp := strings.ToLower(p)
		switch {
		case acronyms[lp]:
			parts[i] = strings.ToUpper(p)
		case i == 0:
			parts[i] = capital(p)
		}
	}
	return strings.Join(parts, " ")
}

func capital(s string) string {
	for i, r := range s {
		return strings.ToUpper(string(r)) + s[i+len(string(r)):]
	}
	return s
}

func addWord(xs []string, w string) []string {
	if w == "" || slices.Contains(xs, w) {
		return xs
	}
	return append(xs, w)
}

func periodWords(from, to time.Time) string {
	return from.UTC().Format(customerDate) + " to " + to.UTC().Format(customerDate)
}

func between(from, to time.Time) string {
	return from.UTC().Format(customerDate) + " and " + to.UTC().Format(customerDate)
}

func spanWords(first, last time.Time) string {
	f, l := first.UTC().Format(customerDate), last.UTC().Format(customerDate)
	if f == l {
		return "on " + f
	}
	return "from " + f + " to " + l
}

func timesWords(n uint64) string {
	switch n {
	case 1:
		return "once"
	case 2:
		return "twice"
	}
	return fmt.Sprintf("%d times", n)
}
