package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func samplePrivateParams() *PrivateParams {
	p := &PrivateParams{Mode: ModePrivate, Kind: 1, CanonVersion: 1, CanonFlags: 1, ClientSize: 1000,
		ServerSize: 1 << 20, ChunkSize: 4096, Mechanism: 1, EpsNum: 1, EpsDen: 2, Sensitivity: 1, Threshold: 100}
	p.SessionID[0], p.SessionID[15] = 7, 9
	return p
}

func sampleRelease() *PrivateRelease {
	r := &PrivateRelease{Mechanism: 1, EpsNum: 1, EpsDen: 2, Sensitivity: 1, Threshold: 100,
		Outcome: OutcomeCount, Count: 250, Low: 244, High: 256}
	r.SessionID[0] = 7
	return r
}

// The layouts of SPEC.md §10.7, byte for byte.
func TestPrivateLayouts(t *testing.T) {
	unhex := func(s string) []byte {
		b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	key := &ClientKey{}
	key.Key[0], key.Key[31] = 0xe2, 0x76
	for _, tc := range []struct {
		name string
		m    interface{ MarshalBinary() ([]byte, error) }
		want string
	}{
		{"PrivateParams", samplePrivateParams(),
			"01 06 02 01 0001 0001 07000000000000000000000000000009 000003e8 00100000 00001000 01 00000001 00000002 00000001 00000064"},
		{"ClientKey", key, "01 08 e200000000000000000000000000000000000000000000000000000000000076"},
		{"PrivateRelease", sampleRelease(),
			"01 0a 07000000000000000000000000000000 01 00000001 00000002 00000001 00000064 01 000000fa 000000f4 00000100"},
		{"ServerElementChunk", &ElementChunk{Type: TypeServerElements, Seq: 2, Elements: make([]byte, 32)},
			"01 07 00000002 00000001 0000000000000000000000000000000000000000000000000000000000000000"},
		{"ReturnedChunk", &ElementChunk{Type: TypeReturned, Seq: 0, Elements: make([]byte, 32)},
			"01 09 00000000 00000001 0000000000000000000000000000000000000000000000000000000000000000"},
	} {
		b, err := tc.m.MarshalBinary()
		if err != nil || !bytes.Equal(b, unhex(tc.want)) {
			t.Errorf("%s: %x, %v\nwant %s", tc.name, b, err, tc.want)
		}
	}
	if PrivateParamsSize != 53 || ClientKeySize != 34 || PrivateReleaseSize != 48 {
		t.Errorf("sizes %d %d %d, want 53 34 48", PrivateParamsSize, ClientKeySize, PrivateReleaseSize)
	}
	for typ, name := range map[Type]string{6: "PrivateParams", 7: "ServerElementChunk", 8: "ClientKey", 9: "ReturnedChunk", 10: "PrivateRelease", 16: "type(16)"} {
		if typ.String() != name {
			t.Errorf("Type(%d) = %q, want %q", typ, typ.String(), name)
		}
	}
}

func TestPrivateRoundTrip(t *testing.T) {
	p := samplePrivateParams()
	b, _ := p.MarshalBinary()
	var p2 PrivateParams
	if err := p2.UnmarshalBinary(b); err != nil || p2 != *p {
		t.Fatalf("PrivateParams round trip: %+v, %v", p2, err)
	}
	k := &ClientKey{Key: [32]byte{1, 2, 3}}
	b, _ = k.MarshalBinary()
	var k2 ClientKey
	if err := k2.UnmarshalBinary(b); err != nil || k2 != *k {
		t.Fatalf("ClientKey round trip: %+v, %v", k2, err)
	}
	for _, r := range []*PrivateRelease{sampleRelease(), {Mechanism: 1, EpsNum: 1, EpsDen: 2, Sensitivity: 1, Threshold: 100, Outcome: OutcomeBelow, High: 105}} {
		b, _ = r.MarshalBinary()
		var r2 PrivateRelease
		if err := r2.UnmarshalBinary(b); err != nil || r2 != *r {
			t.Fatalf("PrivateRelease round trip: %+v, %v", r2, err)
		}
	}
}

func TestPrivateDecodeErrors(t *testing.T) {
	params, _ := samplePrivateParams().MarshalBinary()
	key, _ := (&ClientKey{}).MarshalBinary()
	release, _ := sampleRelease().MarshalBinary()
	returned, _ := (&ElementChunk{Type: TypeReturned, Elements: make([]byte, 64)}).MarshalBinary()
	with := func(b []byte, i int, v byte) []byte {
		c := bytes.Clone(b)
		c[i] = v
		return c
	}
	zero := func(b []byte, i, n int) []byte {
		c := bytes.Clone(b)
		clear(c[i : i+n])
		return c
	}
	decParams := (&PrivateParams{}).UnmarshalBinary
	decKey := (&ClientKey{}).UnmarshalBinary
	decRelease := (&PrivateRelease{}).UnmarshalBinary
	decReturned := func(b []byte) error { return (&ElementChunk{}).UnmarshalBinary(b, TypeReturned) }
	cases := []struct {
		name string
		b    []byte
		dec  func([]byte) error
		want error
	}{
		// Headers: version and type.
		{"params version 2", with(params, 0, 2), decParams, ErrVersion},
		{"key version 0", with(key, 0, 0), decKey, ErrVersion},
		{"release as params", release, decParams, ErrType},
		{"params as release", params, decRelease, ErrType},
		{"key as release", key, decRelease, ErrType},
		{"exact-mode params as private", func() []byte { b, _ := sampleParams().MarshalBinary(); return b }(), decParams, ErrType},
		{"returned as server elements", returned, func(b []byte) error { return (&ElementChunk{}).UnmarshalBinary(b, TypeServerElements) }, ErrType},
		{"returned as blinded", returned, func(b []byte) error { return (&ElementChunk{}).UnmarshalBinary(b, TypeBlinded) }, ErrType},
		// Lengths that disagree with the message.
		{"params short", params[:52], decParams, ErrLength},
		{"params long", append(bytes.Clone(params), 2, 0), decParams, ErrLength},
		{"key with a 31-byte element", key[:33], decKey, ErrLength},
		{"key with a 33-byte element", append(bytes.Clone(key), 0), decKey, ErrLength},
		{"release short", release[:47], decRelease, ErrLength},
		{"release long", append(bytes.Clone(release), 0), decRelease, ErrLength},
		{"returned 31-byte element", returned[:len(returned)-1], decReturned, ErrLength},
		{"returned header only", returned[:2], decReturned, ErrLength},
		// Limits.
		{"params client size 0", zero(params, 24, 4), decParams, ErrLimit},
		{"params client size over 2^28", with(params, 24, 0x10), decParams, ErrLimit},
		{"params server size 0", zero(params, 28, 4), decParams, ErrLimit},
		{"params server size over 2^30", with(params, 28, 0x40), decParams, ErrLimit},
		{"params chunk size 0", zero(params, 32, 4), decParams, ErrLimit},
		{"params chunk size over 2^16", with(params, 33, 0x01), decParams, ErrLimit},
		{"returned count 0", with(returned, 9, 0), decReturned, ErrLimit},
		// Parameters that cannot be zero.
		{"params ε numerator 0", zero(params, 37, 4), decParams, ErrMalformed},
		{"params ε denominator 0", zero(params, 41, 4), decParams, ErrMalformed},
		{"params sensitivity 0", zero(params, 45, 4), decParams, ErrMalformed},
		{"params threshold 0", zero(params, 49, 4), decParams, ErrMalformed},
		{"release ε denominator 0", zero(release, 23, 4), decRelease, ErrMalformed},
		{"release threshold 0", zero(release, 31, 4), decRelease, ErrMalformed},
		// Release outcomes.
		{"release outcome 0", with(release, 35, 0), decRelease, ErrMalformed},
		{"release outcome 3", with(release, 35, 3), decRelease, ErrMalformed},
		{"below threshold with a count", with(release, 35, OutcomeBelow), decRelease, ErrMalformed},
		{"interval upside down", with(release, 40, 0xff), decRelease, ErrMalformed},
	}
	for _, tc := range cases {
		if err := tc.dec(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	// The encoder refuses what the decoder would.
	if _, err := (&PrivateRelease{EpsNum: 1, EpsDen: 1, Sensitivity: 1, Threshold: 1, Outcome: OutcomeBelow, Count: 5}).MarshalBinary(); !errors.Is(err, ErrMalformed) {
		t.Errorf("a below-threshold release with a count encoded: %v", err)
	}
	if _, err := (&ElementChunk{Type: TypeClientKey, Elements: make([]byte, 32)}).MarshalBinary(); !errors.Is(err, ErrType) {
		t.Errorf("an element chunk of type ClientKey encoded: %v", err)
	}
}

// The fuzz targets check that no input panics and that whatever decodes
// encodes back to the same bytes.

func FuzzPrivateParams(f *testing.F) {
	b, _ := samplePrivateParams().MarshalBinary()
	f.Add(b)
	p := samplePrivateParams()
	p.Suite = SuiteCurve25519
	b, _ = p.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var m PrivateParams
		if m.UnmarshalBinary(b) != nil {
			return
		}
		if out, _ := m.MarshalBinary(); !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs: %x vs %x", out, b)
		}
	})
}

