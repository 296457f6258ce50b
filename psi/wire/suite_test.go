package wire

import (
	"bytes"
	"errors"
	"testing"
)

// A hello without the suites byte offers suite 1 only, and is 12 bytes
// exactly as before suites existed (SPEC.md §5.2).
func TestHelloSuitesByte(t *testing.T) {
	h := sampleHello()
	old, _ := h.MarshalBinary()
	if len(old) != ClientHelloSize {
		t.Fatalf("suite-1-only hello is %d bytes, want %d", len(old), ClientHelloSize)
	}
	h.Suites = SuitesOf(SuiteRistretto255)
	if b, _ := h.MarshalBinary(); !bytes.Equal(b, old) {
		t.Fatalf("hello offering {1} explicitly encodes as %x, want %x", b, old)
	}
	var d ClientHello
	if err := d.UnmarshalBinary(old); err != nil || d.Suites.Or1() != SuitesOf(SuiteRistretto255) || d.Suites.Has(SuiteCurve25519) {
		t.Fatalf("12-byte hello decodes to suites %v (%v), want {1}", d.Suites, err)
	}
	for _, m := range []SuiteSet{SuitesOf(SuiteCurve25519), SuitesOf(SuiteRistretto255, SuiteCurve25519)} {
		h.Suites = m
		b, err := h.MarshalBinary()
		if err != nil || len(b) != ClientHelloSize+1 || b[ClientHelloSize] != byte(m) {
			t.Fatalf("hello offering %v: %x, %v", m, b, err)
		}
		if err := d.UnmarshalBinary(b); err != nil || d.Suites != m {
			t.Fatalf("hello offering %v decodes to %v, %v", m, d.Suites, err)
		}
	}
	h.Suites = 0x80
	if _, err := h.MarshalBinary(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("hello with an unknown suite bit encoded: %v", err)
	}
	for _, bad := range []byte{0, 1, 4, 5, 7, 0x80, 0xff} {
		if err := d.UnmarshalBinary(append(bytes.Clone(old), bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("suites byte %#02x: %v, want ErrMalformed", bad, err)
		}
	}
	if err := d.UnmarshalBinary(append(bytes.Clone(old), 3, 3)); !errors.Is(err, ErrLength) {
		t.Errorf("two suites bytes: %v, want ErrLength", err)
	}
	if err := d.UnmarshalBinary(old[:ClientHelloSize-1]); !errors.Is(err, ErrLength) {
		t.Errorf("truncated hello: %v, want ErrLength", err)
	}
}

// The parameters messages carry the chosen suite in an optional trailing
// byte: absent for suite 1, 2 for suite 2, anything else refused.
func TestParamsSuiteByte(t *testing.T) {
	type msg interface {
		MarshalBinary() ([]byte, error)
		UnmarshalBinary([]byte) error
	}
	cases := []struct {
		name string
		size int
		set  func(Suite) msg
		get  func(msg) Suite
	}{
		{"ServerParams", ServerParamsSize,
			func(s Suite) msg { p := sampleParams(); p.Suite = s; return p },
			func(m msg) Suite { return m.(*ServerParams).Suite }},
		{"PrivateParams", PrivateParamsSize,
			func(s Suite) msg { p := samplePrivateParams(); p.Suite = s; return p },
			func(m msg) Suite { return m.(*PrivateParams).Suite }},
		{"EpochParams", EpochParamsSize,
			func(s Suite) msg { p := sampleEpochParams(); p.Suite = s; return p },
			func(m msg) Suite { return m.(*EpochParams).Suite }},
	}
	for _, tc := range cases {
		one, _ := tc.set(0).MarshalBinary()
		if len(one) != tc.size {
			t.Fatalf("%s: suite-1 encoding is %d bytes, want %d", tc.name, len(one), tc.size)
		}
		if b, _ := tc.set(SuiteRistretto255).MarshalBinary(); !bytes.Equal(b, one) {
			t.Errorf("%s: explicit suite 1 changes the encoding", tc.name)
		}
		two, err := tc.set(SuiteCurve25519).MarshalBinary()
		if err != nil || len(two) != tc.size+1 || two[tc.size] != 2 || !bytes.Equal(two[:tc.size], one) {
			t.Fatalf("%s: suite-2 encoding %x, %v", tc.name, two, err)
		}
		d := tc.set(0)
		if err := d.UnmarshalBinary(one); err != nil || tc.get(d) != 0 || tc.get(d).Or1() != SuiteRistretto255 {
			t.Errorf("%s: suite-1 decoding gives %v, %v", tc.name, tc.get(d), err)
		}
		if err := d.UnmarshalBinary(two); err != nil || tc.get(d) != SuiteCurve25519 {
			t.Errorf("%s: suite-2 decoding gives %v, %v", tc.name, tc.get(d), err)
		}
		for _, bad := range []byte{0, 1, 3, 0xff} {
			if err := d.UnmarshalBinary(append(bytes.Clone(one), bad)); !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: suite byte %d: %v, want ErrMalformed", tc.name, bad, err)
			}
		}
		if err := d.UnmarshalBinary(append(bytes.Clone(two), 2)); !errors.Is(err, ErrLength) {
			t.Errorf("%s: two suite bytes: %v, want ErrLength", tc.name, err)
		}
		if err := d.UnmarshalBinary(one[:tc.size-1]); !errors.Is(err, ErrLength) {
			t.Errorf("%s: truncated: %v, want ErrLength", tc.name, err)
		}
		if _, err := tc.set(9).MarshalBinary(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: unknown suite encoded: %v", tc.name, err)
		}
	}
}

func TestParseSuiteList(t *testing.T) {
	got, err := ParseSuiteList("2,1")
	if err != nil || len(got) != 2 || got[0] != SuiteCurve25519 || got[1] != SuiteRistretto255 {
		t.Fatalf("ParseSuiteList(2,1) = %v, %v", got, err)
	}
	for _, bad := range []string{"", "3", "0", "1,1", "2,x", "1,,2"} {
		if _, err := ParseSuiteList(bad); err == nil {
			t.Errorf("ParseSuiteList(%q) accepted", bad)
		}
	}
	if s := SuitesOf(SuiteRistretto255, SuiteCurve25519).String(); s != "1,2" {
		t.Errorf("SuiteSet string %q", s)
	}
}
