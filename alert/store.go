package alert

import (
	"context"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// Store is what alerting keeps in ClickHouse: alert versions and their audit
// trail, the versions of the Slack messages it owns, and the suppressions
// register. *store.Store implements it; the behaviour tests use an
// in-memory one. Every row carries a version: a read returns, per id, the
// row with the largest version written so far.
type Store interface {
	// PutAlerts appends one version of each alert; an error means none
	// may be assumed written (the caller retries the whole step).
	PutAlerts(ctx context.Context, rows []store.AlertRow) error
	// PutAlertChanges appends state changes to the audit trail.
	PutAlertChanges(ctx context.Context, cs []store.AlertChange) error
	// PutAlertMessages appends one version of each message.
	PutAlertMessages(ctx context.Context, ms []store.AlertMessage) error
	// ActiveAlerts returns the latest version of every alert that is neither
	// resolved nor a false positive, by id. It is read once, at start-up.
	ActiveAlerts(ctx context.Context) ([]store.AlertRow, error)
	// AlertsByID returns the latest version of each of ids that exists.
	AlertsByID(ctx context.Context, ids []string) ([]store.AlertRow, error)
	// OpenAlertMessages returns the latest version of every message that is
	// not closed or has an unsent revision. It is read once, at start-up.
	OpenAlertMessages(ctx context.Context) ([]store.AlertMessage, error)
	// AlertMessagesByID returns the latest version of each of ids that exists.
	AlertMessagesByID(ctx context.Context, ids []string) ([]store.AlertMessage, error)
	// PutSuppression appends a version of a suppression; version must grow.
	PutSuppression(ctx context.Context, sp models.Suppression, version uint64) error
	// Suppressions returns the suppressions neither lifted nor expired at now.
	Suppressions(ctx context.Context, now time.Time) ([]models.Suppression, error)
}
