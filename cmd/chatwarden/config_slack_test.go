package main

import (
	"strings"
	"testing"
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
