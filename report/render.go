package report

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/report/chart"
)

//go:embed templates/*
var templateFS embed.FS

// Renderer renders summaries. Its templates are parsed once, by NewRenderer,
// so that a broken template fails at start-up.
type Renderer struct {
	html *template.Template
	md   *texttemplate.Template
	// customerMD is the customer report's Markdown template.
	customerMD *texttemplate.Template
}

// Funcs are the template helpers the weekly templates use; dashboards adds
// them to its own templates to embed the weekly body.
func Funcs() template.FuncMap {
	return template.FuncMap{
		"pct":       func(f float64) string { return fmt.Sprintf("%.0f%%", f*100) },
		"day":       func(t time.Time) string { return t.UTC().Format("Mon 2 Jan") },
		"ts":        func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") },
		"join":      strings.Join,
		"charts":    Charts,
		"sensitive": func(c string) bool { return models.SensitiveCategories[c] },
		"times":     timesWords,
	}
}

// NewRenderer parses the embedded templates.
func NewRenderer() (*Renderer, error) {
	h, err := template.New("weekly").Funcs(Funcs()).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("parsing weekly html templates: %w", err)
	}
	m, err := texttemplate.New("weekly.md").Funcs(texttemplate.FuncMap(Funcs())).ParseFS(templateFS, "templates/weekly.md")
	if err != nil {
		return nil, fmt.Errorf("parsing weekly markdown template: %w", err)
	}
	cm, err := texttemplate.New("customer.md").Funcs(texttemplate.FuncMap{"join": strings.Join, "md": mdEscape, "times": timesWords}).ParseFS(templateFS, "templates/customer.md")
	if err != nil {
		return nil, fmt.Errorf("parsing customer report markdown template: %w", err)
	}
	return &Renderer{html: h, md: m, customerMD: cm}, nil
}

// HTMLTemplates returns the parsed HTML templates ("weekly-body" is the
// weekly report and "customer-body" the customer report without page
// chrome, "customer-style" the latter's CSS), for embedding in another
// page.
func (r *Renderer) HTMLTemplates() *template.Template { return r.html }

// Format is an output format.
type Format string

// The formats.
const (
	FormatHTML     Format = "html"
	FormatMarkdown Format = "md"
	FormatJSON     Format = "json"
	// FormatPDF is for the customer report only.
	FormatPDF Format = "pdf"
)

// Render writes s in format f.
func (r *Renderer) Render(w io.Writer, s *Summary, f Format) error {
	var err error
	switch f {
	case FormatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err = enc.Encode(s)
	case FormatMarkdown:
		err = r.md.ExecuteTemplate(w, "weekly.md", s)
	case FormatHTML:
		var buf bytes.Buffer
		if err = r.html.ExecuteTemplate(&buf, "weekly-doc", s); err == nil {
			_, err = buf.WriteTo(w)
		}
	default:
		return fmt.Errorf("unknown report format %q (want html, md or json)", f)
	}
	if err != nil {
		return fmt.Errorf("rendering weekly report as %s: %w", f, err)
	}
	return nil
}

// ChartSet holds the summary's charts as inline SVG.
type ChartSet struct {
	Trend      template.HTML
	Severity   template.HTML
	Actors     template.HTML
	Categories template.HTML
	Volume     template.HTML
}

// Charts draws the summary's charts.
func Charts(s *Summary) ChartSet {
	var c ChartSet
	var labels []string
	sevs := []string{"critical", "high", "medium", "low", "info"}
	series := make([]chart.Series, len(sevs))
	for i, n := range sevs {
		series[i] = chart.Series{Name: n, Color: chart.Severity[n]}
	}
	for _, w := range s.Trend {
		labels = append(labels, w.Week[5:])
		for i, n := range sevs {
			series[i].Values = append(series[i].Values, float64(w.BySeverity[n]))
		}
	}
	c.Trend = chart.Bars("Alerts per week by severity", labels, series, true)
	var sl []string
	var sv []float64
	for _, x := range s.ByStatus {
		sl = append(sl, x.Name)
		sv = append(sv, float64(x.Count))
	}
	c.Severity = chart.HBars("Alerts by status", sl, sv, chart.Palette[0])
	var al []string
	var av []float64
	for _, a := range s.TopActors {
		al = append(al, a.ActorID)
		av = append(av, a.Score)
	}
	c.Actors = chart.HBars("Risk score of the top actors", al, av, chart.Severity["high"])
	var cl []string
	var cv []float64
	for _, x := range s.Exposure.Categories {
		cl = append(cl, x.Name)
		cv = append(cv, float64(x.Count))
	}
	c.Categories = chart.HBars("Customers touched by flagged access, per data category", cl, cv, chart.Severity["critical"])
	var dl []string
	ev := chart.Series{Name: "events"}
	for _, d := range s.Volume {
		dl = append(dl, d.Day.Format("Mon 2"))
		ev.Values = append(ev.Values, float64(d.Events))
	}
	c.Volume = chart.Bars("Access events per day", dl, []chart.Series{ev}, false)
	return c
}
