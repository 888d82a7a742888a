package dashboards

import (
	"bytes"
	"context"
	"encoding/base64"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// chromiumPath finds Debian's chromium (installed by scripts/deps.sh). A
// missing browser fails the test: it is part of the suite's dependencies.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is required for the browser tests: run scripts/deps.sh")
	return ""
}

// screenshotDir is where the browser test leaves its screenshots:
// $CHATWARDEN_SCREENSHOTS, else testdata/screenshots under the package.
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("CHATWARDEN_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join("testdata", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browserWait bounds one browser step: a limit for a stuck step, not a
// speed target (Chromium under a load average of 30 is slow).
const browserWait = 2 * time.Minute

// TestBrowser signs in with headless Chromium, opens every page, runs a
// search, acknowledges an alert and saves a screenshot of each step.
func TestBrowser(t *testing.T) {
	t.Parallel() // a database of its own
	f := newFixture(t, Config{})
	dir := screenshotDir(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1366, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	base := f.ts.URL
	// The first action starts the browser; it runs without a timeout, as
	// chromedp asks, and each later step gets its own.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/alerts")); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			buf, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return chromedp.Void{}, err
			}
			return chromedp.Void{}, os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644)
		}
	}
	step := func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, browserWait)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// load runs the actions that lead to another page (a click on a link, a
	// form's submit) and waits until that page has loaded, then runs the
	// checks that follow on it. A node looked up while the old or a
	// half-loaded document is current can be gone by the time it is used
	// ("Could not find node with given id", CI at 3c953a6), and a selector
	// the old page also matches would be waited for on the wrong page.
	load := func(name string, trigger []chromedp.Action[chromedp.Void], then ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, browserWait)
		defer cancel()
		if _, err := chromedp.RunResponse(sctx, trigger...); err != nil {
			t.Fatalf("%s: loading the next page: %v", name, err)
		}
		if err := chromedp.Do(sctx, then...); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	type acts = []chromedp.Action[chromedp.Void]
	text := func(sel string) string {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, browserWait)
		defer cancel()
		s, err := chromedp.Run(sctx, chromedp.Text(css(sel)))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return s
	}
	step("login page", chromedp.WaitVisible(css(`input[name=user]`)), shot("01-login"))
	load("sign in", acts{chromedp.SendKeys(css(`input[name=user]`), "secops-user"), chromedp.SendKeys(css(`input[name=password]`), "pw-secops"),
		chromedp.Submit(css(`form.login`))}, chromedp.WaitVisible(css(`table.feed`)), shot("02-alerts"))
	if feed := text(`table.feed`); !strings.Contains(feed, "agent-17") || !strings.Contains(feed, "open") {
		t.Fatalf("alert feed: %q", feed)
	}
	load("alert detail", acts{chromedp.Click(css(`a[href="/alerts/al-crit"]`))}, chromedp.WaitVisible(css(`svg.chart`)), shot("03-alert"))
	load("acknowledge", acts{chromedp.Click(css(`button[value=acknowledge]`))}, chromedp.WaitVisible(css(`p.ok`)), shot("04-acknowledged"))
	if st := text(`.card.head .status`); st != "acknowledged" {
		t.Fatalf("status after acknowledge: %q", st)
	}
	load("breach assessment", acts{chromedp.Click(css(`a.assess`))}, chromedp.WaitVisible(css(`table.figures`)), shot("04b-incident"))
	if fig, clock := text(`table.figures`), text(`p.clock`); !strings.Contains(fig, "affected customers") || !strings.Contains(fig, "40") ||
		!strings.Contains(clock, "notify the supervisory authority by") {
		t.Fatalf("breach assessment: figures %q, clock %q", fig, clock)
	}
	step("assessment figure links its query", chromedp.Click(css(`table.figures a[href="#query-withdrawn_consent"]`)),
		chromedp.WaitVisible(css(`#query-withdrawn_consent`)))
	step("investigate", chromedp.Navigate(base+"/investigate"), chromedp.WaitVisible(css(`#search`)),
		chromedp.SendKeys(css(`#search input[name=actor]`), "agent-17"), chromedp.SetValue(css(`#search input[name=since]`), "24h"))
	load("investigate search", acts{chromedp.Submit(css(`#search`))}, chromedp.WaitVisible(css(`table.events`)), shot("05-investigate"))
	if k := text(`.kpis`); !strings.Contains(k, "46") {
		t.Fatalf("investigate KPIs: %q", k)
	}
	step("blast radius", chromedp.Navigate(base+"/investigate/blast?alert=al-crit"), chromedp.WaitVisible(css(`.kpis`)), shot("06-blast"))
	step("weekly as secops", chromedp.Navigate(base+"/reports/weekly?week=2026-W48"), chromedp.WaitVisible(css(`.report`)), shot("07-weekly"))
	if p := text(`.lede`); !strings.HasPrefix(p, "In week 2026-W48") {
		t.Fatalf("weekly paragraph: %q", p)
	}
	step("weekly: data shared with third parties", chromedp.ScrollIntoView(css(`#shared`)), shot("07a-weekly-shared"))
	if sh := text(`#shared ~ table`); !strings.Contains(sh, "psp.example") || !strings.Contains(sh, "payment") || !strings.Contains(sh, "new") {
		t.Fatalf("weekly shared section: %q", sh)
	}
	// Without a week: the last complete one (W47) is empty in the fixture,
	// so the page opens on the current week so far and says so; the week
	// picker then opens W47 as asked.
	step("weekly default", chromedp.Navigate(base+"/reports/weekly"), chromedp.WaitVisible(css(`p.note`)), shot("07b-weekly-default"))
	if n, p := text(`p.note`), text(`.lede`); !strings.Contains(n, "2026-W47, the last complete week, has no alerts") || !strings.HasPrefix(p, "In week 2026-W48") {
		t.Fatalf("weekly default: note %q, paragraph %q", n, p)
	}
	load("weekly picker", acts{chromedp.SetValue(css(`input[name=week]`), "2026-W47"), chromedp.Submit(css(`form.pager`))},
		chromedp.WaitVisible(css(`.report`)))
	if p := text(`.lede`); !strings.HasPrefix(p, "In week 2026-W47") {
		t.Fatalf("weekly after picking 2026-W47: %q", p)
	}
	load("sign out", acts{chromedp.Click(css(`header .who button`))}, chromedp.WaitVisible(css(`input[name=user]`)))
	load("sign in as admin", acts{chromedp.SendKeys(css(`input[name=user]`), "admin-user"), chromedp.SendKeys(css(`input[name=password]`), "pw-admin"),
		chromedp.Submit(css(`form.login`))}, chromedp.WaitVisible(css(`table.feed`)))
	// A customer look-up is a POST; the pages it leads to are addressed by
	// an opaque handle, so the raw id is in no URL the browser keeps
	// (issue 10 item 10).
	location := func() string {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, browserWait)
		defer cancel()
		u, err := chromedp.Run(sctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	step("customer search", chromedp.Navigate(base+"/investigate"), chromedp.WaitVisible(css(`#search`)),
		chromedp.SendKeys(css(`#search input[name=subject]`), "cust-1"), chromedp.SendKeys(css(`#search input[name=tenant]`), "retail"),
		chromedp.SetValue(css(`#search input[name=since]`), "24h"))
	load("customer search submit", acts{chromedp.Submit(css(`#search`))}, chromedp.WaitVisible(css(`table.events`)), shot("08-customer-search"))
	if u := location(); strings.Contains(u, "cust-1") || !strings.Contains(u, "/investigate?h=") {
		t.Fatalf("customer search landed on %q", u)
	}
	load("data-subject report", acts{chromedp.Click(css(`a[href^="/investigate/subject?h="]`))}, chromedp.WaitVisible(css(`p.lede`)), shot("09-subject"))
	if p := text(`p.lede`); !strings.Contains(p, "7 accesses by 1 actors") {
		t.Fatalf("subject report: %q", p)
	}
	if u := location(); strings.Contains(u, "cust-1") {
		t.Fatalf("data-subject report at %q", u)
	}
	sctx, cancelH := context.WithTimeout(ctx, browserWait)
	visited, err := chromedp.Run(sctx, chromedp.Evaluate[string](`performance.getEntriesByType("navigation").map(e => e.name).join(" ") + " " + document.referrer`))
	cancelH()
	if err != nil || strings.Contains(visited, "cust-1") {
		t.Fatalf("navigation entries %q %v", visited, err)
	}
	// The customer-readable report (issue 14 item 5), reached from the
	// data-subject page, with a chatbot, a vendor's shares and another
	// tenant's share of the same pseudonym added.
	addCustomerEvents(t, f)
	load("customer-readable report", acts{chromedp.Click(css(`a#customer-report`))}, chromedp.WaitVisible(css(`article.customer-report`)),
		shot("09b-customer-report"))
	checkCustomerText(t, f, "page", text(`article.customer-report`))
	step("customer report as printed", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: "print"})
		return err
	}), shot("09c-customer-report-print"))
	sctx, cancelP := context.WithTimeout(ctx, browserWait)
	printed, err := chromedp.Run(sctx, chromedp.Evaluate[string](`["header.top", "main > h1", ".customer-bar", "footer", "article.customer-report"]
		.map(s => s + "=" + getComputedStyle(document.querySelector(s)).display).join(" ") +
		(document.documentElement.scrollWidth > document.documentElement.clientWidth ? " overflows " + document.documentElement.scrollWidth + ">" + document.documentElement.clientWidth : "")`))
	cancelP()
	if err != nil || printed != "header.top=none main > h1=none .customer-bar=none footer=none article.customer-report=block" {
		t.Fatalf("printed customer report shows %q (%v), want the document alone", printed, err)
	}
	step("screen media again", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{})
		return err
	}))
	// The PDF as the browser downloads it from the page's link: its text
	// layer read back, its first page rendered to an image.
	sctx, cancelF := context.WithTimeout(ctx, browserWait)
	b64, err := chromedp.Run(sctx, chromedp.Evaluate[string](`fetch(document.querySelector("#customer-pdf").href)
		.then(r => r.ok && r.headers.get("Content-Type") === "application/pdf" ? r.arrayBuffer() : Promise.reject(new Error("PDF link answered " + r.status)))
		.then(b => { const u = new Uint8Array(b); let s = ""; for (let i = 0; i < u.length; i++) s += String.fromCharCode(u[i]); return btoa(s); })`,
		chromedp.EvalAwaitPromise))
	cancelF()
	if err != nil {
		t.Fatalf("downloading the customer report's PDF: %v", err)
	}
	pdf, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	checkCustomerText(t, f, "pdf", pdfText(t, pdf))
	checkPDFImage(t, pdf, filepath.Join(dir, "09d-customer-report-pdf.png"))
	step("audit", chromedp.Navigate(base+"/audit"), chromedp.WaitVisible(css(`table`)), shot("10-audit"))
	audit := text(`table`)
	for _, want := range []string{"secops-user", "alert_action", "history", "dsar", "customer_report"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit page lacks %q", want)
		}
	}
}

