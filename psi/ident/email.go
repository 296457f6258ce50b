package ident

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

const (
	maxLocalLen  = 64
	maxDomainLen = 253
	maxLabelLen  = 63
)

// parseEmail applies SPEC.md §7.1 to s, which is trimmed, valid UTF-8 and
// free of control characters.
func parseEmail(s string, opts Options) (string, Reason) {
	// Rule 1: things that make s something other than one bare address.
	// They are checked before splitting at "@" so that the reason names
	// the actual mistake ("Bob <bob@x.com>" has a display name, not an
	// invalid local part).
	if len(s) >= len("mailto:") && strings.EqualFold(s[:len("mailto:")], "mailto:") {
		return "", ReasonMailto
	}
	switch {
	case strings.ContainsAny(s, "<>"):
		return "", ReasonDisplayName
	case strings.ContainsAny(s, `"\`):
		return "", ReasonQuoted
	case strings.ContainsAny(s, "()"):
		return "", ReasonComment
	case strings.ContainsAny(s, ",;"):
		return "", ReasonMultipleAddresses
	case strings.IndexFunc(s, unicode.IsSpace) >= 0:
		return "", ReasonWhitespace
	}

	// Rule 2.
	at := strings.IndexByte(s, '@')
	if at < 0 {
		return "", ReasonNotAnEmail
	}
	local, domain := s[:at], s[at+1:]
	if strings.IndexByte(domain, '@') >= 0 {
		return "", ReasonMultipleAt
	}

	// Rule 3. NFC before lowercasing so that decomposed and precomposed
	// input lowercase alike, and after, because lowercasing can leave a
	// string that is not in NFC.
	local = norm.NFC.String(strings.ToLower(norm.NFC.String(local)))
	if r := checkLocal(local); r != "" {
		return "", r
	}

	// Rule 4.
	domain, r := canonicalDomain(domain)
	if r != "" {
		return "", r
	}

	// Rule 5.
	if opts.GmailNormalize && (domain == "gmail.com" || domain == "googlemail.com") {
		if plus := strings.IndexByte(local, '+'); plus >= 0 {
			local = local[:plus]
		}
		local = strings.ReplaceAll(local, ".", "")
		if local == "" {
			return "", ReasonBadLocalPart
		}
		domain = "gmail.com"
	}
	return local + "@" + domain, ""
}

// checkLocal checks a canonical local part against SPEC.md §7.1 rule 3.
func checkLocal(local string) Reason {
	if local == "" {
		return ReasonBadLocalPart
	}
	if len(local) > maxLocalLen {
		return ReasonLocalTooLong
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return ReasonBadLocalPart
	}
	for _, c := range local {
		if c < utf8.RuneSelf {
			if !isAtext(byte(c)) && c != '.' {
				return ReasonBadLocalPart
			}
			continue
		}
		if !unicode.In(c, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S) {
			return ReasonBadLocalPart
		}
	}
	return ""
}

// isAtext reports whether c is an ASCII atext character of RFC 5322,
// Section 3.2.3.
func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// canonicalDomain applies SPEC.md §7.1 rule 4.
func canonicalDomain(domain string) (string, Reason) {
	domain = strings.TrimSuffix(domain, ".")
	if domain == "" {
		return "", ReasonBadDomain
	}
	if domain[0] == '[' {
		return "", ReasonIPLiteral
	}
	// The Lookup profile is UTS #46 non-transitional processing with
	// UseSTD3ASCIIRules, CheckHyphens, CheckBidi and CheckJoiners. It
	// maps case itself, and does not check lengths or empty labels.
	a, err := idna.Lookup.ToASCII(domain)
	if err != nil {
		return "", ReasonBadDomain
	}
	a = strings.ToLower(a)
	// The checks x/net/idna makes on Unicode input and on the A-labels
	// it decodes differ (for instance U+2135 maps to a right-to-left
	// letter that escapes the Bidi rule on the way in but not on the way
	// back), so the result must convert to itself. It does when the input
	// already was the result.
	if a != domain {
		if b, err := idna.Lookup.ToASCII(a); err != nil || b != a {
			return "", ReasonBadDomain
		}
	}
	if len(a) > maxDomainLen {
		return "", ReasonBadDomain
	}
	labels := strings.Split(a, ".")
	if len(labels) < 2 {
		return "", ReasonBadDomain
	}
	for _, l := range labels {
		if l == "" || len(l) > maxLabelLen {
			return "", ReasonBadDomain
		}
	}
	if allDigits(labels[len(labels)-1]) {
		return "", ReasonIPLiteral
	}
	return a, ""
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
