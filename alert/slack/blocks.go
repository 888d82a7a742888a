package slack

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/chatwarden/chatwarden/alert"
	"github.com/chatwarden/chatwarden/models"
)

// BlockIDPrefix starts the block_id of every message's first block; the
// message id follows, so a channel-history look-up can find the message.
const BlockIDPrefix = "cw:"

// MetadataEventType is the event_type of the metadata every message carries
// (payload {"message_id": ...}).
const MetadataEventType = "chatwarden_alert"

// Escape escapes Slack mrkdwn control characters (&, <, >) in user-derived
// text, so that it cannot form links, mentions or markup. Newlines become
// spaces where one line is wanted (see oneLine).
func Escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// oneLine escapes s and folds it onto one line.
func oneLine(s string) string {
	return Escape(strings.Join(strings.Fields(s), " "))
}

// code shows s in inline code, escaped, without backticks that would end it.
func code(s string) string {
	return "`" + strings.ReplaceAll(oneLine(s), "`", "'") + "`"
}

func emoji(s models.Severity) string {
	switch s {
	case models.SeverityCritical:
		return ":rotating_light:"
	case models.SeverityHigh:
		return ":red_circle:"
	case models.SeverityMedium:
		return ":large_orange_circle:"
	case models.SeverityLow:
		return ":large_yellow_circle:"
	}
	return ":information_source:"
}

// num formats a number for people: integers with thousands separators,
// others with three significant digits.
func num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		s := strconv.FormatInt(int64(math.Abs(v)), 10)
		var b strings.Builder
		if v < 0 {
			b.WriteByte('-')
		}
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		return b.String()
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func prob(p float64) string {
	if p >= 0.01 {
		return strconv.FormatFloat(p, 'f', 3, 64)
	}
	return strconv.FormatFloat(p, 'e', 1, 64)
}

func clock(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

func user(by string) string {
	if id, ok := strings.CutPrefix(by, "slack:"); ok && id != "" {
		return "<@" + Escape(id) + ">"
	}
	return Escape(by)
}

func channelRef(ch string) string {
	if strings.HasPrefix(ch, "C") || strings.HasPrefix(ch, "G") {
		return "<#" + Escape(ch) + ">"
	}
	return Escape(ch)
}

func mrkdwn(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, s, false, false)
}
func plain(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, s, true, false)
}

// truncate keeps s within Slack's per-text limit.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - 1
	for cut > 0 && !utfStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utfStart(b byte) bool { return b&0xC0 != 0x80 }

// headline is the one-line summary of an alert.
func headline(v *alert.AlertView) string {
	summary := v.Latest.Summary
	if summary == "" {
		summary = v.Latest.Evidence.Metric
	}
	h := fmt.Sprintf("%s *%s* %s · actor %s", emoji(v.Severity), strings.ToUpper(v.Severity.String()),
		code(v.Detector), code(v.ActorID))
	if v.Tenant != "" && v.Tenant != "default" {
		h += " · tenant " + oneLine(v.Tenant)
	}
	if summary != "" {
		h += " — " + oneLine(summary)
	}
	return h
}

// Render builds the Block Kit blocks and the notification fallback text of m.
func Render(m *alert.Message) ([]slack.Block, string) {
	switch m.Kind {
	case alert.KindDigest:
		return renderDigest(m)
	case alert.KindEscalation:
		return renderAlerts(m, true)
	}
	return renderAlerts(m, false)
}

