package dashboards

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/chatwarden/chatwarden/pseudonym"
)

// Customer ids never travel in a URL: proxies log URLs, browsers keep them
// in history and send them in Referer. A look-up by customer is a POST (the
// form or the JSON API, CSRF-protected for sessions); the page it leads to
// is addressed by an opaque handle (?h=...) that the server maps to the
// search for the user who made it, for dashboards.lookup_ttl. Pseudonyms
// (p1...) may appear in URLs: they are what the database holds and cannot
// be turned back into a customer id without the key.

// maxLookups bounds the handles held; the oldest go first.
const maxLookups = 10000

// lookups maps handles to searches.
type lookups struct {
	mu  sync.Mutex
	ttl time.Duration
	m   map[string]*lookup
}

type lookup struct {
	user    string
	q       Search
	expires time.Time
}

func newLookups(ttl time.Duration) *lookups {
	return &lookups{ttl: ttl, m: map[string]*lookup{}}
}

// put stores q for user and returns its handle.
func (l *lookups) put(user string, q Search, now time.Time) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, v := range l.m {
		if !now.Before(v.expires) {
			delete(l.m, k)
		}
	}
	for len(l.m) >= maxLookups {
		var oldest string
		for k, v := range l.m {
			if oldest == "" || v.expires.Before(l.m[oldest].expires) {
				oldest = k
			}
		}
		delete(l.m, oldest)
	}
	h := randomToken()
	l.m[h] = &lookup{user: user, q: q, expires: now.Add(l.ttl)}
	return h
}

// get returns the search of handle h if user made it and it has not expired.
func (l *lookups) get(h, user string, now time.Time) (Search, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := l.m[h]
	if !ok || v.user != user {
		return Search{}, false
	}
	if !now.Before(v.expires) {
		delete(l.m, h)
		return Search{}, false
	}
	return v.q, true
}

// rawInURL is the answer to a customer id in a URL.
func rawInURL() error {
	return errorf(http.StatusBadRequest, "customer ids are not accepted in URLs (proxy logs and browser history keep them): "+
		"search with the form, or POST the look-up (POST /api/history, /api/blast-radius, /api/subjects with a JSON body)")
}

// searchFrom returns the search a GET request asks for: the one behind its
// handle (?h=), or its query, which may name a customer only by pseudonym.
func (s *Server) searchFrom(r *http.Request) (Search, error) {
	v := r.URL.Query()
	if h := v.Get("h"); h != "" {
		q, ok := s.lookups.get(h, principalOf(r).Name, s.now())
		if !ok {
			return Search{}, errorf(http.StatusNotFound, "this look-up has expired or is not yours: search again")
		}
		return q, nil
	}
	q := searchOf(v)
	if q.Subject != "" && !pseudonym.IsPseudonym(q.Subject) {
		return Search{}, rawInURL()
	}
	return q, nil
}

// searchBody is a look-up as the JSON API takes it.
type searchBody struct {
	Tenant       string `json:"tenant"`
	Actor        string `json:"actor"`
	Subject      string `json:"subject"`
	Store        string `json:"store"`
	Action       string `json:"action"`
	Conversation string `json:"conversation"`
	Purpose      string `json:"purpose"`
	Since        string `json:"since"`
	From         string `json:"from"`
	To           string `json:"to"`
	Limit        int    `json:"limit"`
	Alert        string `json:"alert"`
}

// searchOfRequest returns the search of an API request: a GET's query (no
// raw customer ids), a POST's JSON body. alert is the body's or query's
// alert id (blast radius).
func (s *Server) searchOfRequest(w http.ResponseWriter, r *http.Request) (q Search, alert string, err error) {
	if r.Method == http.MethodGet {
		q, err = s.searchFrom(r)
		return q, r.URL.Query().Get("alert"), err
	}
	var b searchBody
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return Search{}, "", errorf(http.StatusBadRequest, "want a JSON object with tenant, actor, subject, store, action, conversation, purpose, since, from, to, limit: %v", err)
	}
	t := strings.TrimSpace
	return Search{Tenant: t(b.Tenant), Actor: t(b.Actor), Subject: t(b.Subject), Store: t(b.Store), Action: t(b.Action),
		Conversation: t(b.Conversation), Purpose: t(b.Purpose), Since: t(b.Since), From: t(b.From), To: t(b.To), Limit: b.Limit}, t(b.Alert), nil
}

// formSearch reads the investigate form of a POST.
func formSearch(w http.ResponseWriter, r *http.Request) Search {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	_ = r.ParseForm()
	return searchOf(r.PostForm)
}

// investigateSubmit takes the investigate form (POST) and redirects to the
// result under a handle.
func (s *Server) investigateSubmit(w http.ResponseWriter, r *http.Request) error {
	q := formSearch(w, r)
	h := s.lookups.put(principalOf(r).Name, q, s.now())
	http.Redirect(w, r, "/investigate?h="+url.QueryEscape(h), http.StatusSeeOther)
	return nil
}

// subjectSubmit takes a data-subject report request (POST: subject, since,
// from, to) and redirects to the report under a handle.
func (s *Server) subjectSubmit(w http.ResponseWriter, r *http.Request) error {
	q := formSearch(w, r)
	if q.Subject == "" {
		return errorf(http.StatusBadRequest, "no customer id")
	}
	h := s.lookups.put(principalOf(r).Name, q, s.now())
	http.Redirect(w, r, "/investigate/subject?h="+url.QueryEscape(h), http.StatusSeeOther)
	return nil
}
