package slack_test

import (
	"testing"

	"github.com/chatwarden/chatwarden/internal/slackfake"
)

// newFakeSlack starts the workspace stand-in (internal/slackfake) for one
// test.
func newFakeSlack(t *testing.T) *slackfake.Server {
	t.Helper()
	f := slackfake.New(nil)
	t.Cleanup(f.Close)
	return f
}
