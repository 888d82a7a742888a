package dashboards

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Role is what a signed-in user may see and do.
type Role string

// The roles.
const (
	RoleSecOps    Role = "secops"
	RoleResponder Role = "responder"
	RoleManager   Role = "manager"
	RoleAdmin     Role = "admin"
)

// Roles lists every role.
var Roles = []Role{RoleSecOps, RoleResponder, RoleManager, RoleAdmin}

func validRole(r Role) bool {
	for _, x := range Roles {
		if r == x {
			return true
		}
	}
	return false
}

// User is a person who signs in with a password.
type User struct {
	Name string `yaml:"name"`
	Role Role   `yaml:"role"`
	// PasswordHash is a bcrypt hash (`chatwarden` never stores passwords).
	PasswordHash string `yaml:"password_hash"`
	// Email is the user's address (optional): a Slack user whose address
	// Slack reports as this one acts in Slack as this user, with this role
	// (alert.slack.users links Slack ids explicitly).
	Email string `yaml:"email"`
	// Tenants lists the tenants whose data the user may see; empty means
	// every tenant. Enforced on every page, API call and (with --as) CLI
	// query: history, blast radius, data-subject reports, alerts.
	Tenants []string `yaml:"tenants"`
}

// Token is an API token for scripts: "Authorization: Bearer <token>".
// `chatwarden token new -name N -role R` mints one and prints this entry.
type Token struct {
	Name string `yaml:"name"`
	Role Role   `yaml:"role"`
	// ID is the token's 16-hex-digit id, the part after "cw_": the server
	// finds the token by it.
	ID string `yaml:"id"`
	// SHA256 is the hex SHA-256 of the whole token (cw_<id>_<secret>).
	SHA256 string `yaml:"sha256"`
	// Hash was a bcrypt hash of the token. It is refused: checking it cost
	// a bcrypt run per configured token for every request, an
	// unauthenticated CPU exhaustion. Mint a new token instead.
	Hash string `yaml:"hash"`
	// Tenants lists the tenants the token may read; empty means every
	// tenant (as for users).
	Tenants []string `yaml:"tenants"`
}

