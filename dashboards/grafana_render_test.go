package dashboards

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// grafanaVar matches a template variable reference in the three syntaxes
// Grafana accepts: ${name}, ${name:format} and $name (and the deprecated
// [[name]] / [[name:format]]). Macros ($__timeFilter, ...) are not variables.
var grafanaVar = regexp.MustCompile(`\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)(?::(\w+))?\]\]|\$([A-Za-z]\w*)`)

// grafanaRender renders a panel's SQL as Grafana and the
// grafana-clickhouse-datasource plugin would: the plugin's macros over the
// time range and interval, then every variable through the formatter its
// reference names (no format: the value as is). A format this renderer does
// not know fails the test, so a dashboard cannot use one unchecked.
func grafanaRender(t testing.TB, sql string, from, to time.Time, interval time.Duration, vars map[string]string) string {
	t.Helper()
	f := "toDateTime(" + strconv.FormatInt(from.Unix(), 10) + ")"
	to2 := "toDateTime(" + strconv.FormatInt(to.Unix(), 10) + ")"
	sql = timeFilter.ReplaceAllString(sql, "$1 >= "+f+" AND $1 <= "+to2)
	sql = strings.NewReplacer("$__fromTime", f, "$__toTime", to2,
		"$__interval_s", strconv.Itoa(int(interval.Seconds()))).Replace(sql)
	return grafanaVar.ReplaceAllStringFunc(sql, func(ref string) string {
		m := grafanaVar.FindStringSubmatch(ref)
		name, format := m[1]+m[3]+m[5], m[2]+m[4]
		v, ok := vars[name]
		if !ok {
			t.Fatalf("variable %q is not defined (reference %s)", name, ref)
		}
		return grafanaFormat(t, v, format)
	})
}

// grafanaFormat is Grafana's variable formatter for a single value
// (public/app/features/templating/formatRegistry.ts).
func grafanaFormat(t testing.TB, v, format string) string {
	t.Helper()
	switch format {
	case "", "raw", "text":
		return v
	case "singlequote":
		// "'" becomes "\'", and nothing else: a value ending in a
		// backslash escapes ClickHouse's closing quote.
		return "'" + strings.ReplaceAll(v, "'", `\'`) + "'"
	case "sqlstring":
		return "'" + strings.ReplaceAll(v, "'", "''") + "'"
	case "percentencode":
		return encodeURIComponentStrict(v)
	default:
		t.Fatalf("grafana format %q: not rendered by this test; add it with its escaping rules", format)
		return ""
	}
}

// encodeURIComponentStrict is JavaScript's encodeURIComponent followed by
// Grafana's extra escaping of !'()*: only A-Z a-z 0-9 - _ . ~ stay as they
// are; everything else becomes %XX per UTF-8 byte.
func encodeURIComponentStrict(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("-_.~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

func TestEncodeURIComponentStrict(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"retail", "retail"},
		{"x' OR 1=1 --", "x%27%20OR%201%3D1%20--"},
		{`a\b`, "a%5Cb"},
		{"(a)!*~", "%28a%29%21%2A~"},
		{"ü", "%C3%BC"},
	} {
		got := encodeURIComponentStrict(tc.in)
		if got != tc.want {
			t.Errorf("%q: %q, want %q", tc.in, got, tc.want)
		}
		// url.PathUnescape is the inverse (no '+' for spaces).
		if back, err := url.PathUnescape(got); err != nil || back != tc.in {
			t.Errorf("%q does not round-trip: %q %v", tc.in, back, err)
		}
	}
}
