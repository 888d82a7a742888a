package models

import (
	"encoding/json"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"
)

// BenchmarkAccessDecoders compares the ways to turn one access.v1 message
// into a wireAccess (no validation, no event): the hand-written fast path
// (what DecodeAccess takes for well-formed messages); encoding/json plus
// checkKeys (the reflective path: duplicate and case-folded keys rejected
// by checkKeys); and encoding/json/v2 (github.com/go-json-experiment/json)
// with its default options, which reject duplicate names and match names
// exactly. v2's figure is a lower bound for a v2-based decoder: rejecting a
// case-folded known key ("STORE") would still need a check of its own.
func BenchmarkAccessDecoders(b *testing.B) {
	msg := []byte(`{"event_id":"sim1-20261019T0000-0","ts":"2026-11-28T00:00:02.941Z","tenant":"brand-b","actor":{"id":"assistant-0098","type":"bot","role":"chat-assistant"},"action":"read","store":"orders","resource":{"type":"order","id":"ord-79130954"},"subject_id":"cust-020153","records":2,"bytes":5484,"fields":["order_history"],"purpose":"support","conversation":{"id":"conv-12","subject_id":"cust-020153"},"tool":"lookup_order","result":"allowed","client":{"ip":"10.20.1.193","country":"US","user_agent":"assistant-runtime/2.7 (tool-calls)"}}`)
	run := func(name string, decode func(w *wireAccess) bool) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				var w wireAccess
				if !decode(&w) || w.Store == nil || *w.Store != "orders" {
					b.Fatal("not decoded")
				}
			}
		})
	}
	run("fast", func(w *wireAccess) bool { return fastAccess(msg, w) })
	run("encoding_json+checkKeys", func(w *wireAccess) bool {
		return json.Unmarshal(msg, w) == nil && checkKeys(msg, accessKeys) == nil
	})
	run("json_v2", func(w *wireAccess) bool { return jsonv2.Unmarshal(msg, w) == nil })
}
