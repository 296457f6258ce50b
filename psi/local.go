package psi

import (
	"fmt"

	"github.com/overlap-psi/overlap/psi/wire"
)

// Traffic counts what a session put on the wire, in encoded message bytes.
type Traffic struct {
	ClientBytes int64 // client → server
	ServerBytes int64 // server → client
	Messages    int
}

// Sender names the side that produced a message.
type Sender int

// Senders.
const (
	FromClient Sender = iota
	FromServer
)

// RunLocal plays a whole session between c and s in memory. Every message
// goes through its wire encoding and decoding, exactly as a transport would
// carry it. observe, if not nil, sees each encoded message. It is for demos,
// benchmarks and tests; a networked deployment drives the roles itself.
func RunLocal(c *Client, s *Server, observe func(Sender, []byte)) (Result, Traffic, error) {
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
	fail := func(err error) (Result, Traffic, error) { c.Close(); s.Close(); return Result{}, tr, err }

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
	var p wire.ServerParams
	if err := p.UnmarshalBinary(b); err != nil {
		return fail(err)
	}
	if err := c.ReceiveParams(&p); err != nil {
		return fail(err)
	}
	for {
		ch, ok, err := c.NextBlinded()
		if err != nil {
			return fail(err)
		}
		if !ok {
			break
		}
		if b, err = send(FromClient, ch); err != nil {
			return fail(err)
		}
		var in wire.ElementChunk
		if err := in.UnmarshalBinary(b, wire.TypeBlinded); err != nil {
			return fail(err)
		}
		if err := s.ReceiveBlinded(&in); err != nil {
			return fail(err)
		}
	}
	for {
		ch, ok, err := s.NextEvaluated()
		if err != nil {
			return fail(err)
		}
		if !ok {
			break
		}
		if b, err = send(FromServer, ch); err != nil {
			return fail(err)
		}
		var in wire.ElementChunk
		if err := in.UnmarshalBinary(b, wire.TypeEvaluated); err != nil {
			return fail(err)
		}
		if err := c.ReceiveEvaluated(&in); err != nil {
			return fail(err)
		}
	}
	for {
		ch, ok, err := s.NextSetChunk()
		if err != nil {
			return fail(err)
		}
		if !ok {
			break
		}
		if b, err = send(FromServer, ch); err != nil {
			return fail(err)
		}
		var in wire.SetChunk
		if err := in.UnmarshalBinary(b); err != nil {
			return fail(err)
		}
		if err := c.ReceiveSetChunk(&in); err != nil {
			return fail(err)
		}
	}
	if !s.Done() {
		return fail(fmt.Errorf("%w: server did not finish", ErrState))
	}
	res, err := c.Result()
	return res, tr, err
}
