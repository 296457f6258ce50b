package ident

import (
	"encoding/hex"
	"errors"
	"net/mail"
	"regexp"
	"strings"
	"testing"

	"github.com/overlap-psi/overlap/psi"
)

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,15}$`)

// FuzzParse checks, for every kind and a few option sets, that Parse never
// panics, that a canonical form is a fixed point (same Canonical and
// Digest), that a pre-hashed digest reparses to itself, that errors carry
// only fixed text, and that every accepted email is an address net/mail
// accepts as is.
func FuzzParse(f *testing.F) {
	for _, tt := range parseTests {
		f.Add(tt.raw)
	}
	optionSets := []Options{{}, {DefaultRegion: "US", GmailNormalize: true}, {DefaultRegion: "GB"}}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, kind := range psi.Kinds {
			for _, opts := range optionSets {
				checkParse(t, kind, raw, opts)
			}
		}
	})
}

func checkParse(t *testing.T, kind psi.Kind, raw string, opts Options) {
	got, err := Parse(kind, raw, opts)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("Parse(%v, %q): error of type %T", kind, raw, err)
		}
		if _, ok := reasonText[e.Reason]; !ok || e.Kind != kind {
			t.Fatalf("Parse(%v, %q): unexpected error %#v", kind, raw, e)
		}
		return
	}
	if got.Prehashed {
		if kind == psi.KindID || got.Canonical != "" {
			t.Fatalf("Parse(%v, %q): bad pre-hashed identifier", kind, raw)
		}
		again, err := Parse(kind, hex.EncodeToString(got.Digest[:]), opts)
		if err != nil || again != got {
			t.Fatalf("Parse(%v, %q): pre-hashed digest does not reparse", kind, raw)
		}
		return
	}
	again, err := Parse(kind, got.Canonical, opts)
	if err != nil {
		t.Fatalf("Parse(%v, %q) = %q, which does not reparse: %v", kind, raw, got.Canonical, err)
	}
	if again != got {
		t.Fatalf("Parse(%v, %q) = %q, not a fixed point: %q", kind, raw, got.Canonical, again.Canonical)
	}
	switch kind {
	case psi.KindEmail:
		a, err := mail.ParseAddress(got.Canonical)
		if err != nil || a.Name != "" || a.Address != got.Canonical {
			t.Fatalf("Parse(%v, %q) = %q, which net/mail reads as %v, %v", kind, raw, got.Canonical, a, err)
		}
		if strings.ToLower(got.Canonical) != got.Canonical && !strings.ContainsFunc(got.Canonical, nonASCII) {
			t.Fatalf("Parse(%v, %q) = %q, not lowercase", kind, raw, got.Canonical)
		}
	case psi.KindPhone:
		if !e164.MatchString(got.Canonical) {
			t.Fatalf("Parse(%v, %q) = %q, not E.164", kind, raw, got.Canonical)
		}
	}
}

func nonASCII(r rune) bool { return r >= 0x80 }
