package slack

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/chatwarden/chatwarden/alert"
)

// Person is a chatwarden user a Slack user can act as: the name and role of a
// dashboards.users entry and its e-mail address (optional).
type Person struct {
	Name, Role, Email string
	// Tenants are the user's tenants (dashboards.users[].tenants): the
	// alerts they may act on. Empty means every tenant.
	Tenants []string
}

// ErrUnmapped is returned by Directory.Resolve for a Slack user who is no
// chatwarden user.
var ErrUnmapped = errors.New("slack user is not a chatwarden user")

// directoryTTL is how long a users.info answer (a match or not) is kept.
const directoryTTL = 5 * time.Minute

// Directory maps Slack users to chatwarden users: first the configured
// links (alert.slack.users), then the e-mail address Slack reports for the
// user (users.info) matched against the people's addresses. Guests
// (restricted accounts), bots, deactivated accounts and users of another
// workspace or organisation never match by e-mail.
type Directory struct {
	people  map[string]Person // by name
	bySlack map[string]string // Slack id -> name
	byEmail map[string]string // lower-case e-mail -> name
	client  *Client           // nil: no e-mail look-ups

	mu    sync.Mutex
	cache map[string]dirEntry
}

type dirEntry struct {
	team string // the workspace the click came from, part of the decision
	name string // "" when the user did not match
	at   time.Time
}

// NewDirectory builds the directory. It fails, naming the field, when a
// link names a person who does not exist or two people share an address.
// client may be nil (links only).
func NewDirectory(people []Person, links []alert.SlackUser, client *Client) (*Directory, error) {
	d := &Directory{people: map[string]Person{}, bySlack: map[string]string{}, byEmail: map[string]string{},
		client: client, cache: map[string]dirEntry{}}
	var errs []error
	for _, p := range people {
		d.people[p.Name] = p
		if p.Email == "" {
			continue
		}
		e := strings.ToLower(strings.TrimSpace(p.Email))
		if other, dup := d.byEmail[e]; dup {
			errs = append(errs, fmt.Errorf("dashboards.users: %s and %s share the e-mail address %s", other, p.Name, p.Email))
		}
		d.byEmail[e] = p.Name
	}
	for i, l := range links {
		if _, ok := d.people[l.User]; !ok {
			errs = append(errs, fmt.Errorf("alert.slack.users[%d].user: %q is not a dashboards.users name", i, l.User))
			continue
		}
		d.bySlack[l.SlackID] = l.User
	}
	return d, errors.Join(errs...)
}

// Resolve returns the chatwarden user behind a Slack user id clicking in
// workspace team (the interaction payload's team id; "" when it has none),
// or ErrUnmapped. Other errors (Slack unreachable) mean "unknown right
// now". An e-mail match is refused for a user of another workspace (their
// team_id is not team, or Slack marks them is_stranger): in a channel
// shared with another organisation (Slack Connect), that organisation sets
// its users' addresses, and one of them must not become a responder by
// carrying a responder's address. Link such users explicitly if they are
// yours (alert.slack.users).
func (d *Directory) Resolve(ctx context.Context, slackID, team string, now time.Time) (Person, error) {
	if d == nil || slackID == "" {
		return Person{}, ErrUnmapped
	}
	if name, ok := d.bySlack[slackID]; ok {
		return d.people[name], nil
	}
	if d.client == nil || len(d.byEmail) == 0 {
		return Person{}, ErrUnmapped
	}
	d.mu.Lock()
	e, ok := d.cache[slackID]
	d.mu.Unlock()
	if !ok || e.team != team || now.Sub(e.at) > directoryTTL || now.Before(e.at) {
		u, err := d.client.api.GetUserInfoContext(ctx, slackID)
		var answer slack.SlackErrorResponse
		switch {
		case errors.As(err, &answer): // Slack answered: no such user (or no access to them)
			u = &slack.User{}
		case err != nil:
			return Person{}, fmt.Errorf("looking up slack user %s: %w", slackID, err)
		}
		e = dirEntry{at: now, team: team}
		foreign := u.IsStranger || (u.TeamID != "" && team != "" && u.TeamID != team)
		if !u.IsRestricted && !u.IsUltraRestricted && !u.IsBot && !u.Deleted && !foreign && u.Profile.Email != "" {
			e.name = d.byEmail[strings.ToLower(strings.TrimSpace(u.Profile.Email))]
		}
		d.mu.Lock()
		if len(d.cache) > 10000 {
			d.cache = map[string]dirEntry{}
		}
		d.cache[slackID] = e
		d.mu.Unlock()
	}
	if e.name == "" {
		return Person{}, ErrUnmapped
	}
	return d.people[e.name], nil
}
