package ident

import (
	"strings"
	"unicode"

	"github.com/nyaruka/phonenumbers"
)

// parsePhone applies SPEC.md §7.2 to s, which is trimmed, valid UTF-8 and
// free of control characters.
//
// libphonenumber is lenient by design: it extracts a number from
// surrounding text, reads letters as keypad digits, splits off extensions
// and skips digits it does not know. None of that may happen here, so rules
// 1 and 2 reduce s to "+" and ASCII digits, or ASCII digits alone, before
// libphonenumber sees it.
func parsePhone(s string, opts Options) (string, Reason) {
	// Rules 1 and 2.
	var b strings.Builder
	b.Grow(len(s))
	for i, c := range s {
		if d, ok := digitValue(c); ok {
			b.WriteByte(d)
			continue
		}
		switch {
		case (c == '+' || c == '\uFF0B') && i == 0:
			b.WriteByte('+')
		case isPhoneSeparator(c):
		case unicode.IsLetter(c):
			return "", ReasonLetters
		default:
			return "", ReasonBadChar
		}
	}
	n := b.String()
	if strings.HasPrefix(n, "00") {
		n = "+" + n[2:]
	}

	// Rule 3.
	reg := ""
	if !strings.HasPrefix(n, "+") {
		if opts.DefaultRegion == "" {
			return "", ReasonNeedsRegion
		}
	}
	if opts.DefaultRegion != "" {
		var ok bool
		if reg, ok = region(opts.DefaultRegion); !ok {
			return "", ReasonBadRegion
		}
	}

	// Rule 4.
	num, err := phonenumbers.Parse(n, reg)
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return "", ReasonInvalidPhone
	}
	return phonenumbers.Format(num, phonenumbers.E164), ""
}

// digitValue maps the digits of SPEC.md §7.2 rule 1 to ASCII.
func digitValue(c rune) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return byte(c), true
	case '\uFF10' <= c && c <= '\uFF19': // fullwidth
		return byte('0' + c - '\uFF10'), true
	case '\u0660' <= c && c <= '\u0669': // Arabic-Indic
		return byte('0' + c - '\u0660'), true
	case '\u06F0' <= c && c <= '\u06F9': // Extended Arabic-Indic
		return byte('0' + c - '\u06F0'), true
	}
	return 0, false
}

func isPhoneSeparator(c rune) bool {
	switch c {
	case ' ', '\u00A0', '-', '.', '(', ')', '/', '\u2212':
		return true
	}
	return '\u2010' <= c && c <= '\u2015'
}

// region returns the upper-case form of code if the phone number metadata
// knows it as a region.
func region(code string) (string, bool) {
	if len(code) != 2 {
		return "", false
	}
	code = strings.ToUpper(code)
	return code, phonenumbers.GetSupportedRegions()[code]
}