func renderAlerts(m *alert.Message, escalation bool) ([]slack.Block, string) {
	first := BlockIDPrefix + m.ID
	sorted := *m
	sorted.Alerts = append([]alert.AlertView(nil), m.Alerts...)
	alert.SortAlerts(sorted.Alerts)
	m = &sorted
	if len(m.Alerts) == 0 {
		return []slack.Block{slack.NewSectionBlock(mrkdwn("Alert "+code(m.ID)+" (no details stored)"), nil, nil,
			slack.SectionBlockOptionBlockID(first))}, "chatwarden alert"
	}
	top := &m.Alerts[0]
	head := headline(top)
	switch {
	case m.Closed:
		head = ":white_check_mark: *Closed* · " + head
	case escalation:
		head = ":warning: *Escalated* · " + head
	}
	var blocks []slack.Block
	blocks = append(blocks, slack.NewSectionBlock(mrkdwn(truncate(head, 2900)), nil, nil, slack.SectionBlockOptionBlockID(first)))
	blocks = append(blocks, slack.NewSectionBlock(nil, evidenceFields(top), nil, slack.SectionBlockOptionBlockID("cw-evidence")))
	if br := blastRadius(&top.Latest.Evidence); br != "" {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(br), nil, nil, slack.SectionBlockOptionBlockID("cw-blast")))
	}
	if cs := callSequence(top.Latest.Evidence.Calls); cs != "" {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(cs), nil, nil, slack.SectionBlockOptionBlockID("cw-calls")))
	}
	if len(m.Alerts) > 1 {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(truncate(groupList(m), 2900)), nil, nil,
			slack.SectionBlockOptionBlockID("cw-group")))
	}
	var ctx []slack.MixedElement
	for _, line := range statusLines(m, top, escalation) {
		ctx = append(ctx, mrkdwn(truncate(line, 2900)))
	}
	if len(ctx) > 0 {
		blocks = append(blocks, slack.NewContextBlock("cw-status", ctx...))
	}
	var elems []slack.BlockElement
	if !m.Closed {
		btn := func(k alert.ActionKind, label string, style slack.Style) *slack.ButtonBlockElement {
			b := slack.NewButtonBlockElement(string(k), m.ID, plain(label))
			if style != "" {
				b = b.WithStyle(style)
			}
			return b
		}
		// A false-positive mark is for one alert, the one this message
		// shows first: its button carries "<message id>|<alert id>".
		fp := btn(alert.ActionFalsePositive, "False positive", "")
		fp.Value = m.ID + "|" + top.ID
		elems = append(elems, btn(alert.ActionAcknowledge, "Acknowledge", slack.StylePrimary), fp)
		if !escalation {
			elems = append(elems, btn(alert.ActionEscalate, "Escalate", slack.StyleDanger))
		}
		elems = append(elems, btn(alert.ActionSilence, "Silence 24 h", ""))
	}
	if m.InvestigateURL != "" {
		inv := slack.NewButtonBlockElement("investigate", m.ID, plain("Investigate"))
		inv.URL = m.InvestigateURL
		elems = append(elems, inv)
	}
	if len(elems) > 0 {
		blocks = append(blocks, slack.NewActionBlock("cw-actions", elems...))
	}
	text := fmt.Sprintf("%s alert: %s on actor %s", strings.ToUpper(top.Severity.String()), top.Detector, top.ActorID)
	if top.Latest.Summary != "" {
		text += " — " + top.Latest.Summary
	}
	if escalation {
		text = "Escalated: " + text
	}
	return blocks, truncate(strings.Join(strings.Fields(Escape(text)), " "), 3000)
}

