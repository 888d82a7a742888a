package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/chatwarden/chatwarden/dashboards"
)

// runToken mints an API token: `chatwarden token new -name N -role R`
// prints the token once (to send as "Authorization: Bearer <token>") and
// the dashboards.tokens entry that holds only its id and SHA-256.
func runToken(_ context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] != "new" {
		fmt.Fprintln(e.stderr, "usage: chatwarden token new -name NAME -role ROLE")
		return errUsage
	}
	fs := flag.NewFlagSet("chatwarden token new", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	name := fs.String("name", "", "the token's name (shown as token:<name> in the audit trail)")
	role := fs.String("role", "", fmt.Sprintf("the token's role, one of %v", dashboards.Roles))
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	raw, t, err := dashboards.NewToken(*name, dashboards.Role(*role))
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "# the token (shown once; send it as \"Authorization: Bearer <token>\"):\n%s\n", raw)
	fmt.Fprintf(e.stdout, "# add to the configuration file under dashboards.tokens:\n    - {name: %q, role: %s, id: %q, sha256: %q}\n",
		t.Name, t.Role, t.ID, t.SHA256)
	return nil
}
