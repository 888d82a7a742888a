package dashboards

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// parseProxy reads a trusted_proxies entry: a CIDR or a single address.
func parseProxy(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// proxies are the trusted reverse proxies.
type proxies []netip.Prefix

func newProxies(list []string) proxies {
	var ps proxies
	for _, s := range list {
		if p, err := parseProxy(s); err == nil { // Validate ran before
			ps = append(ps, p)
		}
	}
	return ps
}

func (ps proxies) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// client returns the address of the client behind r: the remote address,
// or, when that is a trusted proxy, the right-most X-Forwarded-For entry
// that is not one (entries left of it were written by the client and prove
// nothing).
func (ps proxies) client(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	remote, err := netip.ParseAddr(host)
	if err != nil || len(ps) == 0 || !ps.trusted(remote) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	client := remote.Unmap()
	for i := len(hops) - 1; i >= 0; i-- {
		h := strings.TrimSpace(hops[i])
		if h == "" {
			continue
		}
		a, err := netip.ParseAddr(h)
		if err != nil {
			break // garbage: keep the last hop a trusted proxy vouched for
		}
		client = a.Unmap()
		if !ps.trusted(client) {
			break
		}
	}
	return client.String()
}

// backoff delays sign-in attempts per user name after repeated failures:
// after `free` failures in a row, the next attempt must wait 1s, then 2s,
// 4s ... up to max. A name with no failure for max starts afresh.
type backoff struct {
	mu   sync.Mutex
	free int
	max  time.Duration
	m    map[string]*strike
}

type strike struct {
	fails int
	last  time.Time
}

func newBackoff(free int, max time.Duration) *backoff {
	return &backoff{free: free, max: max, m: map[string]*strike{}}
}

// maxBackoffKey is the longest user name the back-off keeps as it is;
// longer names (nobody's: they are typed by whoever is at the sign-in form)
// are kept as their SHA-256, so that a flood of failed sign-ins with
// kilobyte-long names costs a few dozen bytes each, not kilobytes.
const maxBackoffKey = 64

func backoffKey(name string) string {
	if len(name) <= maxBackoffKey {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// wait returns how long key must still wait before its next attempt (0:
// it may try now).
func (b *backoff) wait(key string, now time.Time) time.Duration {
	key = backoffKey(key)
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.m[key]
	if st == nil {
		return 0
	}
	if now.Sub(st.last) >= b.max {
		delete(b.m, key)
		return 0
	}
	if st.fails < b.free {
		return 0
	}
	d := b.max
	if n := st.fails - b.free; n < 30 {
		d = min(time.Second<<n, b.max)
	}
	return max(0, st.last.Add(d).Sub(now))
}

// fail counts a failure of key.
func (b *backoff) fail(key string, now time.Time) {
	key = backoffKey(key)
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.m) >= maxLimiterKeys {
		for k, st := range b.m {
			if now.Sub(st.last) >= b.max {
				delete(b.m, k)
			}
		}
	}
	st := b.m[key]
	if st == nil || now.Sub(st.last) >= b.max {
		st = &strike{}
		b.m[key] = st
	}
	st.fails++
	st.last = now
}

// reset forgets key's failures (after a successful sign-in).
func (b *backoff) reset(key string) {
	key = backoffKey(key)
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, key)
}