func evidenceFields(v *alert.AlertView) []*slack.TextBlockObject {
	ev := &v.Latest.Evidence
	var fs []*slack.TextBlockObject
	add := func(title, value string) { fs = append(fs, mrkdwn("*"+title+"*\n"+truncate(value, 1900))) }
	metric := ""
	if ev.Metric != "" {
		metric = " " + oneLine(ev.Metric)
	}
	add("Observed", num(ev.Observed)+metric)
	base := num(ev.Baseline)
	if ev.Spread > 0 {
		base += " ± " + num(ev.Spread)
	}
	if ev.BaselineSource != "" {
		base += " (" + oneLine(ev.BaselineSource) + ")"
	}
	add("Baseline", base)
	if ev.Threshold != 0 {
		add("Threshold", num(ev.Threshold))
	}
	if v.Latest.Probability > 0 {
		add("Probability", prob(v.Latest.Probability))
	}
	if v.Latest.Score != 0 {
		add("Score", num(v.Latest.Score))
	}
	if ev.Peers != "" || ev.PeerCount > 0 {
		peers := oneLine(ev.Peers)
		if ev.PeerCount > 0 {
			peers += fmt.Sprintf(" (%s actors)", num(float64(ev.PeerCount)))
		}
		add("Peers", strings.TrimSpace(peers))
	}
	if len(ev.Destinations) > 0 {
		ds := make([]string, len(ev.Destinations))
		for i, d := range ev.Destinations {
			ds[i] = oneLine(d)
		}
		add("Destinations", strings.Join(ds, ", "))
	}
	if len(ev.PII) > 0 {
		// The masked values only: a finding never holds the raw ones.
		lines := make([]string, len(ev.PII))
		for i, h := range ev.PII {
			lines[i] = oneLine(string(h.Kind)) + " in " + code(h.Field) + ": " + code(h.Masked)
		}
		add("Payload PII", strings.Join(lines, "\n"))
	}
	if !v.Latest.WindowStart.IsZero() {
		w := clock(v.Latest.WindowStart)
		if v.Latest.WindowEnd.After(v.Latest.WindowStart) {
			w += " → " + v.Latest.WindowEnd.UTC().Format("15:04:05")
		}
		add("Window", w)
	}
	if len(fs) < 10 {
		add("Findings", fmt.Sprintf("%s since %s", num(float64(v.Findings)), clock(v.FirstSeen)))
	}
	if len(fs) > 10 {
		fs = fs[:10]
	}
	return fs
}

// callSequence lists a conversation's calls in order (conversation_shape),
// the improbable ones marked; runs of more than two ordinary calls are
// folded into one line. Empty when the evidence has no calls.
func callSequence(calls []models.CallStep) string {
	if len(calls) == 0 {
		return ""
	}
	var b strings.Builder
	improbable := 0
	for _, c := range calls {
		if c.Improbable {
			improbable++
		}
	}
	fmt.Fprintf(&b, "*Conversation calls* (%d, %d improbable :warning:)", len(calls), improbable)
	line := func(c models.CallStep) {
		mark := ""
		if c.Improbable {
			mark = " :warning: *improbable*"
		}
		fmt.Fprintf(&b, "\n`%s` %s · %.1f nats%s", c.TS.UTC().Format("15:04:05"), oneLine(c.Label()), c.Surprise, mark)
	}
	for i := 0; i < len(calls); {
		j := i
		for j < len(calls) && !calls[j].Improbable {
			j++
		}
		if j-i > 2 {
			line(calls[i])
			fmt.Fprintf(&b, "\n… %d ordinary calls", j-i-1)
			i = j
			continue
		}
		for ; i < j; i++ {
			line(calls[i])
		}
		if i < len(calls) {
			line(calls[i])
			i++
		}
	}
	return truncate(b.String(), 2900)
}

func blastRadius(ev *models.Evidence) string {
	var parts []string
	if ev.Subjects > 0 {
		parts = append(parts, num(float64(ev.Subjects))+" customers")
	}
	if ev.Records > 0 {
		parts = append(parts, num(float64(ev.Records))+" records")
	}
	if len(ev.Categories) > 0 {
		cats := make([]string, len(ev.Categories))
		for i, c := range ev.Categories {
			cats[i] = oneLine(c)
		}
		parts = append(parts, "categories: "+strings.Join(cats, ", "))
	}
	if len(ev.TopStores) > 0 {
		sts := make([]string, len(ev.TopStores))
		for i, c := range ev.TopStores {
			sts[i] = oneLine(c)
		}
		parts = append(parts, "stores: "+strings.Join(sts, ", "))
	}
	if len(parts) == 0 {
		return ""
	}
	return truncate("*Blast radius* "+strings.Join(parts, " · "), 2900)
}

