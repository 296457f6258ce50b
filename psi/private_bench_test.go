package psi

import (
	"testing"
	"time"

	"github.com/overlap-psi/overlap/psi/wire"
)

// Private-mode micro-benchmarks, nested Suite/Role/Step. One op is one
// server element for the steps whose cost grows with N, so ns/op reads as
// the cost per server element; whole-protocol runs at the bench sizes live
// in bench/.

// privateAt returns a client of 100 identifiers and a server whose set,
// ringers included, has about n elements (1000 ringers, unpadded), after
// hello and parameters, with the server's element chunks collected.
func privateAt(b *testing.B, n int) (*PrivateClient, *PrivateServer, []*wire.ElementChunk) {
	b.Helper()
	real := max(n-DefaultRingers, 1)
	set := preparePrivate(b, KindEmail, benchDigests(real, "s"), DefaultRingers, unpadded)
	s := must(NewPrivateServer(PrivateServerConfig{noise: fixedNoise(0)}, set))
	c := must(NewPrivateClient(PrivateClientConfig{Kind: KindEmail}, benchDigests(100, "c")))
	if err := c.ReceiveParams(must(s.ReceiveHello(c.Hello()))); err != nil {
		b.Fatal(err)
	}
	var chunks []*wire.ElementChunk
	for {
		ch, ok, err := s.NextServerElements()
		if err != nil {
			b.Fatal(err)
		}
		if !ok {
			break
		}
		chunks = append(chunks, ch)
	}
	return c, s, chunks
}

func BenchmarkPrivate(b *testing.B) {
	// The client's work per server element: check, raise to a, encode,
	// then the duplicate check and shuffle of all N results.
	b.Run("Client/RaiseServerElements", func(b *testing.B) {
		b.ReportAllocs()
		c, _, chunks := privateAt(b, max(b.N, DefaultRingers+1))
		b.ResetTimer()
		for _, ch := range chunks {
			if err := c.ReceiveServerElements(ch); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		reportPerElement(b, c.params.ServerSize, c.timings.Raise, "raise-ns/elem")
		reportPerElement(b, c.params.ServerSize, c.timings.Shuffle, "shuffle-ns/elem")
	})

	// The client's whole side of a session of n = 100 against N = b.N
	// elements: everything but waiting for the server.
	b.Run("Client/Session", func(b *testing.B) {
		b.ReportAllocs()
		c, s, chunks := privateAt(b, max(b.N, DefaultRingers+1))
		b.ResetTimer()
		var clientTime time.Duration
		start := time.Now()
		for _, ch := range chunks {
			c.ReceiveServerElements(ch)
		}
		key := must(c.ClientKey())
		clientTime += time.Since(start)
		s.ReceiveClientKey(key)
		for {
			start = time.Now()
			ch, ok, _ := c.NextBlinded()
			clientTime += time.Since(start)
			if !ok {
				break
			}
			s.ReceiveBlinded(ch)
		}
		for {
			ch, ok, _ := c.NextReturned()
			if !ok {
				break
			}
			if err := s.ReceiveReturned(ch); err != nil {
				b.Fatal(err)
			}
		}
		start = time.Now()
		if _, err := c.ReceiveRelease(must(s.Release())); err != nil {
			b.Fatal(err)
		}
		clientTime += time.Since(start)
		b.StopTimer()
		reportPerElement(b, c.params.ServerSize, clientTime, "client-ns/elem")
	})

	// The server's work per returned element: decoding, tagging, and at the
	// end sorting, the ringer check and the count.
	b.Run("Server/CheckReturned", func(b *testing.B) {
		b.ReportAllocs()
		c, s, chunks := privateAt(b, max(b.N, DefaultRingers+1))
		for _, ch := range chunks {
			c.ReceiveServerElements(ch)
		}
		s.ReceiveClientKey(must(c.ClientKey()))
		for {
			ch, ok, _ := c.NextBlinded()
			if !ok {
				break
			}
			s.ReceiveBlinded(ch)
		}
		var returned []*wire.ElementChunk
		for {
			ch, ok, _ := c.NextReturned()
			if !ok {
				break
			}
			returned = append(returned, ch)
		}
		b.ResetTimer()
		for _, ch := range returned {
			if err := s.ReceiveReturned(ch); err != nil {
				b.Fatal(err)
			}
		}
	})

	// The server's preparation per element of its set: hash, raise to b,
	// encode, sort, and per ringer a fixed-base multiplication.
	b.Run("Server/PrepareSet", func(b *testing.B) {
		b.ReportAllocs()
		ds := benchDigests(b.N, "s")
		b.ResetTimer()
		set := must(NewPrivateSet(PrivateSetConfig{Kind: KindEmail, size: unpadded}))
		for _, d := range ds {
			set.Add(d)
		}
		if err := set.Finish(); err != nil {
			b.Fatal(err)
		}
	})
}

func reportPerElement(b *testing.B, n uint32, d time.Duration, unit string) {
	b.ReportMetric(float64(d.Nanoseconds())/float64(n), unit)
}
