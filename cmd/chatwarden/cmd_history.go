package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/chatwarden/chatwarden/dashboards"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/pseudonym"
	"github.com/chatwarden/chatwarden/store"
)

func runHistory(ctx context.Context, e *env, args []string) error {
	fs, cfgPath := newFlags(e, "history")
	actor := fs.String("actor", "", "actor id")
	subject := fs.String("subject", "", "customer id (raw: pseudonymized with every configured key) or pseudonym")
	tenant := fs.String("tenant", "", "tenant (default: all; for a raw -subject: the user's only tenant, else \"default\")")
	since := fs.String("since", "24h", "look-back, e.g. 90m, 24h, 7d")
	limit := fs.Int("limit", 1000, "rows at most (up to 100000)")
	format := addFormatFlag(fs, "text", "csv", "json").withAlias("table", "text")
	as := fs.String("as", "", "user recorded in the audit trail (default: the OS user)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if (*actor == "") == (*subject == "") {
		fmt.Fprintln(e.stderr, "chatwarden history: give exactly one of -actor or -subject")
		return errUsage
	}
	out, err := format.get(e.stderr)
	if err != nil {
		return err
	}
	d, err := dashboards.ParseSince(*since)
	if err != nil {
		return err
	}
	c, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	f := store.HistoryFilter{ActorID: *actor, To: time.Now().UTC(), Limit: *limit}
	f.From = f.To.Add(-d)
	raw := *subject != "" && !pseudonym.IsPseudonym(*subject)
	if f.Tenant, f.Tenants, err = cliTenants(c, cliUser(*as), *tenant, raw); err != nil {
		return err
	}
	if *subject != "" {
		if f.SubjectIDs, err = subjectPseudonyms(c, f.Tenant, *subject); err != nil {
			return err
		}
	}
	s, err := openStore(ctx, e, c)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(e.stderr, "querying %s .. %s ...\n", f.From.Format(time.RFC3339), f.To.Format(time.RFC3339))
	start := time.Now()
	evs, more, err := s.History(ctx, f)
	if err != nil {
		return err
	}
	detail := "actor=" + f.ActorID + " subject=" + strings.Join(f.SubjectIDs, ",") + " tenant=" + f.Tenant +
		" from=" + f.From.Format(time.RFC3339) + " to=" + f.To.Format(time.RFC3339)
	about := f.Tenants
	if len(about) == 0 {
		about = dashboards.TenantsOf(evs, func(e models.Event) string { return e.Tenant })
	}
	if err := auditCLI(ctx, s, cliUser(*as), "history", detail, len(evs), about); err != nil {
		return fmt.Errorf("not showing results: %w", err)
	}
	fmt.Fprintf(e.stderr, "%d events in %s%s\n", len(evs), time.Since(start).Round(time.Millisecond), map[bool]string{true: " (more matched: raise -limit)", false: ""}[more])
	switch out {
	case "json":
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"from": f.From, "to": f.To, "events": evs, "truncated": more})
	case "csv":
		return dashboards.WriteCSV(e.stdout, evs)
	}
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME (UTC)\tACTOR\tACTION\tSTORE\tRESOURCE\tCUSTOMER\tRECORDS\tCATEGORIES\tPURPOSE\tCONVERSATION\tRESULT")
	for _, ev := range evs {
		sub := ev.SubjectID
		if len(sub) > 14 {
			sub = sub[:14] + "…"
		}
		// Every string came from a producer: escaped for the terminal.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", ev.TS.Format("2006-01-02 15:04:05"), termSafe(ev.Actor.ID),
			termSafe(string(ev.Action)), termSafe(ev.Store), termSafe(ev.Resource.Type), termSafe(sub), ev.Records,
			strings.Join(termSafeAll(ev.Fields), ","), termSafe(ev.Purpose), termSafe(ev.Conversation.ID), termSafe(string(ev.Result)))
	}
	return tw.Flush()
}

// subjectPseudonyms turns a typed customer id into the pseudonyms to search:
// a pseudonym as is, a raw id hashed for tenant under every key and scheme.
func subjectPseudonyms(c Config, tenant, typed string) ([]string, error) {
	if pseudonym.IsPseudonym(typed) {
		return []string{typed}, nil
	}
	p, err := c.pseudonymizer()
	if err != nil {
		return nil, errors.Join(errors.New("a raw customer id needs the pseudonymization key"), err)
	}
	return p.AllTenant(tenant, typed), nil
}

// cliTenants applies dashboards.users[].tenants of the CLI's user (--as, or
// the OS account, when it names a configured user) to a query that asked
// for tenant ("" for none): it returns the tenant to use (for a raw
// customer id: the one asked for, else the user's only tenant, else
// "default") and the tenants the query may read (nil: all). The CLI holds
// the ClickHouse credentials, so this keeps honest users in their tenants;
// it is not a barrier against someone who can run queries themselves.
func cliTenants(c Config, user, tenant string, rawSubject bool) (string, []string, error) {
	var allowed []string
	for _, u := range c.Dashboards.Users {
		if u.Name == user {
			allowed = u.Tenants
		}
	}
	if rawSubject && tenant == "" {
		tenant = models.DefaultTenant
		if len(allowed) == 1 {
			tenant = allowed[0]
		}
	}
	if tenant != "" {
		if len(allowed) > 0 && !slices.Contains(allowed, tenant) {
			return "", nil, fmt.Errorf("-tenant %q: user %s may see only tenants %v", tenant, user, allowed)
		}
		return tenant, []string{tenant}, nil
	}
	return "", allowed, nil
}
