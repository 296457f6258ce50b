package ident

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/overlap-psi/overlap/psi"
)

// Version is the version of the canonicalization rules of SPEC.md §7. It
// travels in the protocol parameters: two parties whose versions differ
// would hash the same person's identifier to different elements, so they
// must refuse to run a session together.
const Version uint16 = 1

// Maximum lengths in bytes of a trimmed value, per kind (SPEC.md §7).
const (
	MaxEmailLen = 320
	MaxPhoneLen = 64
	MaxIDLen    = 256
)

// Options configures [Parse]. The zero value is valid: no default region and
// no provider-specific email rules.
type Options struct {
	// DefaultRegion is the ISO 3166-1 alpha-2 region code, such as "US",
	// used to read phone numbers written without a "+" country code
	// (SPEC.md §7.2). Case does not matter. When it is empty, such numbers
	// are rejected with ReasonNeedsRegion.
	DefaultRegion string

	// GmailNormalize drops dots and "+tag" suffixes from the local parts
	// of gmail.com and googlemail.com addresses and maps googlemail.com to
	// gmail.com (SPEC.md §7.1, rule 5). It is off by default. Both parties
	// must use the same setting, or such addresses will not match.
	GmailNormalize bool
}

// Validate reports whether o is usable: DefaultRegion must be empty or a
// region known to the phone number metadata. Readers call it once before
// parsing many values so a typo fails fast instead of rejecting every row.
func (o Options) Validate() error {
	if o.DefaultRegion == "" {
		return nil
	}
	if _, ok := region(o.DefaultRegion); !ok {
		return fmt.Errorf("ident: unknown default region %q (want an ISO 3166-1 alpha-2 code such as \"US\")", o.DefaultRegion)
	}
	return nil
}

// Identifier is one canonicalized identifier (SPEC.md §7).
//
// It never prints its value: String, Format (every fmt verb) and
// MarshalText give only the kind, so an Identifier that reaches a log line,
// an error or an encoder leaks nothing. Code that must store the value reads
// Canonical or Digest explicitly.
type Identifier struct {
	Kind psi.Kind
	// Canonical is the canonical string; empty when Prehashed.
	Canonical string
	// Digest is SHA-256(Canonical), or the decoded pre-hashed value.
	Digest [32]byte
	// Prehashed reports that the value was supplied as a hex SHA-256
	// digest, so only Digest is known.
	Prehashed bool
}

// String returns a redacted description such as "ident.Identifier{kind=email}".
func (id Identifier) String() string {
	if id.Prehashed {
		return "ident.Identifier{kind=" + id.Kind.String() + " prehashed}"
	}
	return "ident.Identifier{kind=" + id.Kind.String() + "}"
}

// Format writes the redacted String for every verb, including %v, %+v, %#v,
// %s, %q and %x.
func (id Identifier) Format(f fmt.State, verb rune) {
	io.WriteString(f, id.String())
}

// MarshalText returns the redacted String. An Identifier deliberately has
// no serialized form that carries its value.
func (id Identifier) MarshalText() ([]byte, error) {
	return []byte(id.String()), nil
}

// Parse canonicalizes raw as an identifier of the given kind, following the
// rules of SPEC.md §7 summarized in the package documentation. It returns
// an [*Error] when raw is not a valid identifier of that kind.
func Parse(kind psi.Kind, raw string, opts Options) (Identifier, error) {
	fail := func(r Reason) (Identifier, error) {
		return Identifier{}, &Error{Kind: kind, Reason: r}
	}
	var maxLen int
	switch kind {
	case psi.KindEmail:
		maxLen = MaxEmailLen
	case psi.KindPhone:
		maxLen = MaxPhoneLen
	case psi.KindID:
		maxLen = MaxIDLen
	default:
		return fail(ReasonUnknownKind)
	}
	s := TrimSpace(raw)
	if s == "" {
		return fail(ReasonEmpty)
	}
	if len(s) > maxLen {
		return fail(ReasonTooLong)
	}
	if kind != psi.KindID && len(s) == 2*sha256.Size && isHex(s) {
		id := Identifier{Kind: kind, Prehashed: true}
		hex.Decode(id.Digest[:], []byte(s)) // cannot fail: checked by isHex
		return id, nil
	}
	if !utf8.ValidString(s) {
		return fail(ReasonInvalidUTF8)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return fail(ReasonControlChar)
	}
	var (
		canonical string
		reason    Reason
	)
	switch kind {
	case psi.KindEmail:
		canonical, reason = parseEmail(s, opts)
	case psi.KindPhone:
		canonical, reason = parsePhone(s, opts)
	case psi.KindID:
		canonical = s
	}
	if reason != "" {
		return fail(reason)
	}
	return Identifier{Kind: kind, Canonical: canonical, Digest: sha256.Sum256([]byte(canonical))}, nil
}

// TrimSpace removes the leading and trailing code points that SPEC.md §7
// says to remove: those with the Unicode White_Space property, U+FEFF (byte
// order mark) and U+200B (zero width space). Readers use it to tell blank
// lines from values.
func TrimSpace(s string) string {
	return strings.TrimFunc(s, isTrimmed)
}

func isTrimmed(r rune) bool {
	return unicode.IsSpace(r) || r == '\uFEFF' || r == '\u200B'
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
