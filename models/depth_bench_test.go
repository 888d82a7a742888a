package models

import "testing"

// BenchmarkDepth: the nesting precheck on a simulated access event (523
// bytes), string-skipping against byte at a time.
func BenchmarkDepth(b *testing.B) {
	ev := []byte(`{"event_id":"sim1-20261019T0000-0","ts":"2026-10-19T00:00:02.941Z","tenant":"brand-b","actor":{"id":"assistant-0098","type":"bot","role":"chat-assistant"},"action":"read","store":"orders","resource":{"type":"order","id":"ord-79130954"},"subject_id":"cust-020153","records":2,"bytes":5484,"fields":["order_history"],"purpose":"support","conversation":{"id":"conv-12","subject_id":"cust-020153"},"tool":"lookup_order","result":"allowed","client":{"ip":"10.20.1.193","country":"US","user_agent":"assistant-runtime/2.7 (tool-calls)"}}`)
	b.Run("skip-strings", func(b *testing.B) {
		for b.Loop() {
			if depth(ev) != 2 {
				b.Fatal("depth")
			}
		}
	})
	b.Run("bytewise", func(b *testing.B) {
		for b.Loop() {
			if depthBytewise(ev) != 2 {
				b.Fatal("depth")
			}
		}
	})
}
