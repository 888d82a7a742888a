package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/chatwarden/chatwarden/dashboards"
)

// TestSlackUsersNameDashboardUsers: alert.slack.users links Slack ids to
// dashboards.users; a link to nobody is a config error naming the field
// (issue 10 item 1).
func TestSlackUsersNameDashboardUsers(t *testing.T) {
	const hash = "$2a$04$C9Gyw5e0Ew3m0a8xB5b7ZOSy3Cq0cZrK3yD2v0oQ6o5Qy6y0S3m1e"
	for _, tc := range []struct{ yaml, want string }{
		{"dashboards:\n  users:\n    - {name: ann, role: secops, password_hash: \"" + hash + "\", email: ann@corp.example}\n" +
			"alert:\n  slack:\n    users:\n      - {slack_id: U1, user: ann}\n", ""},
		{"alert:\n  slack:\n    users:\n      - {slack_id: U1, user: bob}\n", "alert.slack.users[0].user"},
		{"dashboards:\n  users:\n    - {name: ann, role: secops, password_hash: \"" + hash + "\", email: not-an-address}\n", "dashboards.users[0].email"},
	} {
		var c Config
		err := decodeStrict([]byte(tc.yaml), &c)
		if err == nil {
			err = c.Validate()
		}
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q: err %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

// TestActionsCarryTenants (issue 10 item 8): the tenants of a dashboards
// user reach alerting with every action, from Slack (the directory's
// people) and from the web and API, so that alerting can refuse an action
// on another tenant's alert.
func TestActionsCarryTenants(t *testing.T) {
	const hash = "$2a$04$C9Gyw5e0Ew3m0a8xB5b7ZOSy3Cq0cZrK3yD2v0oQ6o5Qy6y0S3m1e"
	var c Config
	if err := decodeStrict([]byte("dashboards:\n  users:\n    - {name: bea, role: secops, password_hash: \""+hash+"\", tenants: [bank]}\n"), &c); err != nil {
		t.Fatal(err)
	}
	if p := slackPeople(c); len(p) != 1 || p[0].Name != "bea" || !slices.Equal(p[0].Tenants, []string{"bank"}) {
		t.Errorf("slack people %+v, want bea limited to bank", p)
	}
	a := webAction(dashboards.ActionRequest{AlertID: "a1", Action: "acknowledge", User: "bea", Role: dashboards.RoleSecOps, Tenants: []string{"bank"}})
	if !slices.Equal(a.Tenants, []string{"bank"}) || a.Identity != "bea" || a.Role != "secops" || a.Source != "web" {
		t.Errorf("web action %+v, want bea's tenants, role and source web", a)
	}
}
