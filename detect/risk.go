package detect

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// riskWeight is what one finding of a severity adds to an actor's risk.
var riskWeight = map[models.Severity]float64{
	models.SeverityInfo: 0.5, models.SeverityLow: 1, models.SeverityMedium: 3,
	models.SeverityHigh: 7, models.SeverityCritical: 15,
}

// riskState is an actor's decayed risk score.
type riskState struct {
	Score    float64
	At       int64 // unix seconds the score refers to
	Findings uint32
	TopDet   string
	TopW     float64
	MaxSev   models.Severity
	Type     string
	Role     string
	Dirty    bool
}

// decay brings the score forward to t.
func (r *riskState) decay(t time.Time, halfLife time.Duration) {
	dt := float64(t.Unix() - r.At)
	if dt > 0 && halfLife > 0 {
		r.Score *= math.Exp2(-dt / halfLife.Seconds())
		if r.Score < 0.05 {
			r.Score, r.Findings, r.TopDet, r.TopW, r.MaxSev = 0, 0, "", 0, models.SeverityInfo
		}
	}
	r.At = t.Unix()
}

// addRisk adds a finding to its actor's risk score.
func (e *Engine) addRisk(f models.Finding) {
	k := actorKey{f.Tenant, f.ActorID}
	r := e.risk[k]
	if r == nil {
		r = &riskState{At: f.DetectedAt.Unix()}
		e.risk[k] = r
	}
	r.decay(f.DetectedAt, e.cfg.RiskHalfLife)
	w := riskWeight[f.Severity]
	r.Score += w
	r.Findings++
	if w > r.TopW {
		r.TopW, r.TopDet = w, f.Detector
	}
	if f.Severity > r.MaxSev {
		r.MaxSev = f.Severity
	}
	r.Type, r.Role, r.Dirty = string(f.ActorType), f.ActorRole, true
}

// RiskScores returns every actor's risk score decayed to now, for tests and
// the CLI.
func (e *Engine) RiskScores(now time.Time) []store.ActorRisk {
	var out []store.ActorRisk
	for k, r := range e.risk {
		r.decay(now, e.cfg.RiskHalfLife)
		if r.Score <= 0 {
			continue
		}
		out = append(out, store.ActorRisk{TS: now, Tenant: k.Tenant, ActorID: k.Actor, ActorType: r.Type,
			ActorRole: r.Role, Score: r.Score, Findings: r.Findings, TopDetector: r.TopDet, MaxSeverity: r.MaxSev})
	}
	return out
}

// flushRisk writes the scores that changed or are still above zero, hourly.
func (e *Engine) flushRisk(ctx context.Context, now time.Time) error {
	if e.opt.Risk == nil {
		return nil
	}
	var out []store.ActorRisk
	for k, r := range e.risk {
		r.decay(now, e.cfg.RiskHalfLife)
		if r.Score <= 0 && !r.Dirty {
			delete(e.risk, k)
			continue
		}
		r.Dirty = false
		out = append(out, store.ActorRisk{TS: now, Tenant: k.Tenant, ActorID: k.Actor, ActorType: r.Type,
			ActorRole: r.Role, Score: r.Score, Findings: r.Findings, TopDetector: r.TopDet, MaxSeverity: r.MaxSev})
	}
	if len(out) == 0 {
		return nil
	}
	// after the findings emitted before them, as every sink call
	herr := e.handOn(ctx, true)
	if err := e.opt.Risk(ctx, out); err != nil {
		e.metrics.sinkErrors.WithLabelValues("risk").Inc()
		e.log.Error("storing risk scores", "err", err)
		return errors.Join(herr, err)
	}
	return herr
}
