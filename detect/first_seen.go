package detect

import (
	"fmt"
	"strings"

	"github.com/chatwarden/chatwarden/models"
)

func (e *Engine) detectFirstSeen(x *rowCtx) (models.Finding, bool) {
	d := e.cfg.Detectors
	if len(x.newIts) == 0 {
		return models.Finding{}, false
	}
	havePeers := x.peer != nil && x.peer.members >= d.PeerMinPeers
	// An actor whose role has fewer than PeerMinPeers warm members (a
	// tenant of sparse weekly agents, warm after three working weeks) is
	// weighed by the role's members that have worked at least
	// warmup_windows windows, warm or not: they have used the role's
	// routine items, though not long enough for volume baselines. An actor
	// not warm itself is judged so once it has worked as long (its own
	// routine items are known by then).
	shareOf, members := x.peer.share, 0
	if x.peer != nil {
		members = x.peer.members
	}
	if !havePeers && (x.warm || int(x.st.ActiveWindows) >= d.WarmupWindows) {
		if ip := e.itemPeers[peerKey{x.r.Tenant, e.groupOf(x.r.ActorRole, x.r.ActorVendor)}]; ip != nil && ip.members >= d.PeerMinPeers {
			havePeers, shareOf, members = true, ip.share, ip.members
		}
	}
	if !x.warm && !havePeers {
		return models.Finding{}, false
	}
	score := 0.0
	var items []string
	var sensitive int
	for _, it := range x.newIts {
		w := 1.0
		if models.SensitiveCategories[it] {
			w = d.FirstSeenSensitiveWeight
			sensitive++
		}
		if it == itemExport {
			// The actor's first export: data leaving in bulk weighs as
			// much as a sensitive category, and only against a role that
			// does not export (whether the role exports is unknown
			// without peers).
			if !havePeers {
				continue
			}
			w = d.FirstSeenSensitiveWeight
		}
		share := shareOf(it)
		switch {
		case havePeers && share < d.FirstSeenPeerRare:
			w *= 2
		case havePeers && share >= 0.5:
			w *= 0.25
		case havePeers:
			w *= 0.5
		}
		if !x.warm && (!havePeers || share >= d.FirstSeenPeerRare) {
			continue // new actors are judged against their peers only
		}
		score += w
		items = append(items, it)
	}
	if score < d.FirstSeenScore {
		return models.Finding{}, false
	}
	src := "actor"
	if !x.warm {
		src = "peers"
	}
	f := e.base(DetFirstSeen, x, score, 0, models.Evidence{Metric: "weighted first-seen stores, resource types, categories and exports",
		Observed: score, Threshold: d.FirstSeenScore, BaselineSource: src, Peers: peerGroup(x.r.ActorRole, x.r.ActorVendor),
		Notes: map[string]float64{"sensitive": float64(sensitive)}})
	if members > 0 {
		f.Evidence.PeerCount = members
		for _, it := range items {
			f.Evidence.Notes["peer_share:"+it] = shareOf(it)
		}
	}
	if sensitive > 0 {
		f.Severity = max(f.Severity, models.SeverityHigh)
	}
	f.Summary = fmt.Sprintf("%s touched %s for the first time (rare among its peers)", x.r.ActorID, strings.Join(items, ", "))
	return f, true
}
