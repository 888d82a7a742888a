package dashboards

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/chatwarden/chatwarden/pseudonym"
	"github.com/chatwarden/chatwarden/report"
	"github.com/chatwarden/chatwarden/store"
)

// The customer-readable report (/investigate/subject/customer, POST
// /api/subjects/customer-report, `chatwarden dsar -customer`) is the
// data-subject report as a document the business hands to its customer:
// report.Customer words it; here it is scoped, audited and served. The
// same roles produce it as the data-subject report, and every generation is
// written to the audit trail as customer_report.

// ErrManyTenants is what CustomerReportOf returns when the customer's data
// was found in more than one tenant: a customer report covers one tenant
// (one business), so the caller must name it.
var ErrManyTenants = errors.New("the customer's data is in more than one tenant: name the tenant (a customer report covers one)")

// CustomerReportOf builds the customer-readable report of the customers
// (pseudonyms) ids over [from, to) at now, in one tenant: tenants bounds the
// search (nil: every tenant) and the report covers the single tenant the
// accesses were found in (ErrManyTenants when more than one). It returns the
// report, the tenant ("" when nothing was found) and the number of lines
// read, for the audit trail, which the caller writes.
func CustomerReportOf(ctx context.Context, q SubjectQueries, tenants, ids []string, from, to, now time.Time) (*report.CustomerReport, string, int, error) {
	acc, more, err := q.SubjectAccesses(ctx, tenants, ids, from, to)
	if err != nil {
		return nil, "", 0, err
	}
	found := TenantsOf(acc, func(a store.SubjectAccess) string { return a.Tenant })
	var tenant string
	switch {
	case len(found) > 1:
		return nil, "", 0, ErrManyTenants
	case len(found) == 1:
		tenant = found[0]
	case len(tenants) == 1:
		tenant = tenants[0]
	}
	var sh []store.SubjectShare
	if tenant != "" {
		var shMore bool
		if sh, shMore, err = q.SubjectShares(ctx, []string{tenant}, ids, from, to); err != nil {
			return nil, "", 0, err
		}
		more = more || shMore
	}
	rep := report.Customer(report.CustomerInput{From: from, To: to, Issued: now, Accesses: acc, Shares: sh, Truncated: more,
		Withheld: pseudonym.IsPseudonym})
	return rep, tenant, len(acc) + len(sh), nil
}

// customer runs and audits the customer-readable report of q's customer.
// format is recorded in the audit trail.
func (s *Server) customer(r *http.Request, q Search, format report.Format) (*report.CustomerReport, string, error) {
	tenants, ids, from, to, err := s.subjectScope(r, q)
	if err != nil {
		return nil, "", err
	}
	rep, tenant, rows, err := CustomerReportOf(r.Context(), s.d.Subjects, tenants, ids, from, to, s.now())
	if errors.Is(err, ErrManyTenants) {
		return nil, "", errorf(http.StatusBadRequest, "%v", err)
	}
	if err != nil {
		return nil, "", err
	}
	var about []string
	if tenant != "" {
		about = []string{tenant}
	}
	if err := s.audit(r, "customer_report", subjectDetail(about, ids, from, to)+" format="+string(format), rows, about); err != nil {
		return nil, "", err
	}
	return rep, tenant, nil
}

// customerFormat reads ?format= (default html).
func customerFormat(v url.Values, def report.Format) (report.Format, error) {
	f := report.Format(v.Get("format"))
	switch f {
	case "":
		return def, nil
	case report.FormatHTML, report.FormatMarkdown, report.FormatJSON, report.FormatPDF:
		return f, nil
	}
	return "", errorf(http.StatusBadRequest, "format must be html, md, json or pdf")
}

// customerView is the page around the customer's document.
type customerView struct {
	Tenant string
	// Body is the document, rendered by report's template.
	Body template.HTML
	// PDF, Markdown and Back are links: the same report as a download, and
	// the responder's data-subject report.
	PDF, Markdown, Back template.URL
}

// customerPage serves the customer-readable report: a page (print-friendly:
// printing shows the document only), or with ?format=pdf|md|json a
// download. The customer is given like the data-subject page's: a handle
// (?h=) or a pseudonym.
func (s *Server) customerPage(w http.ResponseWriter, r *http.Request) error {
	q, err := s.searchFrom(r)
	if err != nil {
		return err
	}
	format, err := customerFormat(r.URL.Query(), report.FormatHTML)
	if err != nil {
		return err
	}
	rep, tenant, err := s.customer(r, q, format)
	if err != nil {
		return err
	}
	name := "access-report-" + s.now().Format("2006-01-02")
	switch format {
	case report.FormatPDF, report.FormatMarkdown, report.FormatJSON:
		var buf bytes.Buffer
		if err := s.renderer.RenderCustomer(&buf, rep, format); err != nil {
			return err
		}
		ct := map[report.Format]string{report.FormatPDF: "application/pdf", report.FormatMarkdown: "text/markdown; charset=utf-8",
			report.FormatJSON: "application/json"}[format]
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+"."+string(format)+`"`)
		_, err := buf.WriteTo(w)
		return err
	}
	var body bytes.Buffer
	if err := s.renderer.HTMLTemplates().ExecuteTemplate(&body, "customer-body", rep); err != nil {
		return fmt.Errorf("rendering the customer report: %w", err)
	}
	link := func(path, format string) template.URL {
		v := r.URL.Query()
		v.Del("format")
		if format != "" {
			v.Set("format", format)
		}
		return template.URL(path + "?" + v.Encode()) //nolint:gosec // a handle or pseudonym query, encoded
	}
	v := customerView{Tenant: tenant, Body: template.HTML(body.String()), //nolint:gosec // rendered by html/template
		PDF: link(r.URL.Path, "pdf"), Markdown: link(r.URL.Path, "md"), Back: link("/investigate/subject", "")}
	return s.render(w, "customer", s.pageData(r, "Customer-readable access report", v))
}

// customerStyle serves the customer document's CSS (report's
// "customer-style" template: one copy for the page and the standalone
// document; inline styles are refused by the Content-Security-Policy).
func (s *Server) customerStyle(w http.ResponseWriter, _ *http.Request) {
	var buf bytes.Buffer
	if err := s.renderer.HTMLTemplates().ExecuteTemplate(&buf, "customer-style", nil); err != nil {
		s.log.Error("rendering the customer report's style", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	_, _ = buf.WriteTo(w)
}

// apiCustomer answers POST /api/subjects/customer-report: the customer
// report as JSON, for the look-up of /api/subjects (tenant, subject, since,
// from, to) in the body. The document itself (PDF, Markdown, HTML) is the
// page's: GET /investigate/subject/customer?format=pdf with a pseudonym.
func (s *Server) apiCustomer(w http.ResponseWriter, r *http.Request) error {
	q, _, err := s.searchOfRequest(w, r)
	if err != nil {
		return err
	}
	rep, _, err := s.customer(r, q, report.FormatJSON)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}
