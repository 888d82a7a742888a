package detect

import (
	"sync"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// consentKey identifies one consent decision.
type consentKey struct {
	tenant, subject, purpose string
}

type consentState struct {
	granted bool
	ts      time.Time
}

// ConsentRegister is the in-memory copy of the consent register: the latest
// decision per (tenant, pseudonymized subject, purpose). It is loaded from
// the store at start-up and kept current from consent batches. Safe for
// concurrent use.
type ConsentRegister struct {
	mu sync.RWMutex
	m  map[consentKey]consentState
}

// NewConsentRegister returns an empty register.
func NewConsentRegister() *ConsentRegister {
	return &ConsentRegister{m: map[consentKey]consentState{}}
}

// Load adds the stored decisions (store.AllConsents), keeping the newer of
// a stored and a known decision.
func (r *ConsentRegister) Load(states []store.ConsentState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range states {
		r.setLocked(consentKey{s.Tenant, s.SubjectID, s.Purpose}, s.Granted, s.TS)
	}
}

// Apply records consent events (pseudonymized subjects).
func (r *ConsentRegister) Apply(cs []models.Consent) {
	if len(cs) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cs {
		t := c.Tenant
		if t == "" {
			t = models.DefaultTenant
		}
		r.setLocked(consentKey{t, c.SubjectID, c.Purpose}, c.Granted, c.TS)
	}
}

func (r *ConsentRegister) setLocked(k consentKey, granted bool, ts time.Time) {
	if old, ok := r.m[k]; ok && old.ts.After(ts) {
		return
	}
	r.m[k] = consentState{granted: granted, ts: ts}
}

// Withdrawn reports whether subject had withdrawn consent for purpose at
// time at, and when it withdrew.
func (r *ConsentRegister) Withdrawn(tenant, subject, purpose string, at time.Time) (bool, time.Time) {
	r.mu.RLock()
	s, ok := r.m[consentKey{tenant, subject, purpose}]
	r.mu.RUnlock()
	if !ok || s.granted || s.ts.After(at) {
		return false, time.Time{}
	}
	return true, s.ts
}

// Len returns the number of decisions held.
func (r *ConsentRegister) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.m)
}

// EvictGranted forgets the granted decisions made before cutoff and returns
// how many. For the consent rule a grant is the same as no decision, so
// only memory goes; a withdrawal is kept however old, since it must be
// enforced until the customer decides again. (A withdrawal older than an
// evicted grant that arrives late would then count: consent events more
// than detect.evict_idle_after late are not expected.)
func (r *ConsentRegister) EvictGranted(cutoff time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for k, s := range r.m {
		if s.granted && s.ts.Before(cutoff) {
			delete(r.m, k)
			n++
		}
	}
	return n
}
