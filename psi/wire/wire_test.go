package wire

import (
	"bytes"
	"errors"
	"testing"
)

func sampleHello() *ClientHello {
	return &ClientHello{Mode: ModeExact, Kind: 1, CanonVersion: 1, ClientSize: 1000}
}

func sampleParams() *ServerParams {
	p := &ServerParams{Mode: ModeExact, Kind: 2, CanonVersion: 1, ClientSize: 1000,
		ServerSize: 1 << 20, GCSM: 1 << 40, GCSK: 39, ChunkSize: 4096}
	p.SessionID[0], p.Salt[31] = 7, 9
	return p
}

func TestRoundTrip(t *testing.T) {
	h := sampleHello()
	b, _ := h.MarshalBinary()
	if len(b) != ClientHelloSize {
		t.Fatalf("ClientHello is %d bytes, want %d", len(b), ClientHelloSize)
	}
	var h2 ClientHello
	if err := h2.UnmarshalBinary(b); err != nil || h2 != *h {
		t.Fatalf("ClientHello round trip: %+v, %v", h2, err)
	}

	p := sampleParams()
	b, _ = p.MarshalBinary()
	if len(b) != ServerParamsSize {
		t.Fatalf("ServerParams is %d bytes, want %d", len(b), ServerParamsSize)
	}
	var p2 ServerParams
	if err := p2.UnmarshalBinary(b); err != nil || p2 != *p {
		t.Fatalf("ServerParams round trip: %+v, %v", p2, err)
	}

	c := &ElementChunk{Type: TypeEvaluated, Seq: 3, Elements: bytes.Repeat([]byte{1}, 64)}
	b, _ = c.MarshalBinary()
	var c2 ElementChunk
	if err := c2.UnmarshalBinary(b, TypeEvaluated); err != nil || c2.Seq != 3 || c2.Count() != 2 || !bytes.Equal(c2.Elements, c.Elements) {
		t.Fatalf("ElementChunk round trip: %+v, %v", c2, err)
	}

	s := &SetChunk{Seq: 1, Count: 5, Data: []byte{1, 2, 3}}
	b, _ = s.MarshalBinary()
	var s2 SetChunk
	if err := s2.UnmarshalBinary(b); err != nil || s2.Seq != 1 || s2.Count != 5 || !bytes.Equal(s2.Data, s.Data) {
		t.Fatalf("SetChunk round trip: %+v, %v", s2, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	hello, _ := sampleHello().MarshalBinary()
	params, _ := sampleParams().MarshalBinary()
	chunk, _ := (&ElementChunk{Type: TypeBlinded, Elements: make([]byte, 96)}).MarshalBinary()
	set, _ := (&SetChunk{Count: 2, Data: []byte{0xAA}}).MarshalBinary()

	with := func(b []byte, i int, v byte) []byte {
		c := bytes.Clone(b)
		c[i] = v
		return c
	}
	cases := []struct {
		name string
		b    []byte
		dec  func([]byte) error
		want error
	}{
		// Headers.
		{"empty hello", nil, (&ClientHello{}).UnmarshalBinary, ErrLength},
		{"hello version 2", with(hello, 0, 2), (&ClientHello{}).UnmarshalBinary, ErrVersion},
		{"hello version 0", with(hello, 0, 0), (&ClientHello{}).UnmarshalBinary, ErrVersion},
		{"params as hello", params, (&ClientHello{}).UnmarshalBinary, ErrType},
		{"hello as params", hello, (&ServerParams{}).UnmarshalBinary, ErrType},
		// Lengths that disagree with the header.
		{"hello short", hello[:len(hello)-1], (&ClientHello{}).UnmarshalBinary, ErrLength},
		{"hello long", append(bytes.Clone(hello), 3, 0), (&ClientHello{}).UnmarshalBinary, ErrLength},
		{"params short", params[:40], (&ServerParams{}).UnmarshalBinary, ErrLength},
		{"chunk missing an element", chunk[:len(chunk)-32], func(b []byte) error { return (&ElementChunk{}).UnmarshalBinary(b, TypeBlinded) }, ErrLength},
		{"chunk 31-byte element", chunk[:len(chunk)-1], func(b []byte) error { return (&ElementChunk{}).UnmarshalBinary(b, TypeBlinded) }, ErrLength},
		{"chunk 33-byte element", append(bytes.Clone(chunk), 0), func(b []byte) error { return (&ElementChunk{}).UnmarshalBinary(b, TypeBlinded) }, ErrLength},
		{"chunk header only", chunk[:5], func(b []byte) error { return (&ElementChunk{}).UnmarshalBinary(b, TypeBlinded) }, ErrLength},
		{"set chunk short data", set[:len(set)-1], (&SetChunk{}).UnmarshalBinary, ErrLength},
		{"set chunk trailing", append(bytes.Clone(set), 0), (&SetChunk{}).UnmarshalBinary, ErrLength},
		// Wrong chunk type.
		{"blinded as evaluated", chunk, func(b []byte) error { return (&ElementChunk{}).UnmarshalBinary(b, TypeEvaluated) }, ErrType},
		// Limits.
		{"hello zero size", with(with(with(hello, 9, 0), 10, 0), 11, 0), (&ClientHello{}).UnmarshalBinary, ErrLimit},
		{"hello oversized", with(hello, 8, 0xFF), (&ClientHello{}).UnmarshalBinary, ErrLimit},
		{"params oversized server set", with(params, 60, 0xFF), (&ServerParams{}).UnmarshalBinary, ErrLimit},
		{"params K=64", with(params, 72, 64), (&ServerParams{}).UnmarshalBinary, ErrMalformed},
		{"chunk count 0", with(chunk, 9, 0), func(b []byte) error { return (&ElementChunk{}).UnmarshalBinary(b, TypeBlinded) }, ErrLimit},
		{"chunk count 2^24", with(chunk, 7, 1), func(b []byte) error { return (&ElementChunk{}).UnmarshalBinary(b, TypeBlinded) }, ErrLimit},
		{"set count 0", with(set, 9, 0), (&SetChunk{}).UnmarshalBinary, ErrLimit},
	}
	for _, tc := range cases {
		err := tc.dec(tc.b)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestEncodeRefusesBadChunks(t *testing.T) {
	if _, err := (&ElementChunk{Type: TypeBlinded}).MarshalBinary(); err == nil {
		t.Error("empty element chunk encoded")
	}
	if _, err := (&ElementChunk{Type: TypeBlinded, Elements: make([]byte, 33)}).MarshalBinary(); err == nil {
		t.Error("33-byte element chunk encoded")
	}
	if _, err := (&ElementChunk{Type: TypeServerSet, Elements: make([]byte, 32)}).MarshalBinary(); err == nil {
		t.Error("element chunk of a wrong type encoded")
	}
	if _, err := (&SetChunk{Count: 0, Data: []byte{1}}).MarshalBinary(); err == nil {
		t.Error("empty set chunk encoded")
	}
}

// The fuzz targets check that no input panics and that whatever decodes
// encodes back to the same bytes.

func FuzzClientHello(f *testing.F) {
	b, _ := sampleHello().MarshalBinary()
	f.Add(b)
	h := sampleHello()
	h.Suites = SuitesOf(SuiteRistretto255, SuiteCurve25519)
	b, _ = h.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var m ClientHello
		if m.UnmarshalBinary(b) != nil {
			return
		}
		if out, _ := m.MarshalBinary(); !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs: %x vs %x", out, b)
		}
	})
}

func FuzzServerParams(f *testing.F) {
	b, _ := sampleParams().MarshalBinary()
	f.Add(b)
	p := sampleParams()
	p.Suite = SuiteCurve25519
	b, _ = p.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var m ServerParams
		if m.UnmarshalBinary(b) != nil {
			return
		}
		if out, _ := m.MarshalBinary(); !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs: %x vs %x", out, b)
		}
	})
}

func FuzzElementChunk(f *testing.F) {
	b, _ := (&ElementChunk{Type: TypeBlinded, Seq: 1, Elements: make([]byte, 64)}).MarshalBinary()
	f.Add(b, true)
	f.Fuzz(func(t *testing.T, b []byte, blinded bool) {
		want := TypeEvaluated
		if blinded {
			want = TypeBlinded
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

func FuzzSetChunk(f *testing.F) {
	b, _ := (&SetChunk{Count: 3, Data: []byte{1, 2}}).MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var c SetChunk
		if c.UnmarshalBinary(b) != nil {
			return
		}
		if out, _ := c.MarshalBinary(); !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs")
		}
	})
}
