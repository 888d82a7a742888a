package storetest

import (
	"fmt"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// MixedEvents returns about 3,000 events around [from, to) (a week): two tenants, 30
// actors (every third a vendor actor of one of two vendors, one actor of
// the same id in both tenants; a few of a vendor actor's events name no
// vendor), reads, exports and shares, denied ones,
// events without a customer, customers that recur; some in the hour
// before and after the range, and at its first and last second and at
// its end. The rollup tests compare readers over them.
func MixedEvents(from, to time.Time) []models.Event {
	span := to.Sub(from) + 2*time.Hour
	var evs []models.Event
	for i := range 3000 {
		ts := from.Add(-time.Hour + time.Duration(int64(i)*7919%int64(span/time.Second))*time.Second)
		switch i {
		case 0:
			ts = from
		case 1:
			ts = to.Add(-time.Second)
		case 2:
			ts = to
		}
		a := i * 13 % 30
		tenant := []string{"t1", "t2"}[i%2]
		if a == 7 {
			tenant = "t1" // actor-7 only in t1; actor-8 in both
		}
		actor := models.Actor{ID: fmt.Sprintf("actor-%d", a), Type: models.ActorHuman, Role: "agent"}
		if a%3 == 0 && i%50 != 3 { // a few of a vendor actor's events without the vendor
			actor.Type, actor.Vendor, actor.Role = models.ActorVendor, []string{"acme-bpo", "globex"}[a/3%2], "outsourced"
		}
		e := models.Event{EventID: fmt.Sprintf("r-%d", i), TS: ts, Tenant: tenant, Actor: actor, Action: models.ActionRead,
			Store: []string{"crm", "orders", "tickets"}[i%3], Resource: models.Resource{Type: "customer_profile"},
			Records: uint64(1 + i%4), Fields: []string{"email"}, Result: models.ResultAllowed}
		if i%4 != 0 {
			e.SubjectID = fmt.Sprintf("s%d", i%211)
		}
		switch {
		case i%17 == 0:
			e.Action, e.Records, e.Destination = models.ActionShare, uint64(40+i%9), "partner.example"
		case i%11 == 0:
			e.Action, e.Records = models.ActionExport, uint64(100+i%7)
		}
		if i%23 == 0 {
			e.Result = models.ResultDenied
		}
		evs = append(evs, e)
	}
	return evs
}