// Config is the dashboards section of the configuration file.
type Config struct {
	Users  []User  `yaml:"users"`
	Tokens []Token `yaml:"tokens"`
	// SessionTTL is how long a session lasts (default 12h).
	SessionTTL time.Duration `yaml:"session_ttl"`
	// InsecureCookies drops the Secure cookie flag, for plain-http
	// development on 127.0.0.1 only (default false).
	InsecureCookies bool `yaml:"insecure_cookies"`
	// LoginAttempts is how many failed sign-ins a user name may have in a
	// row before each further attempt must wait, 1s after the first extra
	// failure and twice as long after each next one, up to LoginWindow
	// (defaults 5 and 15m). The back-off is per user name: one person's
	// mistakes never lock out anybody else. A user name with no failure
	// for LoginWindow starts afresh.
	LoginAttempts int           `yaml:"login_attempts"`
	LoginWindow   time.Duration `yaml:"login_window"`
	// LoginIPAttempts is how many failed sign-ins one client address may
	// have per LoginWindow, across all user names, before its attempts are
	// refused (default 50: against password spraying, and high enough that
	// an office behind one NAT is not locked out by a few typos).
	LoginIPAttempts int `yaml:"login_ip_attempts"`
	// TrustedProxies are the reverse proxies (CIDRs or addresses) whose
	// X-Forwarded-For is believed: the client is the right-most address in
	// it that is not a trusted proxy. Without it (the default) the client is
	// the connection's remote address and X-Forwarded-For is ignored.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// LookupTTL is how long the opaque handle of a customer look-up
	// (/investigate?h=...) stays valid (default 15m).
	LookupTTL time.Duration `yaml:"lookup_ttl"`
	// TokenAttempts is how many requests with a wrong API token a client
	// may send per TokenWindow before its bearer requests are answered 429
	// without being checked (defaults 20 per 1m).
	TokenAttempts int           `yaml:"token_attempts"`
	TokenWindow   time.Duration `yaml:"token_window"`
	// RefreshSeconds is the alert feed's auto-refresh period (default 30).
	RefreshSeconds int `yaml:"refresh_seconds"`
	// BaseURL is the external URL of the pages, for links (optional).
	BaseURL string `yaml:"base_url"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.SessionTTL <= 0 {
		c.SessionTTL = 12 * time.Hour
	}
	if c.LoginAttempts <= 0 {
		c.LoginAttempts = 5
	}
	if c.LoginWindow <= 0 {
		c.LoginWindow = 15 * time.Minute
	}
	if c.LoginIPAttempts <= 0 {
		c.LoginIPAttempts = 50
	}
	if c.LookupTTL <= 0 {
		c.LookupTTL = 15 * time.Minute
	}
	if c.RefreshSeconds <= 0 {
		c.RefreshSeconds = 30
	}
	if c.TokenAttempts <= 0 {
		c.TokenAttempts = 20
	}
	if c.TokenWindow <= 0 {
		c.TokenWindow = time.Minute
	}
	return c
}

// Validate names the first bad field of each user and token.
func (c Config) Validate() error {
	var errs []error
	names := map[string]bool{}
	for i, u := range c.Users {
		switch {
		case u.Name == "" || strings.ContainsAny(u.Name, " \t\n"):
			errs = append(errs, fmt.Errorf("dashboards.users[%d].name: %q must be non-empty without spaces", i, u.Name))
		case names[u.Name]:
			errs = append(errs, fmt.Errorf("dashboards.users[%d].name: %q appears twice", i, u.Name))
		}
		names[u.Name] = true
		if !validRole(u.Role) {
			errs = append(errs, fmt.Errorf("dashboards.users[%d].role: %q is not one of %v", i, u.Role, Roles))
		}
		if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			errs = append(errs, fmt.Errorf("dashboards.users[%d].password_hash: not a bcrypt hash", i))
		}
		if u.Email != "" && (strings.Count(u.Email, "@") != 1 || strings.ContainsAny(u.Email, " \t\n<>")) {
			errs = append(errs, fmt.Errorf("dashboards.users[%d].email: %q is not an e-mail address", i, u.Email))
		}
	}
	ids := map[string]bool{}
	for i, t := range c.Tokens {
		if t.Name == "" {
			errs = append(errs, fmt.Errorf("dashboards.tokens[%d].name: required", i))
		}
		if !validRole(t.Role) {
			errs = append(errs, fmt.Errorf("dashboards.tokens[%d].role: %q is not one of %v", i, t.Role, Roles))
		}
		if t.Hash != "" {
			errs = append(errs, fmt.Errorf("dashboards.tokens[%d].hash: bcrypt API token hashes are no longer accepted "+
				"(each request paid a bcrypt check per token); mint a token with `chatwarden token new -name %s -role %s` "+
				"and configure its id and sha256 instead", i, t.Name, t.Role))
			continue
		}
		switch {
		case len(t.ID) != tokenIDLen || !isLowerHex(t.ID):
			errs = append(errs, fmt.Errorf("dashboards.tokens[%d].id: %q is not the 16 hex digits after cw_ (mint with `chatwarden token new`)", i, t.ID))
		case ids[t.ID]:
			errs = append(errs, fmt.Errorf("dashboards.tokens[%d].id: %q appears twice", i, t.ID))
		}
		ids[t.ID] = true
		if len(t.SHA256) != 64 || !isLowerHex(t.SHA256) {
			errs = append(errs, fmt.Errorf("dashboards.tokens[%d].sha256: want the 64 lower-case hex digits of the token's SHA-256", i))
		}
	}
	for i, p := range c.TrustedProxies {
		if _, err := parseProxy(p); err != nil {
			errs = append(errs, fmt.Errorf("dashboards.trusted_proxies[%d]: %q is not a CIDR (10.0.0.0/8) or an IP address", i, p))
		}
	}
	if c.LoginIPAttempts < 0 || c.LookupTTL < 0 {
		errs = append(errs, errors.New("dashboards: login_ip_attempts and lookup_ttl must not be negative"))
	}
	if c.SessionTTL < 0 || c.LoginWindow < 0 || c.LoginAttempts < 0 || c.RefreshSeconds < 0 || c.TokenAttempts < 0 || c.TokenWindow < 0 {
		errs = append(errs, errors.New("dashboards: session_ttl, login_window, login_attempts, token_attempts, token_window and refresh_seconds must not be negative"))
	}
	for i, u := range c.Users {
		if err := validTenants(u.Tenants); err != nil {
			errs = append(errs, fmt.Errorf("dashboards.users[%d].tenants: %w", i, err))
		}
	}
	for i, t := range c.Tokens {
		if err := validTenants(t.Tenants); err != nil {
			errs = append(errs, fmt.Errorf("dashboards.tokens[%d].tenants: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// validTenants refuses an empty or padded tenant name and a repeated one.
func validTenants(ts []string) error {
	seen := map[string]bool{}
	for _, t := range ts {
		if t == "" || strings.TrimSpace(t) != t {
			return fmt.Errorf("%q is not a tenant name", t)
		}
		if seen[t] {
			return fmt.Errorf("%q appears twice", t)
		}
		seen[t] = true
	}
	return nil
}
