// Package chart draws the small charts of chatwarden's pages and reports as
// inline SVG, on the server: bars, stacked bars and a time series against a
// baseline band. The output is self-contained (colours are attributes, not
// CSS), prints in black and white legibly, and needs no JavaScript.
package chart

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"
)

// Palette holds the series colours, in order; severities use Severity.
var Palette = []string{"#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#64748b", "#ec4899", "#14b8a6"}

// Severity maps severity names to colours.
var Severity = map[string]string{
	"info": "#94a3b8", "low": "#38bdf8", "medium": "#f59e0b", "high": "#f97316", "critical": "#dc2626",
}

// Series is one named row of values, one per label.
type Series struct {
	Name   string
	Values []float64
	// Color overrides the palette colour.
	Color string
}

const (
	width  = 640.0
	height = 220.0
	padL   = 48.0
	padR   = 12.0
	padT   = 14.0
	padB   = 40.0
)

// niceMax rounds v up to 1, 2 or 5 times a power of ten.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// num formats an axis number compactly.
func num(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return trim(fmt.Sprintf("%.1fM", v/1e6))
	case a >= 1e3:
		return trim(fmt.Sprintf("%.1fk", v/1e3))
	case a == math.Trunc(a):
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2g", v)
}

func trim(s string) string { return strings.Replace(s, ".0", "", 1) }

func esc(s string) string { return template.HTMLEscapeString(s) }

type svg struct {
	b strings.Builder
	w float64 // viewBox width
}

func (s *svg) f(format string, args ...any) { fmt.Fprintf(&s.b, format, args...) }

func begin(title string, h float64) *svg { return beginW(title, "chart", width, h) }

// beginW starts an SVG of viewBox width w with the CSS class class.
func beginW(title, class string, w, h float64) *svg {
	s := &svg{w: w}
	s.f(`<svg class="%s" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s" font-family="system-ui, sans-serif" font-size="11">`, class, w, h, esc(title))
	s.f(`<title>%s</title>`, esc(title))
	return s
}

func (s *svg) yAxis(maxV, h float64) {
	plotH := h - padT - padB
	for i := 0; i <= 4; i++ {
		v := maxV * float64(i) / 4
		y := padT + plotH - plotH*float64(i)/4
		s.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e2e8f0"/>`, padL, y, s.w-padR, y)
		s.f(`<text x="%.1f" y="%.1f" text-anchor="end" fill="#475569">%s</text>`, padL-6, y+4, num(v))
	}
}

func (s *svg) legend(series []Series, h float64) {
	x := padL
	for i, se := range series {
		s.f(`<rect x="%.1f" y="%.1f" width="10" height="10" fill="%s"/>`, x, h-12, color(se, i))
		s.f(`<text x="%.1f" y="%.1f" fill="#334155">%s</text>`, x+14, h-3, esc(se.Name))
		x += 24 + 7*float64(len(se.Name))
	}
}

func (s *svg) end() template.HTML {
	s.f(`</svg>`)
	return template.HTML(s.b.String()) //nolint:gosec // every text is escaped above
}

func color(se Series, i int) string {
	if se.Color != "" {
		return se.Color
	}
	return Palette[i%len(Palette)]
}

