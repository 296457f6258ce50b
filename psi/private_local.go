package psi

import (
	"fmt"

	"github.com/overlap-psi/overlap/psi/wire"
)

// RunLocalPrivate plays a whole private-mode session between c and s in
// memory, as RunLocal does for exact mode: every message goes through its
// wire encoding and decoding, and observe, if not nil, sees each encoded
// message. It is for demos, benchmarks and tests.
func RunLocalPrivate(c *PrivateClient, s *PrivateServer, observe func(Sender, []byte)) (PrivateResult, Traffic, error) {
	var tr Traffic
	send := func(from Sender, m interface{ AppendBinary([]byte) ([]byte, error) }) ([]byte, error) {
		b, err := m.AppendBinary(nil)
		if err != nil {
			return nil, err
		}
		tr.Messages++
		if from == FromClient {
			tr.ClientBytes += int64(len(b))
		} else {
			tr.ServerBytes += int64(len(b))
		}
		if observe != nil {
			observe(from, b)
		}
		return b, nil
	}
	fail := func(err error) (PrivateResult, Traffic, error) {
		c.Close()
		s.Close()
		return PrivateResult{}, tr, err
	}
	// chunks moves a stream of element chunks from next to receive.
	chunks := func(from Sender, typ wire.Type, next func() (*wire.ElementChunk, bool, error), receive func(*wire.ElementChunk) error) error {
		for {
			ch, ok, err := next()
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			b, err := send(from, ch)
			if err != nil {
				return err
			}
			var in wire.ElementChunk
			if err := in.UnmarshalBinary(b, typ); err != nil {
				return err
			}
			if err := receive(&in); err != nil {
				return err
			}
		}
	}

	b, err := send(FromClient, c.Hello())
	if err != nil {
		return fail(err)
	}
	var hello wire.ClientHello
	if err := hello.UnmarshalBinary(b); err != nil {
		return fail(err)
	}
	params, err := s.ReceiveHello(&hello)
	if err != nil {
		return fail(err)
	}
	if b, err = send(FromServer, params); err != nil {
		return fail(err)
	}
	var p wire.PrivateParams
	if err := p.UnmarshalBinary(b); err != nil {
		return fail(err)
	}
	if err := c.ReceiveParams(&p); err != nil {
		return fail(err)
	}
	if err := chunks(FromServer, wire.TypeServerElements, s.NextServerElements, c.ReceiveServerElements); err != nil {
		return fail(err)
	}
	key, err := c.ClientKey()
	if err != nil {
		return fail(err)
	}
	if b, err = send(FromClient, key); err != nil {
		return fail(err)
	}
	var k wire.ClientKey
	if err := k.UnmarshalBinary(b); err != nil {
		return fail(err)
	}
	if err := s.ReceiveClientKey(&k); err != nil {
		return fail(err)
	}
	if err := chunks(FromClient, wire.TypeBlinded, c.NextBlinded, s.ReceiveBlinded); err != nil {
		return fail(err)
	}
	if err := chunks(FromClient, wire.TypeReturned, c.NextReturned, s.ReceiveReturned); err != nil {
		return fail(err)
	}
	rel, err := s.Release()
	if err != nil {
		return fail(err)
	}
	if b, err = send(FromServer, rel); err != nil {
		return fail(err)
	}
	var r wire.PrivateRelease
	if err := r.UnmarshalBinary(b); err != nil {
		return fail(err)
	}
	res, err := c.ReceiveRelease(&r)
	if err != nil {
		return fail(err)
	}
	if !s.Done() {
		return fail(fmt.Errorf("%w: server did not finish", ErrState))
	}
	return res, tr, nil
}
