package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/report"
)

// runIncident is `chatwarden incident assess`: the breach assessment of one
// incident (one or more alerts), audited like history.
func runIncident(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] != "assess" {
		fmt.Fprintln(e.stderr, "usage: chatwarden incident assess -alert ID[+ID...] [-format text|json|markdown] [-as USER]")
		return errUsage
	}
	fs, cfgPath := newFlags(e, "incident assess")
	alertIDs := fs.String("alert", "", "the incident's alert ids, joined by + or commas (at most 20)")
	format := addFormatFlag(fs, report.AssessText, report.AssessJSON, report.AssessMarkdown)
	as := fs.String("as", "", "user recorded in the audit trail (default: the OS user)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	out, err := format.get(e.stderr)
	if err != nil {
		return err
	}
	if *alertIDs == "" {
		fmt.Fprintln(e.stderr, "chatwarden incident assess: -alert is required")
		return errUsage
	}
	ids, err := report.ParseIncidentID(strings.ReplaceAll(*alertIDs, ",", "+"))
	if err != nil {
		return err
	}
	c, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	_, allowed, err := cliTenants(c, cliUser(*as), "", false)
	if err != nil {
		return err
	}
	s, err := openStore(ctx, e, c)
	if err != nil {
		return err
	}
	defer s.Close()
	var alerts []models.Alert
	var tenants []string
	for _, id := range ids {
		a, found, err := s.Alert(ctx, id)
		if err != nil {
			return err
		}
		// An alert of a tenant the user may not see is as unknown as a
		// missing one.
		if !found || (len(allowed) > 0 && !slices.Contains(allowed, a.Tenant)) {
			return fmt.Errorf("no alert %q", id)
		}
		alerts = append(alerts, a)
		if !slices.Contains(tenants, a.Tenant) {
			tenants = append(tenants, a.Tenant)
		}
	}
	asm, err := report.Assess(ctx, s, alerts, time.Now())
	if err != nil {
		return err
	}
	slices.Sort(tenants)
	if err := auditCLI(ctx, s, cliUser(*as), "incident_assess", "incident="+asm.ID, int(asm.Events), tenants); err != nil {
		return fmt.Errorf("not showing results: %w", err)
	}
	var b bytes.Buffer
	if err := report.RenderAssessment(&b, asm, out); err != nil {
		return err
	}
	text := b.String()
	if out != report.AssessJSON {
		text = termSafeText(text) // names come from producers
	}
	_, err = io.WriteString(e.stdout, text)
	return err
}
