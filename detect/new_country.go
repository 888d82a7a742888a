package detect

import (
	"fmt"
	"slices"
	"strings"

	"github.com/chatwarden/chatwarden/models"
)

func (e *Engine) detectNewCountry(x *rowCtx) (models.Finding, bool) {
	d := e.cfg.Detectors
	if !*d.NewCountry || !x.warm || len(x.st.Countries) == 0 {
		return models.Finding{}, false
	}
	for _, c := range x.r.Countries {
		if slices.Contains(x.st.Countries, c) {
			continue
		}
		share := x.peer.share(c)
		if share >= d.FirstSeenPeerRare {
			continue
		}
		f := e.base(DetNewCountry, x, 1-share, share, models.Evidence{Metric: "new client country", BaselineSource: "actor",
			Peers: peerGroup(x.r.ActorRole, x.r.ActorVendor), Notes: map[string]float64{"peer_share": share}})
		f.Evidence.TopStores = append(f.Evidence.TopStores, "country:"+c)
		f.Summary = fmt.Sprintf("%s accessed from %s, a country new to it (known: %s) and to %.0f%% of its peers",
			x.r.ActorID, c, strings.Join(x.st.Countries, ", "), 100*share)
		return f, true
	}
	return models.Finding{}, false
}
