package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func sampleRecordsHello() *RecordsHello {
	return &RecordsHello{Mode: ModePrivateRecords, Kinds: KindSetOf(KindEmail, KindPhone), CanonVersion: 1, CanonFlags: 2, Slots: 3, Records: 100000}
}

// The layout of SPEC.md §13.3, byte for byte.
func TestRecordsHelloLayout(t *testing.T) {
	if RecordsHelloSize != 13 {
		t.Fatalf("RecordsHelloSize = %d, want 13 (SPEC.md §13.3)", RecordsHelloSize)
	}
	b, err := sampleRecordsHello().MarshalBinary()
	if want := "010f" + "06" + "03" + "0001" + "0002" + "03" + "000186a0"; err != nil || hex.EncodeToString(b) != want {
		t.Fatalf("%x, %v; want %s", b, err, want)
	}
	var m RecordsHello
	if err := m.UnmarshalBinary(b); err != nil || m != *sampleRecordsHello() {
		t.Fatalf("decoded %+v, %v", m, err)
	}
	if m.Elements() != 300000 {
		t.Errorf("Elements() = %d", m.Elements())
	}
	if TypeRecordsHello.String() != "RecordsHello" || ModeExactRecords.String() != "exact-records" || ModePrivateRecords.String() != "private-records" {
		t.Errorf("names %v %v %v", TypeRecordsHello, ModeExactRecords, ModePrivateRecords)
	}
	if !ModeExactRecords.IsRecords() || ModeExact.IsRecords() || ModePrivate.IsRecords() {
		t.Error("IsRecords")
	}
}

func TestKindSet(t *testing.T) {
	s := KindSetOf(KindPhone, KindEmail, Kind(0), Kind(9))
	if s != 3 || !s.Has(KindEmail) || !s.Has(KindPhone) || s.Has(KindID) || s.Has(Kind(0)) || s.Len() != 2 {
		t.Errorf("KindSetOf = %#x", uint8(s))
	}
	if s.String() != "email+phone" || AllKinds.String() != "email+phone+id" || KindSet(8).String() != "kinds(0x8)" {
		t.Errorf("names %q %q %q", s, AllKinds, KindSet(8))
	}
	for _, bad := range []KindSet{0, 8, 0xff} {
		if bad.Valid() {
			t.Errorf("%#x is valid", uint8(bad))
		}
	}
}

func TestRecordsHelloDecodeErrors(t *testing.T) {
	good, _ := sampleRecordsHello().MarshalBinary()
	mutate := func(i int, v byte) []byte { b := bytes.Clone(good); b[i] = v; return b }
	hello, _ := sampleHello().MarshalBinary()
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrLength},
		{"short", good[:12], ErrLength},
		{"two bytes long", append(bytes.Clone(good), 3, 0), ErrLength},
		{"suites byte offers none", append(bytes.Clone(good), 0), ErrMalformed},
		{"suites byte offers suite 1 alone", append(bytes.Clone(good), 1), ErrMalformed},
		{"suites byte with an unknown suite", append(bytes.Clone(good), 7), ErrMalformed},
		{"version", mutate(0, 2), ErrVersion},
		{"a ClientHello", hello, ErrType},
		{"type", mutate(1, byte(TypeClientHello)), ErrType},
		{"mode exact", mutate(2, byte(ModeExact)), ErrMalformed},
		{"mode private", mutate(2, byte(ModePrivate)), ErrMalformed},
		{"mode 7", mutate(2, 7), ErrMalformed},
		{"no kinds", mutate(3, 0), ErrMalformed},
		{"unknown kind bit", mutate(3, 0x0b), ErrMalformed},
		{"no slots", mutate(8, 0), ErrLimit},
		{"nine slots", mutate(8, 9), ErrLimit},
		{"no records", append(bytes.Clone(good[:9]), 0, 0, 0, 0), ErrLimit},
		{"n·s above the limit", append(append(bytes.Clone(good[:8]), 8), 0x02, 0, 0, 1), ErrLimit},
	} {
		var m RecordsHello
		if err := m.UnmarshalBinary(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// The largest n at s = 8 is accepted.
	b := append(append(bytes.Clone(good[:8]), 8), 0x02, 0, 0, 0)
	if err := new(RecordsHello).UnmarshalBinary(b); err != nil {
		t.Errorf("n·s = 2^28: %v", err)
	}
	// The suites byte round-trips, as ClientHello's (SPEC.md §13.3).
	for _, offer := range []SuiteSet{SuitesOf(SuiteCurve25519), SuitesOf(SuiteRistretto255, SuiteCurve25519)} {
		h := sampleRecordsHello()
		h.Suites = offer
		enc, _ := h.MarshalBinary()
		var got RecordsHello
		if len(enc) != RecordsHelloSize+1 || got.UnmarshalBinary(enc) != nil || got != *h {
			t.Errorf("suites %v: %x decodes to %+v", offer, enc, got)
		}
	}
	// A ClientHello decoder refuses a RecordsHello.
	if err := new(ClientHello).UnmarshalBinary(good); !errors.Is(err, ErrType) {
		t.Errorf("RecordsHello as ClientHello: %v", err)
	}
}

func FuzzRecordsHello(f *testing.F) {
	b, _ := sampleRecordsHello().MarshalBinary()
	f.Add(b)
	f.Add(b[:12])
	f.Add(append(bytes.Clone(b), 3))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m RecordsHello
		if m.UnmarshalBinary(b) != nil {
			return
		}
		if !m.Mode.IsRecords() || !m.Kinds.Valid() || m.Slots == 0 || m.Slots > MaxSlots || m.Records == 0 || m.Elements() > MaxClientSize {
			t.Fatalf("accepted %+v", m)
		}
		if out, _ := m.MarshalBinary(); !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs: %x vs %x", out, b)
		}
	})
}
