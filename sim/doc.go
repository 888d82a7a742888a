// Package sim generates realistic, labelled chatbot-platform access traffic:
// the producer side of chatwarden, deterministic by seed.
//
// The world is a set of tenants with Zipf-popular customers and actors:
// human support, billing and fraud agents on shifts in their own time zones
// (lunch dips, lighter weekends, daylight-saving time honoured), chat
// assistants whose tool calls read the customer authenticated in their own
// conversation, service accounts with nightly batch jobs, vendor agents of
// acme-bpo working inside their contract, marketing and analytics actors that
// respect consent, and rare admins. Consent grants and withdrawals are
// emitted as consent.v1 lines.
//
// Attack scenarios are injected on top of the normal traffic, each with a
// Label (kind, tenant, actor, window); hard negatives (traffic that fools
// naive detectors but is legitimate) get labels of kind "negative:<name>".
//
// The generator never reads the clock: Config.Start is passed in, and a
// Generator yields one minute of traffic per call to Next, in timestamp
// order, already encoded as JSON lines (raw customer ids: ingest
// pseudonymizes them).
package sim