// groupList summarizes a group's alerts: a storm on one actor is one message.
func groupList(m *alert.Message) string {
	findings, muted := 0, 0
	for i := range m.Alerts {
		findings += m.Alerts[i].Findings
		if m.Alerts[i].Muted() {
			muted++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*%d alerts on this actor* (%s findings)", len(m.Alerts), num(float64(findings)))
	limit := m.MaxListed
	if limit <= 0 {
		limit = 10
	}
	for i := range m.Alerts {
		if i == limit {
			fmt.Fprintf(&b, "\n…and %d more", len(m.Alerts)-limit)
			break
		}
		v := &m.Alerts[i]
		fmt.Fprintf(&b, "\n%s *%s* %s", emoji(v.Severity), strings.ToUpper(v.Severity.String()), code(v.Detector))
		if v.Latest.Summary != "" {
			fmt.Fprintf(&b, " — %s", oneLine(truncate(v.Latest.Summary, 200)))
		}
		if v.Findings > 1 {
			fmt.Fprintf(&b, " (×%s)", num(float64(v.Findings)))
		}
		switch {
		case strings.HasPrefix(v.MutedBy, "inhibited:"):
			b.WriteString(" _inhibited by a critical alert_")
		case v.Muted():
			b.WriteString(" _silenced_")
		case v.Status != models.StatusOpen:
			fmt.Fprintf(&b, " _%s_", strings.ReplaceAll(string(v.Status), "_", " "))
		}
	}
	if muted > 0 {
		fmt.Fprintf(&b, "\n%d muted (silenced or inhibited)", muted)
	}
	return b.String()
}

func statusLines(m *alert.Message, top *alert.AlertView, escalation bool) []string {
	var out []string
	st := strings.ReplaceAll(string(top.Status), "_", " ")
	line := "Status: *" + st + "*"
	if top.Status != models.StatusOpen && top.UpdatedBy != "" {
		line += " by " + user(top.UpdatedBy) + " at " + clock(top.UpdatedAt)
	}
	out = append(out, line)
	if !top.AckedAt.IsZero() && top.Status != models.StatusAcknowledged {
		out = append(out, "Acknowledged at "+clock(top.AckedAt))
	}
	for i := range m.Alerts {
		v := &m.Alerts[i]
		if v.EscalatedAt.IsZero() {
			continue
		}
		if escalation {
			out = append(out, fmt.Sprintf(":warning: Critical alert not acknowledged within %s (or escalated by a responder) at %s",
				m.EscalateAfter, clock(v.EscalatedAt)))
		} else {
			out = append(out, fmt.Sprintf(":warning: %s escalated to %s at %s", code(v.Detector),
				channelRef(m.EscalationChannel), clock(v.EscalatedAt)))
		}
	}
	if strings.HasPrefix(top.MutedBy, "inhibited:") {
		out = append(out, "Inhibited by critical alert "+code(strings.TrimPrefix(top.MutedBy, "inhibited:")))
	} else if top.MutedBy != "" {
		out = append(out, "Silenced by "+code(top.MutedBy))
	}
	if !m.RemindedAt.IsZero() && !m.Closed {
		out = append(out, ":bell: Still firing at "+clock(m.RemindedAt))
	}
	return out
}

func renderDigest(m *alert.Message) ([]slack.Block, string) {
	d := m.Digest
	if d == nil {
		d = &alert.Digest{Title: "Weekly summary"}
	}
	title := d.Title
	if title == "" {
		title = "Weekly breach-risk summary"
	}
	week := ""
	if !d.Week.IsZero() {
		week = " · week of " + d.Week.Format("2006-01-02")
	}
	blocks := []slack.Block{slack.NewSectionBlock(mrkdwn(truncate(":bar_chart: *"+oneLine(title)+"*"+week, 2900)), nil, nil,
		slack.SectionBlockOptionBlockID(BlockIDPrefix+m.ID))}
	for i, s := range d.Sections {
		if len(blocks) >= 45 {
			break
		}
		var b strings.Builder
		b.WriteString("*" + oneLine(s.Title) + "*")
		for _, l := range s.Lines {
			b.WriteString("\n• " + oneLine(l))
		}
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(truncate(b.String(), 2900)), nil, nil,
			slack.SectionBlockOptionBlockID(fmt.Sprintf("cw-digest-%d", i))))
	}
	if d.URL != "" {
		b := slack.NewButtonBlockElement("open_report", m.ID, plain("Open the report"))
		b.URL = d.URL
		blocks = append(blocks, slack.NewActionBlock("cw-actions", b))
	}
	return blocks, truncate(oneLine(title+week), 3000)
}
