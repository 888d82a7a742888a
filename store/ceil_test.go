package store

import (
	"testing"
	"time"
)

func TestCeilSecond(t *testing.T) {
	base := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   time.Time
		want time.Time
	}{
		{"whole second unchanged", base, base},
		{"fraction rounds up", base.Add(400 * time.Millisecond), base.Add(time.Second)},
		{"one nanosecond rounds up", base.Add(time.Nanosecond), base.Add(time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ceilSecond(tt.in); !got.Equal(tt.want) {
				t.Fatalf("ceilSecond(%s) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}
