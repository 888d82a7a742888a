package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/chatwarden/chatwarden/dashboards"
	"github.com/chatwarden/chatwarden/internal/progress"
	"github.com/chatwarden/chatwarden/pseudonym"
	"github.com/chatwarden/chatwarden/report"
	"github.com/chatwarden/chatwarden/store"
)

func runDSAR(ctx context.Context, e *env, args []string) error {
	fs, cfgPath := newFlags(e, "dsar")
	subject := fs.String("subject", "", "customer id (raw: pseudonymized with every configured key) or pseudonym")
	since := fs.String("since", "90d", "look-back, e.g. 30d")
	format := addFormatFlag(fs, "text", "json", "md", "html", "pdf").withAlias("table", "text")
	customer := fs.Bool("customer", false, "the customer-readable report: staff by role, no internal ids, plain language (-format md (text), html, pdf or json)")
	outPath := fs.String("out", "", "write the report to this file instead of standard output (-customer; a PDF needs it when standard output is a terminal)")
	as := fs.String("as", "", "user recorded in the audit trail (default: the OS user)")
	tenant := fs.String("tenant", "", "tenant the customer belongs to (for a raw -subject: default the user's only tenant, else \"default\")")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	out, err := format.get(e.stderr)
	if err != nil {
		return err
	}
	if *subject == "" {
		fmt.Fprintln(e.stderr, "chatwarden dsar: -subject is required")
		return errUsage
	}
	if !*customer && (out == "md" || out == "html" || out == "pdf" || *outPath != "") {
		fmt.Fprintf(e.stderr, "chatwarden dsar: -format %s and -out are for the customer-readable report: add -customer\n", out)
		return errUsage
	}
	d, err := dashboards.ParseSince(*since)
	if err != nil {
		return err
	}
	c, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	ten, tenants, err := cliTenants(c, cliUser(*as), *tenant, !pseudonym.IsPseudonym(*subject))
	if err != nil {
		return err
	}
	ids, err := subjectPseudonyms(c, ten, *subject)
	if err != nil {
		return err
	}
	s, err := openStore(ctx, e, c)
	if err != nil {
		return err
	}
	defer s.Close()
	to := time.Now().UTC()
	from := to.Add(-d)
	if *customer {
		return customerReport(ctx, e, s, customerArgs{user: cliUser(*as), tenants: tenants, ids: ids, from: from, to: to, format: out, path: *outPath})
	}
	fmt.Fprintf(e.stderr, "data-subject access report %s .. %s ...\n", from.Format(time.RFC3339), to.Format(time.RFC3339))
	rep, err := dashboards.SubjectReportOf(ctx, s, tenants, ids, from, to)
	if err != nil {
		return err
	}
	detail := "tenant=" + strings.Join(tenants, ",") + " subject=" + strings.Join(ids, ",") + " from=" + from.Format(time.RFC3339) + " to=" + to.Format(time.RFC3339)
	about := tenants
	if len(about) == 0 {
		about = dashboards.TenantsOf(rep.Accesses, func(a store.SubjectAccess) string { return a.Tenant })
	}
	if err := auditCLI(ctx, s, cliUser(*as), "dsar", detail, len(rep.Accesses), about); err != nil {
		return fmt.Errorf("not showing results: %w", err)
	}
	if out == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(e.stdout, "Data-subject access report, %s to %s UTC\n", from.Format("2006-01-02 15:04"), to.Format("2006-01-02 15:04"))
	fmt.Fprintf(e.stdout, "%d accesses by %d actors; data categories: %s\n\n", rep.Events, rep.Actors, strings.Join(termSafeAll(rep.Categories), ", "))
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTOR\tTYPE\tVENDOR\tPURPOSE\tCONVERSATION\tSTORES\tCATEGORIES\tACCESSES\tRECORDS\tFIRST\tLAST")
	for _, a := range rep.Accesses {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", termSafe(a.ActorID), termSafe(string(a.ActorType)),
			termSafe(a.ActorVendor), termSafe(a.Purpose), termSafe(a.ConversationID), strings.Join(termSafeAll(a.Stores), ","),
			strings.Join(termSafeAll(a.Categories), ","), a.Events, a.Records, a.First.Format("2006-01-02 15:04"), a.Last.Format("2006-01-02 15:04"))
	}
	if rep.Truncated {
		fmt.Fprintln(tw, "(cut at the line limit: narrow -since)")
	}
	return tw.Flush()
}

type customerArgs struct {
	user         string
	tenants, ids []string
	from, to     time.Time
	format, path string
}

// customerReport is `chatwarden dsar -customer`: the customer-readable
// report (dashboards.CustomerReportOf), audited as customer_report like the
// page, written to -out or standard output.
func customerReport(ctx context.Context, e *env, s *store.Store, a customerArgs) error {
	f := report.Format(a.format)
	if a.format == "text" {
		f = report.FormatMarkdown
	}
	if f == report.FormatPDF && a.path == "" && progress.IsTerminal(e.stdout) {
		return errors.New("-format pdf: give -out FILE (standard output is a terminal)")
	}
	fmt.Fprintf(e.stderr, "customer-readable access report %s .. %s ...\n", a.from.Format(time.RFC3339), a.to.Format(time.RFC3339))
	rep, tenant, rows, err := dashboards.CustomerReportOf(ctx, s, a.tenants, a.ids, a.from, a.to, time.Now())
	if err != nil {
		return err
	}
	var about []string
	if tenant != "" {
		about = []string{tenant}
	}
	detail := "tenant=" + strings.Join(about, ",") + " subject=" + strings.Join(a.ids, ",") + " from=" + a.from.Format(time.RFC3339) +
		" to=" + a.to.Format(time.RFC3339) + " format=" + string(f)
	if err := auditCLI(ctx, s, a.user, "customer_report", detail, rows, about); err != nil {
		return fmt.Errorf("not writing the report: %w", err)
	}
	r, err := report.NewRenderer()
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := r.RenderCustomer(&b, rep, f); err != nil {
		return err
	}
	if a.path != "" {
		if err := os.WriteFile(a.path, b.Bytes(), 0o600); err != nil {
			return fmt.Errorf("writing the customer report: %w", err)
		}
		fmt.Fprintf(e.stderr, "wrote %s (%d bytes)\n", a.path, b.Len())
		return nil
	}
	text := b.String()
	if f == report.FormatMarkdown {
		text = termSafeText(text) // names come from producers
	}
	_, err = io.WriteString(e.stdout, text)
	return err
}
