package eval

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/pseudonym"
	"github.com/chatwarden/chatwarden/store"
)

// LoadOptions configure Load.
type LoadOptions struct {
	// Events is the JSONL history (access.v1 and consent.v1 lines, any order).
	Events io.Reader
	// Store is the database to fill (migrated).
	Store *store.Store
	// Pseudonymizer hashes customer ids as ingest does, with the
	// deployment's key, so that the history and live events compare.
	Pseudonymizer *pseudonym.Pseudonymizer
	// ChunkEvents is how many events one insert carries (default 50000).
	ChunkEvents int
	// Progress receives progress lines (optional).
	Progress io.Writer
	// IngestedAt stamps the rows' ingested_at (default: each chunk's last
	// event time).
	IngestedAt time.Time
}

// LoadResult counts what Load read and stored.
type LoadResult struct {
	Lines, Events, Consents, Duplicates, Rejected int
	RejectedByReason                              map[string]int
	RejectedExamples                              []Rejection
	First, Last                                   time.Time
}

// Load stores a history file straight into ClickHouse through the replay's
// path (decode and validate as ingest, times judged against the events
// themselves, sorted by time, pseudonymized, inserted in chunks), without
// detection: seconds instead of the minutes Kafka would take. Events whose
// ids are already stored are skipped, so loading the same file twice stores
// its events once (a consent decision stored twice changes nothing: the
// latest decision wins). The window detectors learn it when they back-fill.
func Load(ctx context.Context, opts LoadOptions) (*LoadResult, error) {
	if opts.ChunkEvents <= 0 {
		opts.ChunkEvents = 50000
	}
	dec, err := decodeAll(ctx, opts.Events, opts.Progress)
	if err != nil {
		return nil, err
	}
	n := dec.items.Len()
	res := &LoadResult{Lines: dec.lines, Rejected: dec.lines - n, RejectedByReason: map[string]int{},
		RejectedExamples: dec.examples}
	for r, n := range dec.rejected {
		res.RejectedByReason[string(r)] = n
	}
	if n == 0 {
		return res, nil
	}
	res.First, res.Last = dec.items.at(0).ts, dec.items.at(n-1).ts
	ps, rs := newHashCache(opts.Pseudonymizer, subjectCacheSize), newRecentHashCache(opts.Pseudonymizer, resourceCacheBits)
	for from := 0; from < n; {
		to := nextChunk(dec.items, from, opts.ChunkEvents)
		spans := dec.items.spans(from, to)
		var evs []models.Event
		var cs []models.Consent
		ids := make([]string, 0, to-from)
		for _, items := range spans {
			for i := range items {
				if items[i].consent == nil {
					ids = append(ids, items[i].ev.EventID)
				}
			}
		}
		have, err := opts.Store.ExistingEventIDs(ctx, ids)
		if err != nil {
			return nil, err
		}
		for _, items := range spans {
			for i := range items {
				it := &items[i]
				if it.consent != nil {
					c := *it.consent
					c.SubjectID = ps.Hash(c.SubjectID)
					cs = append(cs, c)
					continue
				}
				if have[it.ev.EventID] {
					res.Duplicates++
					continue
				}
				e := it.ev
				e.SubjectID = ps.Hash(e.SubjectID)
				e.Conversation.SubjectID = ps.Hash(e.Conversation.SubjectID)
				e.Resource.ID = rs.Hash(e.Resource.ID)
				evs = append(evs, e)
			}
		}
		at := opts.IngestedAt
		if at.IsZero() {
			at = dec.items.at(to - 1).ts
		}
		if err := opts.Store.InsertConsents(ctx, cs, at); err != nil {
			return nil, err
		}
		if err := opts.Store.InsertEvents(ctx, evs, at); err != nil {
			return nil, err
		}
		res.Events += len(evs)
		res.Consents += len(cs)
		dec.items.drop(to) // stored: let go of the decoded blocks
		from = to
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, "load: %d events stored, up to %s\n", res.Events, res.Last.Format(time.RFC3339))
		}
	}
	return res, nil
}
