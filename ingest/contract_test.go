package ingest

import (
	"encoding/json"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// schemaDoc is the part of a JSON Schema file this test reads.
type schemaDoc struct {
	Required   []string              `json:"required"`
	Properties map[string]schemaProp `json:"properties"`
	Examples   []json.RawMessage     `json:"examples"`
}

type schemaProp struct {
	Type       string                `json:"type"`
	Enum       []string              `json:"enum"`
	MaxLength  int                   `json:"maxLength"`
	MaxItems   int                   `json:"maxItems"`
	Required   []string              `json:"required"`
	Properties map[string]schemaProp `json:"properties"`
	Const      string                `json:"const"`
}

func loadSchema(t *testing.T, path string) schemaDoc {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d schemaDoc
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return d
}

// TestAccessSchemaMatchesValidation keeps docs/access.v1.schema.json and
// models' validation in step: the same required fields, enumerations and
// limits, and every example accepted by the decoder ingest runs.
func TestAccessSchemaMatchesValidation(t *testing.T) {
	d := loadSchema(t, "../docs/access.v1.schema.json")
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	strs := func(xs ...[]string) []string { return slices.Concat(xs...) }
	toS := func(v any) []string {
		var out []string
		switch vs := v.(type) {
		case []models.ActorType:
			for _, x := range vs {
				out = append(out, string(x))
			}
		case []models.Action:
			for _, x := range vs {
				out = append(out, string(x))
			}
		case []models.Result:
			for _, x := range vs {
				out = append(out, string(x))
			}
		}
		return out
	}
	p := d.Properties
	checks := []struct {
		name      string
		got, want any
	}{
		{"required", strs(d.Required), []string{"event_id", "ts", "actor", "action", "store", "resource"}},
		{"actor.required", p["actor"].Required, []string{"id", "type"}},
		{"resource.required", p["resource"].Required, []string{"type"}},
		{"actor.type enum", p["actor"].Properties["type"].Enum, toS(models.ActorTypes)},
		{"action enum", p["action"].Enum, toS(models.Actions)},
		{"result enum", p["result"].Enum, toS(models.Results)},
		{"event_id maxLength", p["event_id"].MaxLength, models.MaxEventIDLen},
		{"store maxLength", p["store"].MaxLength, models.MaxStringLen},
		{"subject_id maxLength", p["subject_id"].MaxLength, models.MaxStringLen},
		{"fields maxItems", p["fields"].MaxItems, models.MaxFields},
		{"user_agent maxLength", p["client"].Properties["user_agent"].MaxLength, models.MaxUserAgentLen},
		{"schema const", p["schema"].Const, models.SchemaAccess},
		{"destination maxLength", p["destination"].MaxLength, models.MaxStringLen},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			gb, _ := json.Marshal(c.got)
			wb, _ := json.Marshal(c.want)
			if string(gb) != string(wb) {
				t.Fatalf("schema has %s, validation has %s", gb, wb)
			}
		})
	}
	if len(d.Examples) < 2 {
		t.Fatal("the schema needs examples")
	}
	for i, ex := range d.Examples {
		if _, err := models.DecodeAccess(ex, now, models.Limits{}); err != nil {
			t.Errorf("example %d rejected: %v", i, err)
		}
	}
}

func TestConsentSchemaExamples(t *testing.T) {
	d := loadSchema(t, "../docs/consent.v1.schema.json")
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	if !slices.Equal(d.Required, []string{"ts", "subject_id", "purpose", "granted"}) {
		t.Fatalf("required %v", d.Required)
	}
	for i, ex := range d.Examples {
		if _, err := models.DecodeConsent(ex, now, models.Limits{}); err != nil {
			t.Errorf("example %d rejected: %v", i, err)
		}
	}
}
