package main

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// termSafe makes a producer-supplied string safe to print on a terminal in
// a table: control characters (C0 including tab and newline, DEL, C1),
// Unicode bidirectional overrides and isolates, and invalid UTF-8 become
// visible escapes (\x1b, \u202e), so that an event cannot move the cursor,
// recolour or clear the screen, set the window title, reorder what a
// responder reads, or break the table's columns. Backslashes are doubled so
// that an escape in the output always means an escaped byte.
func termSafe(s string) string {
	clean := true
	for _, r := range s {
		if r == '\\' || r == utf8.RuneError || unsafeRune(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case unsafeRune(r) && r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) ||
		(r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200e || r == 0x200f || r == 0x061c
}

// termSafeText is termSafe for a whole document printed on a terminal
// (the weekly report as Markdown or HTML): newlines and tabs stay, and
// backslashes are left alone (they are the document's own); every other
// control character, bidirectional override and invalid byte becomes a
// visible escape.
func termSafeText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n' || r == '\t' || !unsafeRune(r):
			b.WriteString(s[i : i+n])
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += n
	}
	return b.String()
}

// termSafeAll applies termSafe to each string.
func termSafeAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = termSafe(s)
	}
	return out
}
