package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"codeberg.org/go-pdf/fpdf"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
)

// RenderCustomer writes the customer report in format f (html, md, json or
// pdf). The HTML is a standalone document; dashboards embeds its body.
func (r *Renderer) RenderCustomer(w io.Writer, rep *CustomerReport, f Format) error {
	var err error
	switch f {
	case FormatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	case FormatMarkdown:
		err = r.customerMD.ExecuteTemplate(w, "customer.md", rep)
	case FormatHTML:
		var buf bytes.Buffer
		if err = r.html.ExecuteTemplate(&buf, "customer-doc", rep); err == nil {
			_, err = buf.WriteTo(w)
		}
	case FormatPDF:
		err = CustomerPDF(w, rep)
	default:
		return fmt.Errorf("unknown customer report format %q (want html, md, json or pdf)", f)
	}
	if err != nil {
		return fmt.Errorf("rendering customer report as %s: %w", f, err)
	}
	return nil
}

// mdEscape keeps text from producers (roles, vendor and recipient names)
// from being read as Markdown: a "|" would split a table cell.
func mdEscape(s string) string {
	s = strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune("\\`*_[]<>|#", c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// The PDF is drawn with codeberg.org/go-pdf/fpdf and the Go fonts embedded
// from golang.org/x/image (Unicode, so vendor and recipient names outside
// Latin-1 print as written): no browser or system font is needed at run
// time. A4, one block per line of the report, page numbers in the footer.
const (
	pdfFont   = "go"
	pdfMargin = 18.0 // mm
	pdfLine   = 5.2  // mm, body line height
	pdfLabelW = 34.0 // mm, width of the labels of a block
)

// CustomerPDF writes the customer report as a PDF document.
func CustomerPDF(w io.Writer, rep *CustomerReport) error {
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.AddUTF8FontFromBytes(pdfFont, "", goregular.TTF)
	pdf.AddUTF8FontFromBytes(pdfFont, "B", gobold.TTF)
	pdf.SetMargins(pdfMargin, pdfMargin, pdfMargin)
	pdf.SetAutoPageBreak(true, pdfMargin)
	pdf.SetTitle(rep.Title, true)
	pdf.SetSubject("Access to your personal data, "+rep.Period, true)
	pdf.SetCreator("chatwarden", true)
	// The document's dates are the report's, so the same report gives the
	// same bytes.
	pdf.SetCreationDate(rep.IssuedAt)
	pdf.SetModificationDate(rep.IssuedAt)
	pdf.SetCatalogSort(true)
	pdf.AliasNbPages("")
	pdf.SetFooterFunc(func() {
		pdf.SetY(-12)
		pdf.SetFont(pdfFont, "", 8)
		pdf.SetTextColor(100, 116, 139)
		pdf.CellFormat(0, 5, rep.Title+" · "+rep.Period+" · page "+strconv.Itoa(pdf.PageNo())+" of {nb}", "", 0, "C", false, 0, "")
	})
	pdf.AddPage()

	pdf.SetTextColor(15, 23, 42)
	pdf.SetFont(pdfFont, "B", 18)
	pdf.MultiCell(0, 9, rep.Title, "", "L", false)
	pdf.SetFont(pdfFont, "", 10)
	pdf.SetTextColor(71, 85, 105)
	pdf.MultiCell(0, pdfLine, "Period: "+rep.Period+" · Issued "+rep.Issued, "", "L", false)
	pdf.Ln(3)
	pdf.SetTextColor(15, 23, 42)
	pdf.SetFont(pdfFont, "", 11)
	pdf.SetFillColor(241, 245, 249)
	for _, s := range rep.Summary {
		pdf.MultiCell(0, 6, s, "", "L", true)
	}

	heading := func(s string) {
		pdf.Ln(5)
		if pdf.GetY() > 250 { // keep a heading with what follows it
			pdf.AddPage()
		}
		pdf.SetFont(pdfFont, "B", 13)
		pdf.SetTextColor(15, 23, 42)
		pdf.MultiCell(0, 7, s, "B", "L", false)
		pdf.Ln(2)
	}
	block := func(title string, rows [][2]string) {
		if pdf.GetY()+float64(len(rows)+1)*pdfLine > 297-pdfMargin-6 {
			pdf.AddPage()
		}
		pdf.SetFont(pdfFont, "B", 11)
		pdf.SetTextColor(15, 23, 42)
		pdf.MultiCell(0, 6, title, "", "L", false)
		for _, r := range rows {
			if r[1] == "" {
				continue
			}
			pdf.SetX(pdfMargin + 4)
			pdf.SetFont(pdfFont, "B", 9.5)
			pdf.SetTextColor(71, 85, 105)
			pdf.CellFormat(pdfLabelW, pdfLine, r[0], "", 0, "L", false, 0, "")
			pdf.SetFont(pdfFont, "", 10)
			pdf.SetTextColor(15, 23, 42)
			pdf.MultiCell(0, pdfLine, r[1], "", "L", false)
		}
		pdf.Ln(2.5)
	}
	orNot := func(xs []string) string {
		if len(xs) == 0 {
			return "not recorded"
		}
		return strings.Join(xs, ", ")
	}

	heading("Who accessed your data")
	if len(rep.Accesses) == 0 {
		pdf.SetFont(pdfFont, "", 11)
		pdf.MultiCell(0, 6, "No one accessed your personal data in this period.", "", "L", false)
	}
	for _, a := range rep.Accesses {
		who := a.Who
		if a.People > 1 {
			who += fmt.Sprintf(" (%d different accounts)", a.People)
		}
		did := strings.Join(a.Activities, ", ")
		if a.InChat {
			did += " (partly during a chat conversation)"
		}
		often := timesWords(a.Times)
		if a.Refused > 0 {
			often += fmt.Sprintf(", of which %d refused", a.Refused)
		}
		block(who, [][2]string{{"Why", a.Purpose}, {"Which data", orNot(a.Data)}, {"What they did", did}, {"When", a.When}, {"How often", often}})
	}

	heading("Sharing with other organisations")
	pdf.SetFont(pdfFont, "", 11)
	pdf.SetTextColor(15, 23, 42)
	if len(rep.Shares) == 0 && rep.Unrecorded == 0 {
		pdf.MultiCell(0, 6, "Your data was not shared with or sent to any other organisation in this period.", "", "L", false)
	}
	for _, s := range rep.Shares {
		block(s.How+" "+s.Recipient, [][2]string{{"By", s.By}, {"Why", s.Purpose}, {"Which data", orNot(s.Data)}, {"When", s.When},
			{"How often", timesWords(s.Times)}})
	}
	if rep.Unrecorded > 0 {
		pdf.SetFont(pdfFont, "", 11)
		pdf.MultiCell(0, 6, fmt.Sprintf("Your data was also exported or shared %s without the recipient being recorded.", timesWords(rep.Unrecorded)), "", "L", false)
	}

	heading("How to read this report")
	pdf.SetFont(pdfFont, "", 10)
	for _, n := range rep.Notes {
		pdf.MultiCell(0, pdfLine, "• "+n, "", "L", false)
		pdf.Ln(1)
	}
	if err := pdf.Error(); err != nil {
		return err
	}
	return pdf.Output(w)
}
