package wire

import (
	"fmt"
	"strconv"
	"strings"
)

// Suite names a ciphersuite (SPEC.md §12.1): the group, its encoding, its
// hash to the group and its keys. The zero value stands for "absent" in a
// decoded message and means suite 1.
type Suite uint8

// The ciphersuites of SPEC.md §12.1.
const (
	SuiteRistretto255 Suite = 1 // suite 1: ristretto255 (SPEC.md §1, §3)
	SuiteCurve25519   Suite = 2 // suite 2: curve25519 with the X25519 ladder (SPEC.md §12)
)

// Suites lists every suite this package knows, in code order.
var Suites = []Suite{SuiteRistretto255, SuiteCurve25519}

// Or1 returns s, or suite 1 for the zero value (a message without a suite
// byte).
func (s Suite) Or1() Suite {
	if s == 0 {
		return SuiteRistretto255
	}
	return s
}

// Known reports whether s is a suite of SPEC.md §12.1.
func (s Suite) Known() bool { return s == SuiteRistretto255 || s == SuiteCurve25519 }

func (s Suite) String() string {
	switch s.Or1() {
	case SuiteRistretto255:
		return "1"
	case SuiteCurve25519:
		return "2"
	}
	return fmt.Sprintf("suite(%d)", uint8(s))
}

// Name is the suite's descriptive name.
func (s Suite) Name() string {
	switch s.Or1() {
	case SuiteRistretto255:
		return "ristretto255"
	case SuiteCurve25519:
		return "curve25519-x25519"
	}
	return s.String()
}

// ParseSuite parses a suite number ("1" or "2").
func ParseSuite(s string) (Suite, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 8)
	if err != nil || !Suite(n).Known() {
		return 0, fmt.Errorf("unknown ciphersuite %q (known: 1, 2)", s)
	}
	return Suite(n), nil
}

// ParseSuiteList parses a comma-separated preference list of suites
// ("2,1"), refusing unknown and repeated suites and an empty list.
func ParseSuiteList(s string) ([]Suite, error) {
	var out []Suite
	for _, f := range strings.Split(s, ",") {
		x, err := ParseSuite(f)
		if err != nil {
			return nil, err
		}
		for _, y := range out {
			if y == x {
				return nil, fmt.Errorf("ciphersuite %v listed twice in %q", x, s)
			}
		}
		out = append(out, x)
	}
	return out, nil
}

// SuiteSet is the bitmask of suites a ClientHello offers (SPEC.md §5.2,
// §12.1): bit s−1 for suite s. The zero value stands for a hello without
// the suites byte, which offers suite 1 only.
type SuiteSet uint8

// knownSuites is the mask of every suite of SPEC.md §12.1.
const knownSuites SuiteSet = 1<<(SuiteRistretto255-1) | 1<<(SuiteCurve25519-1)

// SuitesOf returns the set of the given suites.
func SuitesOf(s ...Suite) SuiteSet {
	var m SuiteSet
	for _, x := range s {
		m |= 1 << (x.Or1() - 1)
	}
	return m
}

// Or1 returns m, or the set {1} for the zero value.
func (m SuiteSet) Or1() SuiteSet {
	if m == 0 {
		return SuitesOf(SuiteRistretto255)
	}
	return m
}

// Has reports whether the set offers s.
func (m SuiteSet) Has(s Suite) bool {
	s = s.Or1()
	return s.Known() && m.Or1()&(1<<(s-1)) != 0
}

func (m SuiteSet) String() string {
	var parts []string
	for _, s := range Suites {
		if m.Has(s) {
			parts = append(parts, s.String())
		}
	}
	return strings.Join(parts, ",")
}

// decodeSuiteSet decodes the optional suites byte of a ClientHello. A byte
// that offers suite 1 only is refused: that is the hello without the byte,
// and every message has one encoding.
func decodeSuiteSet(b byte) (SuiteSet, error) {
	m := SuiteSet(b)
	switch {
	case m&^knownSuites != 0:
		return 0, fmt.Errorf("%w: suites byte %#02x has unknown bits", ErrMalformed, b)
	case m == 0:
		return 0, fmt.Errorf("%w: suites byte offers no suite", ErrMalformed)
	case m == SuitesOf(SuiteRistretto255):
		return 0, fmt.Errorf("%w: suites byte offers suite 1 only; that hello has no suites byte", ErrMalformed)
	}
	return m, nil
}

// appendSuiteSet appends the optional suites byte: nothing for suite 1 only.
func appendSuiteSet(b []byte, m SuiteSet) []byte {
	if m.Or1() == SuitesOf(SuiteRistretto255) {
		return b
	}
	return append(b, byte(m))
}

// decodeSuite decodes the optional suite byte of a parameters message: a
// known suite other than 1 (suite 1 is the message without the byte).
func decodeSuite(b byte) (Suite, error) {
	s := Suite(b)
	if !s.Known() || s == SuiteRistretto255 {
		return 0, fmt.Errorf("%w: suite byte %d is not a suite other than 1", ErrMalformed, b)
	}
	return s, nil
}

// appendSuite appends the optional suite byte: nothing for suite 1.
func appendSuite(b []byte, s Suite) []byte {
	if s.Or1() == SuiteRistretto255 {
		return b
	}
	return append(b, byte(s))
}

// optionalByte checks that b is size or size+1 bytes and returns the extra
// byte, if any.
func optionalByte(b []byte, want Type, size int) (extra byte, ok bool, err error) {
	if err := checkHeader(b, want, -1); err != nil {
		return 0, false, err
	}
	switch len(b) {
	case size:
		return 0, false, nil
	case size + 1:
		return b[size], true, nil
	}
	return 0, false, fmt.Errorf("%w: %v is %d bytes, want %d or %d", ErrLength, want, len(b), size, size+1)
}