// Bars draws one bar group per label; with stacked, the series of a label
// are stacked, otherwise side by side. A legend is drawn when there is more
// than one series.
func Bars(title string, labels []string, series []Series, stacked bool) template.HTML {
	h := height
	s := begin(title, h)
	maxV := 0.0
	for i := range labels {
		sum := 0.0
		for _, se := range series {
			if i < len(se.Values) {
				if stacked {
					sum += se.Values[i]
				} else {
					sum = math.Max(sum, se.Values[i])
				}
			}
		}
		maxV = math.Max(maxV, sum)
	}
	maxV = niceMax(maxV)
	s.yAxis(maxV, h)
	plotW, plotH := width-padL-padR, h-padT-padB
	n := math.Max(1, float64(len(labels)))
	slot := plotW / n
	barW := slot * 0.7
	if !stacked && len(series) > 0 {
		barW /= float64(len(series))
	}
	for i, l := range labels {
		x0 := padL + slot*float64(i) + slot*0.15
		base := padT + plotH
		for j, se := range series {
			if i >= len(se.Values) || se.Values[i] <= 0 {
				continue
			}
			bh := plotH * se.Values[i] / maxV
			x := x0
			if !stacked {
				x = x0 + barW*float64(j)
			}
			s.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`,
				x, base-bh, math.Max(1, barW-1), bh, color(se, j), esc(l), esc(se.Name), num(se.Values[i]))
			if stacked {
				base -= bh
			}
		}
		s.f(`<text x="%.1f" y="%.1f" text-anchor="middle" fill="#475569">%s</text>`, padL+slot*float64(i)+slot/2, padT+plotH+14, esc(l))
	}
	if len(series) > 1 {
		s.legend(series, h)
	}
	return s.end()
}

// HBars draws one horizontal bar per label, largest scale first as given.
func HBars(title string, labels []string, values []float64, barColor string) template.HTML {
	rowH := 20.0
	h := padT + rowH*float64(len(labels)) + 8
	s := &svg{}
	s.f(`<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s" font-family="system-ui, sans-serif" font-size="11">`, width, h, esc(title))
	s.f(`<title>%s</title>`, esc(title))
	maxV := 0.0
	for _, v := range values {
		maxV = math.Max(maxV, v)
	}
	if maxV == 0 {
		maxV = 1
	}
	if barColor == "" {
		barColor = Palette[0]
	}
	labelW := 150.0
	plotW := width - labelW - 60
	for i, l := range labels {
		y := padT + rowH*float64(i)
		w := plotW * values[i] / maxV
		s.f(`<text x="%.1f" y="%.1f" text-anchor="end" fill="#334155">%s</text>`, labelW-6, y+13, esc(l))
		s.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="14" fill="%s"/>`, labelW, y+2, math.Max(1, w), barColor)
		s.f(`<text x="%.1f" y="%.1f" fill="#334155">%s</text>`, labelW+w+4, y+13, num(values[i]))
	}
	return s.end()
}

// Band is the expected range an observed series is judged against.
type Band struct {
	Baseline  float64
	Low, High float64
	// Threshold, when above zero, is drawn as a dashed line.
	Threshold float64
}

// Timeline draws values over time (one point per time) against a shaded
// baseline band, marking the span [markFrom, markTo) (e.g. the alert
// window) when it is not zero.
func Timeline(title string, ts []time.Time, values []float64, band Band, markFrom, markTo time.Time) template.HTML {
	return timeline(width, "chart", title, ts, values, band, markFrom, markTo)
}

// WideTimeline is Timeline drawn for a full-width card (a viewBox twice as
// wide, CSS class "chart wide"): the same text size, a longer time axis.
func WideTimeline(title string, ts []time.Time, values []float64, band Band, markFrom, markTo time.Time) template.HTML {
	return timeline(2*width, "chart wide", title, ts, values, band, markFrom, markTo)
}

func timeline(w float64, class, title string, ts []time.Time, values []float64, band Band, markFrom, markTo time.Time) template.HTML {
	h := height
	s := beginW(title, class, w, h)
	plotW, plotH := w-padL-padR, h-padT-padB
	maxV := math.Max(band.High, band.Threshold)
	for _, v := range values {
		maxV = math.Max(maxV, v)
	}
	maxV = niceMax(maxV * 1.05)
	s.yAxis(maxV, h)
	if len(ts) == 0 {
		s.f(`<text x="%.1f" y="%.1f" text-anchor="middle" fill="#64748b">no activity in this window</text>`, w/2, h/2)
		return s.end()
	}
	t0, t1 := ts[0], ts[len(ts)-1]
	if !markFrom.IsZero() && markFrom.Before(t0) {
		t0 = markFrom
	}
	if !markTo.IsZero() && markTo.After(t1) {
		t1 = markTo
	}
	span := t1.Sub(t0).Seconds()
	if span <= 0 {
		span = 60
	}
	xOf := func(t time.Time) float64 { return padL + plotW*t.Sub(t0).Seconds()/span }
	yOf := func(v float64) float64 { return padT + plotH - plotH*v/maxV }
	if !markFrom.IsZero() && !markTo.IsZero() {
		s.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#fee2e2"><title>alert window</title></rect>`,
			xOf(markFrom), padT, math.Max(2, xOf(markTo)-xOf(markFrom)), plotH)
	}
	if band.High > 0 || band.Low > 0 {
		s.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#dbeafe" opacity="0.8"><title>baseline band %s–%s</title></rect>`,
			padL, yOf(band.High), plotW, math.Max(1, yOf(band.Low)-yOf(band.High)), num(band.Low), num(band.High))
	}
	if band.Baseline > 0 {
		s.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#2563eb" stroke-width="1.5"><title>baseline %s</title></line>`,
			padL, yOf(band.Baseline), w-padR, yOf(band.Baseline), num(band.Baseline))
	}
	if band.Threshold > 0 {
		s.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#dc2626" stroke-dasharray="5 4"><title>threshold %s</title></line>`,
			padL, yOf(band.Threshold), w-padR, yOf(band.Threshold), num(band.Threshold))
	}
	var pts []string
	for i, t := range ts {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", xOf(t), yOf(values[i])))
	}
	s.f(`<polyline fill="none" stroke="#0f172a" stroke-width="1.8" points="%s"/>`, strings.Join(pts, " "))
	for i, t := range ts {
		s.f(`<circle cx="%.1f" cy="%.1f" r="2.2" fill="#0f172a"><title>%s: %s</title></circle>`, xOf(t), yOf(values[i]), t.UTC().Format("2006-01-02 15:04"), num(values[i]))
	}
	layout := "15:04"
	if span > 36*3600 {
		layout = "Jan 2"
	}
	for i := 0; i <= 4; i++ {
		t := t0.Add(time.Duration(span * float64(i) / 4 * float64(time.Second)))
		// The first label starts and the last ends at the plot's edge, so
		// neither runs past the picture.
		anchor := map[int]string{0: "start", 4: "end"}[i]
		if anchor == "" {
			anchor = "middle"
		}
		s.f(`<text x="%.1f" y="%.1f" text-anchor="%s" fill="#475569">%s</text>`, xOf(t), padT+plotH+14, anchor, t.UTC().Format(layout))
	}
	leg := []Series{{Name: "observed", Color: "#0f172a"}}
	if band.High > 0 || band.Low > 0 {
		leg = append(leg, Series{Name: "baseline band", Color: "#dbeafe"})
	}
	if band.Threshold > 0 {
		leg = append(leg, Series{Name: "threshold", Color: "#dc2626"})
	}
	if !markFrom.IsZero() && !markTo.IsZero() {
		leg = append(leg, Series{Name: "alert window", Color: "#fee2e2"})
	}
	s.legend(leg, h)
	return s.end()
}
