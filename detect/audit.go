package detect

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
)

// Auditor records tuning changes. *store.Store implements it.
type Auditor interface {
	// LatestDetectAudit returns the detail of the newest audit row of kind
	// and subject, or "" when there is none.
	LatestDetectAudit(ctx context.Context, kind, subject string) (string, error)
	// InsertDetectAudit appends an audit row.
	InsertDetectAudit(ctx context.Context, ts time.Time, kind, author, subject, detail string) error
}

// AuditConfig compares the effective detection configuration (defaults
// applied) with the last one recorded and, when it changed (or was never
// recorded), logs the change and records the new configuration, so every
// change of thresholds, severities and policies is audited.
func AuditConfig(ctx context.Context, a Auditor, cfg Config, author string, now time.Time, log *slog.Logger) (changed bool, err error) {
	b, err := json.Marshal(cfg.WithDefaults())
	if err != nil {
		return false, fmt.Errorf("encoding detection config: %w", err)
	}
	prev, err := a.LatestDetectAudit(ctx, "config", "detect")
	if err != nil {
		return false, err
	}
	if prev == string(b) {
		return false, nil
	}
	if log != nil {
		log.Info("detection configuration changed", "author", author, "first", prev == "")
	}
	if err := a.InsertDetectAudit(ctx, now, "config", author, "detect", string(b)); err != nil {
		return false, err
	}
	return true, nil
}