// checkCustomerText checks a rendering of the customer report of the
// fixture with addCustomerEvents: the accessors by kind and role, the
// recipients, plain categories, and none of the names and ids.
func checkCustomerText(t *testing.T, f *fixture, name, text string) {
	t.Helper()
	flat := strings.Join(strings.Fields(text), " ")
	for _, want := range []string{"Who has accessed your personal data", "Staff member, role: Support",
		"Chatbot (an automated assistant), role: Chat assistant", "Service provider Acme BPO, role: Vendor agent",
		"paycorp.example", "whose name we hold only in coded form", "payment details", "e-mail address"} {
		if !strings.Contains(flat, want) {
			t.Errorf("%s lacks %q:\n%s", name, want, text)
		}
	}
	for _, s := range customerForbidden(f) {
		if strings.Contains(strings.ToLower(flat), strings.ToLower(s)) {
			t.Errorf("%s holds %q:\n%s", name, s, text)
		}
	}
}

// checkPDFImage renders the PDF's first page with poppler's pdftoppm
// (scripts/deps.sh), keeps it at pngPath for a person to look at, and checks
// the picture against the PDF's text layer (pdftotext -bbox: each word and
// where it is on the page), which stands in for OCR: the page is A4
// portrait; the first words are the title and the title's box is inked;
// at least 90% of the dark pixels lie inside the boxes of the text layer's
// words (what is drawn is the text, not something else); and a blank or
// solid page fails.
func checkPDFImage(t *testing.T, pdf []byte, pngPath string) {
	t.Helper()
	bin, err := exec.LookPath("pdftoppm")
	if err != nil {
		t.Fatal("pdftoppm (poppler-utils) is required: run scripts/deps.sh")
	}
	in := filepath.Join(t.TempDir(), "report.pdf")
	if err := os.WriteFile(in, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile", in, strings.TrimSuffix(pngPath, ".png")).CombinedOutput(); err != nil {
		t.Fatalf("pdftoppm: %v\n%s", err, out)
	}
	out, err := os.ReadFile(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("decoding the rendered page: %v", err)
	}
	bbox, err := exec.Command("pdftotext", "-bbox", "-f", "1", "-l", "1", in, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext -bbox: %v", err)
	}
	pageW := regexp.MustCompile(`<page width="([0-9.]+)"`).FindSubmatch(bbox)
	if pageW == nil {
		t.Fatalf("pdftotext -bbox: no page:\n%s", bbox)
	}
	b := img.Bounds()
	if ratio := float64(b.Dy()) / float64(b.Dx()); ratio < 1.39 || ratio > 1.44 {
		t.Errorf("rendered page is %dx%d, not A4 portrait", b.Dx(), b.Dy())
	}
	ptW, _ := strconv.ParseFloat(string(pageW[1]), 64)
	scale := float64(b.Dx()) / ptW
	type word struct {
		r    image.Rectangle
		text string
	}
	var ws []word
	for _, m := range regexp.MustCompile(`<word xMin="([0-9.]+)" yMin="([0-9.]+)" xMax="([0-9.]+)" yMax="([0-9.]+)">([^<]*)</word>`).FindAllSubmatch(bbox, -1) {
		var c [4]float64
		for i := range c {
			c[i], _ = strconv.ParseFloat(string(m[i+1]), 64)
		}
		ws = append(ws, word{image.Rect(int(c[0]*scale)-1, int(c[1]*scale)-1, int(c[2]*scale)+2, int(c[3]*scale)+2), string(m[5])})
	}
	if len(ws) < 6 {
		t.Fatalf("text layer of page 1: %d words", len(ws))
	}
	var title []string
	titleBox := ws[0].r
	for _, w := range ws[:6] {
		title = append(title, w.text)
		titleBox = titleBox.Union(w.r)
	}
	isDark := func(x, y int) bool {
		cr, cg, cb, _ := img.At(x, y).RGBA()
		return (cr+cg+cb)/3 < 0x8000
	}
	var dark, inWords, inTitle int
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if !isDark(x, y) {
				continue
			}
			dark++
			p := image.Pt(x, y)
			if p.In(titleBox) {
				inTitle++
			}
			for _, w := range ws {
				if p.In(w.r) {
					inWords++
					break
				}
			}
		}
	}
	page := float64(dark) / float64(b.Dx()*b.Dy())
	titleInk := float64(inTitle) / float64(titleBox.Dx()*titleBox.Dy())
	inText := float64(inWords) / float64(max(dark, 1))
	t.Logf("rendered PDF page 1 (%s): %dx%d, dark %.3f of the page, %.3f of the title box, %.3f of the dark pixels inside the text layer's %d words",
		pngPath, b.Dx(), b.Dy(), page, titleInk, inText, len(ws))
	if strings.Join(title, " ") != "Who has accessed your personal data" || titleInk < 0.08 {
		t.Errorf("title %q, inked %.3f of its box", strings.Join(title, " "), titleInk)
	}
	if page < 0.005 || page > 0.25 || inText < 0.9 {
		t.Errorf("rendered page: dark pixels %.3f of the page, %.3f of them inside words", page, inText)
	}
}