func FuzzClientKey(f *testing.F) {
	b, _ := (&ClientKey{Key: [32]byte{1}}).MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var m ClientKey
		if m.UnmarshalBinary(b) != nil {
			return
		}
		if out, _ := m.MarshalBinary(); !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs: %x vs %x", out, b)
		}
	})
}

func FuzzPrivateRelease(f *testing.F) {
	b, _ := sampleRelease().MarshalBinary()
	f.Add(b)
	b, _ = (&PrivateRelease{EpsNum: 1, EpsDen: 2, Sensitivity: 1, Threshold: 100, Outcome: OutcomeBelow, High: 105}).MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var m PrivateRelease
		if m.UnmarshalBinary(b) != nil {
			return
		}
		if m.Outcome == OutcomeBelow && m.Count != 0 {
			t.Fatal("a below-threshold release decoded with a count")
		}
		out, err := m.MarshalBinary()
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs: %x vs %x (%v)", out, b, err)
		}
	})
}

func FuzzPrivateElementChunk(f *testing.F) {
	b, _ := (&ElementChunk{Type: TypeServerElements, Seq: 1, Elements: make([]byte, 64)}).MarshalBinary()
	f.Add(b, true)
	b, _ = (&ElementChunk{Type: TypeReturned, Seq: 0, Elements: make([]byte, 32)}).MarshalBinary()
	f.Add(b, false)
	f.Fuzz(func(t *testing.T, b []byte, server bool) {
		want := TypeReturned
		if server {
			want = TypeServerElements
		}
		var c ElementChunk
		if c.UnmarshalBinary(b, want) != nil {
			return
		}
		if out, _ := c.MarshalBinary(); !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs")
		}
	})
}
