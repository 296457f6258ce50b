package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func sampleEpochParams() *EpochParams {
	return &EpochParams{Mode: ModeEpochSetup, Kind: KindEmail, CanonVersion: 1, Epoch: [16]byte{0xe0, 15: 0x0f},
		ServerSize: 10485760, ChunkSize: 4096, GCSM: 1 << 32, GCSK: 31, ExpiresAt: 1796428800}
}

func TestEpochLayouts(t *testing.T) {
	unhex := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if EpochParamsSize != 49 || EpochReadySize != 26 || EpochTicketSize != 50 {
		t.Fatalf("sizes %d %d %d, want 49 26 50 (SPEC.md §10.12.8)", EpochParamsSize, EpochReadySize, EpochTicketSize)
	}
	for _, tc := range []struct {
		name string
		m    interface{ MarshalBinary() ([]byte, error) }
		want string
	}{
		{"EpochParams", sampleEpochParams(),
			"010b03010001" + "0000" + "e00000000000000000000000000000" + "0f" + "00a00000" + "00001000" + "0000000100000000" + "1f" + "000000006b135400"},
		{"EpochReady", &EpochReady{Epoch: [16]byte{1}, ExpiresAt: 2}, "010d" + "01000000000000000000000000000000" + "0000000000000002"},
		{"EpochTicket", &EpochTicket{Epoch: [16]byte{2}, Key: [32]byte{3}},
			"010e" + "02000000000000000000000000000000" + "03" + "00000000000000000000000000000000000000000000000000000000000000"},
		{"TagChunk", &TagChunk{Seq: 1, Count: 2, Data: []byte{0xab}}, "010c" + "00000001" + "00000002" + "00000001" + "ab"},
	} {
		b, err := tc.m.MarshalBinary()
		if err != nil || !bytes.Equal(b, unhex(tc.want)) {
			t.Errorf("%s: %x, %v\nwant %s", tc.name, b, err, tc.want)
		}
	}
	for typ, name := range map[Type]string{11: "EpochParams", 12: "TagChunk", 13: "EpochReady", 14: "EpochTicket"} {
		if typ.String() != name {
			t.Errorf("Type(%d) = %q, want %q", typ, typ.String(), name)
		}
	}
	if ModeEpochSetup.String() != "epoch-setup" || ModeEpochSession.String() != "epoch-session" {
		t.Errorf("mode names %v %v", ModeEpochSetup, ModeEpochSession)
	}
}

func TestEpochDecodeErrors(t *testing.T) {
	params, _ := sampleEpochParams().MarshalBinary()
	mutate := func(b []byte, i int, v byte) []byte { b = bytes.Clone(b); b[i] = v; return b }
	var p EpochParams
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"short", params[:48], ErrLength},
		{"long", append(bytes.Clone(params), 2, 0), ErrLength},
		{"version", mutate(params, 0, 2), ErrVersion},
		{"type", mutate(params, 1, byte(TypeServerParams)), ErrType},
		{"N = 0", append(append(bytes.Clone(params[:24]), 0, 0, 0, 0), params[28:]...), ErrLimit},
		{"N over the limit", mutate(params, 24, 0x80), ErrLimit},
		{"C = 0", append(append(bytes.Clone(params[:28]), 0, 0, 0, 0), params[32:]...), ErrLimit},
		{"K = 64", mutate(params, 40, 64), ErrMalformed},
	} {
		if err := p.UnmarshalBinary(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("EpochParams %s: %v, want %v", tc.name, err, tc.want)
		}
	}
	ticket, _ := (&EpochTicket{}).MarshalBinary()
	if err := new(EpochTicket).UnmarshalBinary(ticket[:49]); !errors.Is(err, ErrLength) {
		t.Errorf("short ticket: %v", err)
	}
	if err := new(EpochReady).UnmarshalBinary(ticket); !errors.Is(err, ErrType) {
		t.Errorf("a ticket decoded as EpochReady: %v", err)
	}
	tags, _ := (&TagChunk{Count: 1, Data: []byte{1, 2}}).MarshalBinary()
	if err := new(SetChunk).UnmarshalBinary(tags); !errors.Is(err, ErrType) {
		t.Errorf("a TagChunk decoded as a ServerSetChunk: %v", err)
	}
	if err := new(TagChunk).UnmarshalBinary(tags[:len(tags)-1]); !errors.Is(err, ErrLength) {
		t.Errorf("truncated TagChunk: %v", err)
	}
	if _, err := (&TagChunk{Count: 0, Data: []byte{1}}).MarshalBinary(); !errors.Is(err, ErrLimit) {
		t.Errorf("an empty TagChunk encoded: %v", err)
	}
}

// FuzzEpochMessages decodes every input as each of the four epoch messages:
// none may panic, and whatever decodes must encode back to the same bytes.
func FuzzEpochMessages(f *testing.F) {
	for _, m := range []interface{ MarshalBinary() ([]byte, error) }{
		sampleEpochParams(), &EpochReady{Epoch: [16]byte{1}, ExpiresAt: 9},
		&EpochTicket{Epoch: [16]byte{2}, Key: [32]byte{3}}, &TagChunk{Seq: 3, Count: 7, Data: []byte{1, 2, 3}},
	} {
		b, _ := m.MarshalBinary()
		f.Add(b)
	}
	p := sampleEpochParams()
	p.Suite = SuiteCurve25519
	b, _ := p.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range []interface {
			UnmarshalBinary([]byte) error
			MarshalBinary() ([]byte, error)
		}{new(EpochParams), new(EpochReady), new(EpochTicket), new(TagChunk)} {
			if m.UnmarshalBinary(b) != nil {
				continue
			}
			if out, err := m.MarshalBinary(); err != nil || !bytes.Equal(out, b) {
				t.Fatalf("%T: re-encoding differs: %x vs %x (%v)", m, out, b, err)
			}
		}
	})
}
