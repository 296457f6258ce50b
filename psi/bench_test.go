package psi

import (
	"fmt"
	"testing"

	"github.com/overlap-psi/overlap/psi/wire"
)

// The benchmarks are nested Suite/Role/Step, as circl's are. One op is one
// element, so ns/op reads as the cost per identifier of each step. Building
// and querying the Golomb-coded set are BenchmarkGCS/Encode and /Decode in
// psi/gcs.

func benchDigests(n int, prefix string) [][32]byte {
	out := make([][32]byte, n)
	for i := range out {
		out[i] = digest(fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

// sessionAt returns a client and server that have exchanged hello and
// parameters for a client list of n elements.
func sessionAt(b *testing.B, n int) (*Client, *Server) {
	c := must(NewClient(ClientConfig{Kind: KindEmail}, benchDigests(n, "c")))
	s := must(NewServer(ServerConfig{}, prepare(b, KindEmail, benchDigests(100, "s"))))
	if err := c.ReceiveParams(must(s.ReceiveHello(c.Hello()))); err != nil {
		b.Fatal(err)
	}
	return c, s
}

func BenchmarkRistretto255(b *testing.B) {
	b.Run("Client/HashToGroup", func(b *testing.B) {
		b.ReportAllocs()
		h := must(hasher(KindEmail))
		d := digest("x")
		e := r255NewElement()
		for b.Loop() {
			h.Hash(e, d[:])
		}
	})

	b.Run("Client/Blind", func(b *testing.B) {
		b.ReportAllocs()
		c, _ := sessionAt(b, b.N)
		b.ResetTimer()
		for {
			_, ok, err := c.NextBlinded()
			if err != nil {
				b.Fatal(err)
			}
			if !ok {
				break
			}
		}
	})

	b.Run("Server/Evaluate", func(b *testing.B) {
		b.ReportAllocs()
		c, s := sessionAt(b, b.N)
		var chunks []*wire.ElementChunk
		for {
			ch, ok, _ := c.NextBlinded()
			if !ok {
				break
			}
			chunks = append(chunks, ch)
		}
		b.ResetTimer()
		for _, ch := range chunks {
			if err := s.ReceiveBlinded(ch); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("Client/UnblindCount", func(b *testing.B) {
		b.ReportAllocs()
		c, s := sessionAt(b, b.N)
		for {
			ch, ok, _ := c.NextBlinded()
			if !ok {
				break
			}
			s.ReceiveBlinded(ch)
		}
		var chunks []*wire.ElementChunk
		for {
			ch, ok, _ := s.NextEvaluated()
			if !ok {
				break
			}
			chunks = append(chunks, ch)
		}
		b.ResetTimer()
		for _, ch := range chunks {
			if err := c.ReceiveEvaluated(ch); err != nil {
				b.Fatal(err)
			}
		}
		for {
			ch, ok, _ := s.NextSetChunk()
			if !ok {
				break
			}
			if err := c.ReceiveSetChunk(ch); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := c.Result(); err != nil {
			b.Fatal(err)
		}
	})

	b.Run("Server/EncodeSet", func(b *testing.B) {
		b.ReportAllocs()
		ds := benchDigests(b.N, "s")
		b.ResetTimer()
		set := must(NewSet(SetConfig{Kind: KindEmail}))
		for _, d := range ds {
			set.Add(d)
		}
		if err := set.Finish(); err != nil {
			b.Fatal(err)
		}
	})
}
