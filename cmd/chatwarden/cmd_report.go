package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/chatwarden/chatwarden/report"
)

func runReport(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] != "weekly" {
		fmt.Fprintln(e.stderr, "usage: chatwarden report weekly [-week 2026-W47] [-tenant T] [-as USER] [-format md|html|json]")
		return errUsage
	}
	fs, cfgPath := newFlags(e, "report weekly")
	week := fs.String("week", "", "ISO week, e.g. 2026-W47 (default: the last complete week)")
	format := addFormatFlag(fs, "md", "html", "json").withAlias("text", "md")
	tenant := fs.String("tenant", "", "only this tenant (default: every tenant the user may see)")
	as := fs.String("as", "", "dashboards user whose tenants bound the report (default: the OS user)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	out, err := format.get(e.stderr)
	if err != nil {
		return err
	}
	w := report.LastComplete(time.Now())
	if *week != "" {
		var err error
		if w, err = report.ParseWeek(*week); err != nil {
			return err
		}
	}
	rd, err := report.NewRenderer()
	if err != nil {
		return err
	}
	c, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	// A user limited to some tenants gets the report of those, as on the
	// dashboards.
	_, tenants, err := cliTenants(c, cliUser(*as), *tenant, false)
	if err != nil {
		return err
	}
	s, err := openStore(ctx, e, c)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(e.stderr, "building the weekly report for %s ...\n", w)
	start := time.Now()
	sum, err := newReporter(s, c).WeeklyFor(ctx, w, tenants, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "built in %s\n", time.Since(start).Round(time.Millisecond))
	return renderReport(e.stdout, rd, sum, report.Format(out))
}

// renderReport writes sum in format. Markdown and HTML, which land on a
// terminal as often as in a file, have the producers' strings in them
// (actor ids, vendors, summaries) with control characters escaped
// (termSafeText); JSON is for programs and stays as it is.
func renderReport(w io.Writer, rd *report.Renderer, sum *report.Summary, format report.Format) error {
	if format == report.FormatJSON {
		return rd.Render(w, sum, format)
	}
	var buf bytes.Buffer
	if err := rd.Render(&buf, sum, format); err != nil {
		return err
	}
	_, err := io.WriteString(w, termSafeText(buf.String()))
	return err
}
