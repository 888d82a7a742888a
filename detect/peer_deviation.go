package detect

import (
	"fmt"
	"math"

	"github.com/chatwarden/chatwarden/models"
)

func (e *Engine) detectPeer(x *rowCtx) (models.Finding, bool) {
	d := e.cfg.Detectors
	group := e.groupOf(x.r.ActorRole, x.r.ActorVendor)
	pw := x.c.peersNow[peerKey{x.r.Tenant, group}]
	if pw == nil || len(pw.records)-1 < d.PeerMinPeers || group == "" {
		return models.Finding{}, false
	}
	obs := float64(x.r.Records)
	med := math.Max(pw.recMed, 1)
	scale := math.Max(madScale*pw.recMAD, math.Sqrt(med))
	z := (obs - med) / scale
	if z < d.PeerZ || obs < d.PeerRatio*med || obs-med < d.VolumeMin/2 {
		return models.Finding{}, false
	}
	if x.warm {
		mu, _, _ := x.st.seasonal(x.how)
		mult := x.c.multiplier(x.r.Tenant)
		if obs < 3*math.Max(mu, 1)*mult || obs < e.maxFactor(x)*float64(x.st.RecMax)*mult {
			return models.Finding{}, false // it always works above its peers, or has done this before
		}
	} else if obs < e.maxFactor(x)*x.peerMax(false)*x.c.multiplier(x.r.Tenant) {
		return models.Finding{}, false // warming up, within what its peers do at most
	}
	if hp, ok := x.st.heavyExplains(obs, x.c.multiplier(x.r.Tenant), x.st.heavyThreshold(d.VolumeMin), e.peerHeavy(x)); ok && hp > d.VolumeTailProb {
		return models.Finding{}, false // a size its own (or its role's) rare heavy calls make plausible
	}
	f := e.base(DetPeerDeviation, x, z, 0, models.Evidence{Metric: "records per window vs peers in the same window",
		Observed: obs, Baseline: med, Spread: scale, Threshold: math.Max(d.PeerRatio*med, med+d.PeerZ*scale),
		BaselineSource: "peers", Peers: peerGroup(x.r.ActorRole, x.r.ActorVendor), PeerCount: len(pw.records) - 1,
		Notes: map[string]float64{"z": z}})
	f.Summary = fmt.Sprintf("%s read %.0f records, %.0fx the median of its %d peers (%s) in the same window (z %.1f)",
		x.r.ActorID, obs, obs/med, len(pw.records)-1, group, z)
	return f, true
}
