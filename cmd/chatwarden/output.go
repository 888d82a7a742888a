package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// formatFlag is the one output flag of every command that prints a result:
// -format with the values the command supports (text, json, csv; report also
// md and html), the first being the default. Commands that used to take
// -json keep it as a deprecated alias of -format json, and old value names
// (history's and dsar's "table") still work with a note on stderr.
type formatFlag struct {
	value   *string
	json    *bool
	allowed []string
	aliases map[string]string
}

// addFormatFlag registers -format on fs; allowed[0] is the default.
func addFormatFlag(fs *flag.FlagSet, allowed ...string) *formatFlag {
	f := &formatFlag{allowed: allowed, aliases: map[string]string{}}
	f.value = fs.String("format", allowed[0], "output format: "+strings.Join(allowed, ", "))
	return f
}

// withJSONAlias registers the deprecated -json flag.
func (f *formatFlag) withJSONAlias(fs *flag.FlagSet) *formatFlag {
	f.json = fs.Bool("json", false, "deprecated: use -format json")
	return f
}

// withAlias accepts old as a deprecated name of the value now.
func (f *formatFlag) withAlias(old, now string) *formatFlag {
	f.aliases[old] = now
	return f
}

// get returns the chosen format, noting a deprecated spelling on stderr, or
// an error naming the flag and the values it takes.
func (f *formatFlag) get(stderr io.Writer) (string, error) {
	v := *f.value
	if now, ok := f.aliases[v]; ok {
		fmt.Fprintf(stderr, "note: -format %s is deprecated, use -format %s\n", v, now)
		v = now
	}
	if f.json != nil && *f.json {
		fmt.Fprintln(stderr, "note: -json is deprecated, use -format json")
		if v != f.allowed[0] && v != "json" {
			return "", fmt.Errorf("-json and -format %s: give one", v)
		}
		v = "json"
	}
	if !slices.Contains(f.allowed, v) {
		return "", fmt.Errorf("-format %q: want %s", *f.value, strings.Join(f.allowed, ", "))
	}
	return v, nil
}
