package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/chatwarden/chatwarden/dashboards"
	"github.com/chatwarden/chatwarden/pseudonym"
	"github.com/chatwarden/chatwarden/store"
)

func runHistory(ctx context.Context, e *env, args []string) error {
	fs, cfgPath := newFlags(e, "history")
	actor := fs.String("actor", "", "actor id")
	subject := fs.String("subject", "", "customer id (raw: pseudonymized with every configured key) or pseudonym")
	tenant := fs.String("tenant", "", "tenant (default: all)")
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
	f := store.HistoryFilter{Tenant: *tenant, ActorID: *actor, To: time.Now().UTC(), Limit: *limit}
	f.From = f.To.Add(-d)
	if *subject != "" {
		if f.SubjectIDs, err = subjectPseudonyms(c, *subject); err != nil {
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
	if err := auditCLI(ctx, s, cliUser(*as), "history", detail, len(evs)); err != nil {
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

// subjectPseudonyms turns a typed customer id into the pseudonyms to search.
func subjectPseudonyms(c Config, typed string) ([]string, error) {
	if pseudonym.IsPseudonym(typed) {
		return []string{typed}, nil
	}
	p, err := c.pseudonymizer()
	if err != nil {
		return nil, errors.Join(errors.New("a raw customer id needs the pseudonymization key"), err)
	}
	return p.All(typed), nil
}
