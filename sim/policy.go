package sim

// VendorContract is what the simulated vendor's users may touch, and when:
// the contract they work within (attacks of kind vendor_out_of_scope break
// it). Hours are "HH:MM-HH:MM" in TimeZone; Days are mon..sun.
type VendorContract struct {
	Stores     []string
	Categories []string
	Hours      string
	Days       []string
	TimeZone   string
	Country    string
}

// Policy is the configuration a deployment of the simulated platform has:
// which data categories each declared purpose may read, which purposes
// need the customer's consent, and the vendor contracts. The product's
// defaults carry none of it (a stranger's deployment has its own);
// `chatwarden simulate --out-config` writes it for `eval` and the demo.
type Policy struct {
	Purposes     map[string][]string
	ConsentGated []string
	Vendors      map[string]VendorContract
}

// DefaultPolicy returns the policy the simulator's traffic is generated
// under: its purposes read only these categories (purpose_violation attacks
// read others), marketing, analytics and training rest on consent, and the
// vendor acme-bpo works in crm, orders and transcripts, 00:00-12:00 UTC,
// Monday to Saturday.
func DefaultPolicy() Policy {
	return Policy{
		Purposes: map[string][]string{
			"support":   {"email", "phone", "address", "name", "order_history", "transcript_text"},
			"billing":   {"email", "name", "address", "payment"},
			"fraud":     {"*"},
			"marketing": {"email", "name"},
			"analytics": {"order_history"},
			"training":  {"transcript_text"},
		},
		ConsentGated: append([]string(nil), consentPurposes...),
		Vendors: map[string]VendorContract{
			VendorName: {
				Stores:     []string{"crm", "orders", "transcripts"},
				Categories: []string{"email", "phone", "name", "address", "order_history", "transcript_text"},
				Hours:      "00:00-12:00",
				Days:       []string{"mon", "tue", "wed", "thu", "fri", "sat"},
				TimeZone:   "UTC",
				Country:    VendorCountry,
			},
		},
	}
}
