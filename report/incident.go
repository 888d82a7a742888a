package report

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// IncidentSource gives a breach assessment its figures. *store.Store
// implements it.
type IncidentSource interface {
	// IncidentFacts returns the figures of the accesses in the windows
	// and the queries that produced them.
	IncidentFacts(ctx context.Context, ws []store.ActorWindow) (store.IncidentFacts, error)
}

// MaxIncidentAlerts bounds the alerts one incident is assessed from.
const MaxIncidentAlerts = 20

// NotificationDeadline is the time a controller has to notify the
// supervisory authority of a personal data breach (GDPR Article 33:
// without undue delay and, where feasible, not later than 72 hours after
// having become aware of it).
const NotificationDeadline = 72 * time.Hour

// IncidentAlert is one alert an incident is assessed from.
type IncidentAlert struct {
	ID        string    `json:"id"`
	Detector  string    `json:"detector"`
	Tenant    string    `json:"tenant"`
	ActorID   string    `json:"actor_id"`
	Severity  string    `json:"severity"`
	Status    string    `json:"status"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Summary   string    `json:"summary"`
}

// Assessment is the breach assessment of one incident (a set of alerts):
// who and what was affected, whether data left, and a draft of the
// notification to the supervisory authority with its deadline.
type Assessment struct {
	// ID names the incident: its alert ids, sorted, joined by "+".
	ID     string          `json:"id"`
	Alerts []IncidentAlert `json:"alerts"`
	// DetectedAt is when chatwarden first alerted (the earliest alert's
	// first_seen): the 72-hour clock starts there. NotifyBy is
	// DetectedAt + 72 h; HoursLeft is counted from GeneratedAt (negative:
	// overdue).
	DetectedAt  time.Time `json:"detected_at"`
	NotifyBy    time.Time `json:"notify_by"`
	HoursLeft   float64   `json:"hours_left"`
	GeneratedAt time.Time `json:"generated_at"`
	// Scope is the accesses assessed: each alert's actor over its span.
	Scope []store.ActorWindow `json:"scope"`
	// Totals over the tenants (the per-tenant figures are in Facts).
	Customers        uint64    `json:"customers"`
	WithdrawnConsent uint64    `json:"withdrawn_consent"`
	Records          uint64    `json:"records"`
	Events           uint64    `json:"events"`
	First            time.Time `json:"first_access"`
	Last             time.Time `json:"last_access"`
	Actors           []string  `json:"actors"`
	// DataLeft says whether data left the company: an export, or a share
	// (with or without a named destination).
	DataLeft bool                `json:"data_left"`
	Facts    store.IncidentFacts `json:"facts"`
	// FigureQuery names, per figure, the query (Facts.Queries) behind it.
	FigureQuery map[string]string `json:"figure_query"`
	// Draft is the draft notification to the supervisory authority, in
	// plain text with [brackets] for what a person must fill in.
	Draft string `json:"draft_notification"`
}

// IncidentID names the incident of a set of alert ids.
func IncidentID(ids []string) string {
	s := slices.Clone(ids)
	sort.Strings(s)
	return strings.Join(slices.Compact(s), "+")
}

// ParseIncidentID splits an incident id into its alert ids (at most
// MaxIncidentAlerts, each non-empty).
func ParseIncidentID(id string) ([]string, error) {
	var ids []string
	for _, p := range strings.Split(id, "+") {
		if p = strings.TrimSpace(p); p == "" {
			return nil, fmt.Errorf("incident id %q: an empty alert id", id)
		}
		ids = append(ids, p)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) > MaxIncidentAlerts {
		return nil, fmt.Errorf("incident id: %d alerts, at most %d", len(ids), MaxIncidentAlerts)
	}
	return ids, nil
}

// incidentWindow is the span of an alert's accesses: from its first
// finding's window to its last.
func incidentWindow(a models.Alert) store.ActorWindow {
	start, end := a.FirstSeen, a.LastSeen
	if ws := a.Latest.WindowStart; !ws.IsZero() && ws.Before(start) {
		start = ws
	}
	if we := a.Latest.WindowEnd; !we.IsZero() && we.After(end) {
		end = we
	}
	if !end.After(start) {
		end = start.Add(time.Minute)
	}
	return store.ActorWindow{Tenant: a.Tenant, ActorID: a.ActorID, From: start.UTC(), To: end.UTC()}
}

// Assess builds the breach assessment of alerts at now.
func Assess(ctx context.Context, src IncidentSource, alerts []models.Alert, now time.Time) (*Assessment, error) {
	if len(alerts) == 0 {
		return nil, fmt.Errorf("assessing an incident: no alert")
	}
	as := &Assessment{GeneratedAt: now.UTC(), FigureQuery: map[string]string{
		"customers": store.QueryImpact, "withdrawn_consent": store.QueryConsent, "records": store.QueryImpact,
		"events": store.QueryImpact, "first_access": store.QueryImpact, "last_access": store.QueryImpact,
		"actors": store.QueryImpact, "exports": store.QueryImpact, "shares": store.QueryImpact,
		"categories": store.QueryCategories, "destinations": store.QueryDestinations,
	}}
	var ids []string
	for _, a := range alerts {
		ids = append(ids, a.ID)
		as.Alerts = append(as.Alerts, IncidentAlert{ID: a.ID, Detector: a.Detector, Tenant: a.Tenant, ActorID: a.ActorID,
			Severity: a.Severity.String(), Status: string(a.Status), FirstSeen: a.FirstSeen.UTC(), LastSeen: a.LastSeen.UTC(), Summary: a.Latest.Summary})
		as.Scope = append(as.Scope, incidentWindow(a))
		if as.DetectedAt.IsZero() || a.FirstSeen.Before(as.DetectedAt) {
			as.DetectedAt = a.FirstSeen.UTC()
		}
	}
	sort.Slice(as.Alerts, func(i, j int) bool { return as.Alerts[i].FirstSeen.Before(as.Alerts[j].FirstSeen) })
	as.ID = IncidentID(ids)
	as.NotifyBy = as.DetectedAt.Add(NotificationDeadline)
	as.HoursLeft = as.NotifyBy.Sub(as.GeneratedAt).Hours()
	f, err := src.IncidentFacts(ctx, as.Scope)
	if err != nil {
		return nil, fmt.Errorf("assessing incident %s: %w", as.ID, err)
	}
	as.Facts = f
	actors := map[string]bool{}
	for _, t := range f.Tenants {
		as.Customers += t.Customers
		as.WithdrawnConsent += t.WithdrawnConsent
		as.Records += t.Records
		as.Events += t.Events
		if t.Events > 0 && (as.First.IsZero() || t.First.Before(as.First)) {
			as.First = t.First
		}
		if t.Last.After(as.Last) {
			as.Last = t.Last
		}
		for _, a := range t.Actors {
			actors[a] = true
		}
		as.DataLeft = as.DataLeft || t.Exports > 0 || t.Shares > 0
	}
	as.DataLeft = as.DataLeft || len(f.Destinations) > 0
	as.Actors = []string{}
	for a := range actors {
		as.Actors = append(as.Actors, a)
	}
	sort.Strings(as.Actors)
	as.Draft = as.draft()
	return as, nil
}

// Exports and Shares total the exports and shares over the tenants.
func (as *Assessment) Exports() (events, records uint64) {
	for _, t := range as.Facts.Tenants {
		events += t.Exports
		records += t.ExportRecords
	}
	return events, records
}

// Shares totals the shares over the tenants.
func (as *Assessment) Shares() (events, records uint64) {
	for _, t := range as.Facts.Tenants {
		events += t.Shares
		records += t.ShareRecords
	}
	return events, records
}

// CategoryNames lists the data categories touched, sensitive ones first.
func (as *Assessment) CategoryNames() []string {
	seen := map[string]bool{}
	var sens, other []string
	for _, c := range as.Facts.Categories {
		if seen[c.Category] {
			continue
		}
		seen[c.Category] = true
		if models.SensitiveCategories[c.Category] {
			sens = append(sens, c.Category)
		} else {
			other = append(other, c.Category)
		}
	}
	sort.Strings(sens)
	sort.Strings(other)
	return append(sens, other...)
}

func (as *Assessment) draft() string {
	var b strings.Builder
	cats := as.CategoryNames()
	ex, exRec := as.Exports()
	sh, shRec := as.Shares()
	fmt.Fprintf(&b, "To: [supervisory authority]\nFrom: [controller], data protection officer [name, contact]\n")
	fmt.Fprintf(&b, "Subject: personal data breach notification (GDPR Art. 33), chatwarden incident %s\n\n", as.ID)
	fmt.Fprintf(&b, "1. When we became aware. Our access monitoring raised the first alert at %s (UTC). "+
		"This notification is due by %s (UTC), 72 hours later.\n\n", as.DetectedAt.Format("2006-01-02 15:04"), as.NotifyBy.Format("2006-01-02 15:04"))
	fmt.Fprintf(&b, "2. Nature of the breach. %d account(s) (%s) accessed customer data", len(as.Actors), strings.Join(as.Actors, ", "))
	if !as.First.IsZero() {
		fmt.Fprintf(&b, " between %s and %s (UTC)", as.First.Format("2006-01-02 15:04"), as.Last.Format("2006-01-02 15:04"))
	}
	fmt.Fprintf(&b, " in a way our monitoring flagged as illegitimate (%s).\n\n", strings.Join(as.detectors(), ", "))
	fmt.Fprintf(&b, "3. Data subjects and records concerned. Approximately %d customer(s) and %d record(s)", as.Customers, as.Records)
	if len(cats) > 0 {
		fmt.Fprintf(&b, "; categories of personal data: %s", strings.Join(cats, ", "))
	}
	fmt.Fprintf(&b, ". %d of these customers had withdrawn consent for at least one purpose before the access.\n\n", as.WithdrawnConsent)
	if as.DataLeft {
		fmt.Fprintf(&b, "4. Whether data left the company. Yes: %d export(s) of %d record(s) and %d share(s) of %d record(s)", ex, exRec, sh, shRec)
		if len(as.Facts.Destinations) > 0 {
			var ds []string
			for _, d := range as.Facts.Destinations {
				ds = append(ds, fmt.Sprintf("%s (%d records)", d.Destination, d.Records))
			}
			fmt.Fprintf(&b, ", to %s", strings.Join(ds, ", "))
		}
		b.WriteString(".\n\n")
	} else {
		b.WriteString("4. Whether data left the company. No export or share by these accounts in the period is recorded.\n\n")
	}
	b.WriteString("5. Likely consequences. [assess: e.g. phishing, identity fraud, financial loss, distress]\n\n")
	b.WriteString("6. Measures taken or proposed. [e.g. accounts suspended, credentials rotated, recipients asked to delete, customers informed]\n\n")
	b.WriteString("7. Figures are from chatwarden's access log as of " + as.GeneratedAt.Format("2006-01-02 15:04") +
		" (UTC) and may be refined; the queries behind each figure are attached.\n")
	return b.String()
}

func (as *Assessment) detectors() []string {
	var ds []string
	for _, a := range as.Alerts {
		if !slices.Contains(ds, a.Detector) {
			ds = append(ds, a.Detector)
		}
	}
	return ds
}

// Formats of RenderAssessment.
const (
	AssessText     = "text"
	AssessJSON     = "json"
	AssessMarkdown = "markdown"
)

var assessFuncs = template.FuncMap{
	"join": strings.Join,
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"hours": func(h float64) string {
		if h < 0 {
			return fmt.Sprintf("overdue by %.1f h", -h)
		}
		return fmt.Sprintf("%.1f h left", h)
	},
	"yesno": func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	},
	// md escapes the characters that change Markdown's meaning in a
	// table cell or a line (names come from producers).
	"md": func(s string) string {
		return strings.NewReplacer(`\`, `\\`, "|", `\|`, "*", `\*`, "_", `\_`, "`", "\\`", "<", "&lt;", ">", "&gt;", "[", `\[`, "]", `\]`, "\n", " ").Replace(s)
	},
}

var assessMarkdown = template.Must(template.New("md").Funcs(assessFuncs).Parse(`# Breach assessment: incident {{.ID}}

Detected **{{ts .DetectedAt}}**; notify the supervisory authority by **{{ts .NotifyBy}}** ({{hours .HoursLeft}} at {{ts .GeneratedAt}}).

| figure | value | query |
|---|---|---|
| affected customers | {{.Customers}} | [impact](#query-impact) |
| of whom had withdrawn consent | {{.WithdrawnConsent}} | [withdrawn_consent](#query-withdrawn_consent) |
| records | {{.Records}} | [impact](#query-impact) |
| events | {{.Events}} | [impact](#query-impact) |
| first access | {{ts .First}} | [impact](#query-impact) |
| last access | {{ts .Last}} | [impact](#query-impact) |
| actors | {{range $i, $a := .Actors}}{{if $i}}, {{end}}{{md $a}}{{end}} | [impact](#query-impact) |
| data left the company | {{yesno .DataLeft}} | [impact](#query-impact), [destinations](#query-destinations) |

## Per tenant

| tenant | customers | withdrawn consent | records | exports (records) | shares (records) | denied |
|---|---:|---:|---:|---:|---:|---:|
{{range .Facts.Tenants}}| {{md .Tenant}} | {{.Customers}} | {{.WithdrawnConsent}} | {{.Records}} | {{.Exports}} ({{.ExportRecords}}) | {{.Shares}} ({{.ShareRecords}}) | {{.Denied}} |
{{end}}
## Data categories ([categories](#query-categories))

| tenant | category | customers | records |
|---|---|---:|---:|
{{range .Facts.Categories}}| {{md .Tenant}} | {{md .Category}} | {{.Customers}} | {{.Records}} |
{{end}}
## Destinations ([destinations](#query-destinations))

{{if .Facts.Destinations}}| tenant | destination | records | customers | categories | first | last |
|---|---|---:|---:|---|---|---|
{{range .Facts.Destinations}}| {{md .Tenant}} | {{md .Destination}} | {{.Records}} | {{.Subjects}} | {{md (join .Categories ", ")}} | {{ts .First}} | {{ts .Last}} |
{{end}}{{else}}No share or export named a destination.
{{end}}
## Alerts

| alert | detector | tenant | actor | severity | status | first seen |
|---|---|---|---|---|---|---|
{{range .Alerts}}| {{md .ID}} | {{md .Detector}} | {{md .Tenant}} | {{md .ActorID}} | {{.Severity}} | {{.Status}} | {{ts .FirstSeen}} |
{{end}}
## Draft notification to the supervisory authority

` + "```" + `
{{.Draft}}` + "```" + `

## Queries
{{range .Facts.Queries}}
### query {{.Name}}
<a id="query-{{.Name}}"></a>

` + "```sql" + `
{{.SQL}}
` + "```" + `
{{end}}`))

var assessText = template.Must(template.New("text").Funcs(assessFuncs).Parse(`incident {{.ID}}
detected            {{ts .DetectedAt}}
notify by           {{ts .NotifyBy}} ({{hours .HoursLeft}})
customers           {{.Customers}}  [query impact]
withdrawn consent   {{.WithdrawnConsent}}  [query withdrawn_consent]
records             {{.Records}}  [query impact]
events              {{.Events}}  [query impact]
first access        {{ts .First}}  [query impact]
last access         {{ts .Last}}  [query impact]
actors              {{join .Actors ", "}}  [query impact]
data left           {{yesno .DataLeft}}  [queries impact, destinations]
{{range .Facts.Tenants}}tenant {{.Tenant}}: {{.Customers}} customers ({{.WithdrawnConsent}} withdrawn consent), {{.Records}} records, {{.Exports}} exports ({{.ExportRecords}} records), {{.Shares}} shares ({{.ShareRecords}} records), {{.Denied}} denied
{{end}}{{range .Facts.Categories}}category {{.Tenant}}/{{.Category}}: {{.Customers}} customers, {{.Records}} records  [query categories]
{{end}}{{range .Facts.Destinations}}destination {{.Tenant}}/{{.Destination}}: {{.Records}} records, {{.Subjects}} customers, {{join .Categories ","}}  [query destinations]
{{end}}{{range .Alerts}}alert {{.ID}} {{.Detector}} {{.Tenant}}/{{.ActorID}} {{.Severity}} {{.Status}} {{ts .FirstSeen}}
{{end}}
draft notification:
{{.Draft}}
{{range .Facts.Queries}}
query {{.Name}}:
{{.SQL}}
{{end}}`))

// RenderAssessment writes as in format (text, json or markdown).
func RenderAssessment(w io.Writer, as *Assessment, format string) error {
	switch format {
	case AssessJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(as)
	case AssessMarkdown:
		return assessMarkdown.Execute(w, as)
	case AssessText, "":
		return assessText.Execute(w, as)
	}
	return fmt.Errorf("format %q: want text, json or markdown", format)
}
