package psi

import (
	"fmt"

	"github.com/overlap-psi/overlap/psi/wire"
)

// RecvOpening receives a session's first message, a ClientHello (SPEC.md
// §5.2) or a RecordsHello (§13.3); exactly one of the results is not nil
// when err is nil. The server checks it against its policy before it
// creates the role for the hello's mode and calls Serve or ServeRecords.
func RecvOpening(conn Conn) (*wire.ClientHello, *wire.RecordsHello, error) {
	b, err := recv(conn, "the ClientHello")
	if err != nil {
		return nil, nil, err
	}
	if t, _ := wire.PeekType(b); t == wire.TypeRecordsHello {
		var h wire.RecordsHello
		if err := h.UnmarshalBinary(b); err != nil {
			return nil, nil, fmt.Errorf("%w: RecordsHello: %v", ErrPeer, err)
		}
		return nil, &h, nil
	}
	var h wire.ClientHello
	if err := h.UnmarshalBinary(b); err != nil {
		return nil, nil, fmt.Errorf("%w: ClientHello: %v", ErrPeer, err)
	}
	return &h, nil, nil
}

// NewRecordsSet starts a single-use encoding of the server set of a record
// session in exact mode (SPEC.md §13.4): the union of the sets of the given
// kinds, under one key and salt. Add each kind's digests with AddOf, then
// call Finish. cfg.Kind is not used.
func NewRecordsSet(cfg SetConfig, kinds KindSet) (*PreparedSet, error) {
	if !kinds.Valid() {
		return nil, fmt.Errorf("%w: kind set %v", ErrParams, kinds)
	}
	cfg.Kind = kinds.Kinds()[0]
	p, err := NewSet(cfg)
	if err != nil {
		return nil, err
	}
	p.kind, p.kinds = 0, kinds
	return p, nil
}

// Kinds returns the kind set of a record session's set, 0 for a set of
// one kind.
func (p *PreparedSet) Kinds() KindSet { return p.kinds }

// AddOf adds one digest of kind k to a record session's set. Digests are
// best added kind by kind: each change of kind starts a new batch.
func (p *PreparedSet) AddOf(k Kind, digest [32]byte) error {
	if err := p.build.switchKind(p.kinds, k, p.startFlush); err != nil {
		return err
	}
	p.Add(digest)
	return nil
}

// switchKind makes the builder of a record session's set hash the next
// digests as kind k, after flush has taken the batch of another kind. A
// nil builder is a finished set.
func (b *setBuilder) switchKind(kinds KindSet, k Kind, flush func()) error {
	if b == nil {
		return fmt.Errorf("%w: AddOf after Finish", ErrState)
	}
	if !kinds.Has(k) {
		return fmt.Errorf("%w: kind %v is not in the set's kinds %v", ErrParams, k, kinds)
	}
	if b.kind != k {
		if len(b.batch) > 0 {
			flush()
		}
		b.kind = k
	}
	return nil
}

// ReceiveRecordsHello checks a record session's hello against the policy
// (SPEC.md §13.3) before any scalar multiplication and returns the session
// parameters: the kind field carries the kind set, the client size echoes
// the records, and the Golomb range is chosen for n·s queries (§13.4).
func (s *Server) ReceiveRecordsHello(h *wire.RecordsHello) (*wire.ServerParams, error) {
	if s.state != serverAwaitHello {
		return nil, fmt.Errorf("%w: hello received twice", ErrState)
	}
	limits := RecordsLimits{Mode: wire.ModeExactRecords, Kinds: s.set.kinds, ExactKinds: true,
		CanonVersion: s.cfg.CanonVersion, CanonFlags: s.cfg.CanonFlags,
		MinRecords: s.cfg.MinClientSize, MaxRecords: s.cfg.MaxClientSize}
	if err := limits.Check(h); err != nil {
		return nil, s.fail(err)
	}
	if err := checkSuite(h.Suites, s.set.key.suite); err != nil {
		return nil, s.fail(err)
	}
	s.rec = &recordsLayout{kinds: h.Kinds, slots: int(h.Slots), n: int(h.Records)}
	return s.open(wire.ModeExactRecords, Kind(h.Kinds), h.Records, h.Elements())
}

// NewPrivateRecordsSet starts a single-use private-mode encoding of the
// server set of a record session (SPEC.md §13.5): the union of the sets of
// the given kinds, with the ringers, permuted together. perSubject is Δ_K,
// the most digests of one kind the caller let one subject contribute
// (§10.9; 0 means 1): the session's sensitivity is Σ_K Δ_K (§13.7). Add
// each kind's digests with AddOf, then call Finish. cfg.Kind is not used,
// and a record set cannot be an epoch's (§13.11).
func NewPrivateRecordsSet(cfg PrivateSetConfig, kinds KindSet, perSubject uint32) (*PrivateSet, error) {
	if !kinds.Valid() {
		return nil, fmt.Errorf("%w: kind set %v", ErrParams, kinds)
	}
	if cfg.Epoch {
		return nil, fmt.Errorf("%w: epochs do not serve record sessions (SPEC.md §13.11)", ErrParams)
	}
	cfg.Kind = kinds.Kinds()[0]
	p, err := NewPrivateSet(cfg)
	if err != nil {
		return nil, err
	}
	p.kind, p.kinds, p.perSub = 0, kinds, max(perSubject, 1)
	return p, nil
}

// Kinds returns the kind set of a record session's set, 0 for a set of
// one kind.
func (p *PrivateSet) Kinds() KindSet { return p.kinds }

// AddOf adds one digest of kind k to a record session's set.
func (p *PrivateSet) AddOf(k Kind, digest [32]byte) error {
	if err := p.build.switchKind(p.kinds, k, p.flush); err != nil {
		return err
	}
	p.Add(digest)
	return nil
}

// ReceiveRecordsHello checks a record session's hello against the policy
// (SPEC.md §13.3) before any scalar multiplication and returns the session
// parameters. The release's sensitivity is Δ_P = Σ_K Δ_K (§13.7), or the
// configured mechanism's if that is larger; its ε is the configured one.
func (s *PrivateServer) ReceiveRecordsHello(h *wire.RecordsHello) (*wire.PrivateParams, error) {
	if s.state != privServerAwaitHello {
		return nil, fmt.Errorf("%w: hello received twice", ErrState)
	}
	limits := RecordsLimits{Mode: wire.ModePrivateRecords, Kinds: s.set.kinds, ExactKinds: true,
		CanonVersion: s.cfg.CanonVersion, CanonFlags: s.cfg.CanonFlags,
		MinRecords: s.cfg.MinClientSize, MaxRecords: s.cfg.MaxClientSize}
	if err := limits.Check(h); err != nil {
		return nil, s.fail(err)
	}
	if err := checkSuite(h.Suites, s.set.key.suite); err != nil {
		return nil, s.fail(err)
	}
	m, err := recordsMechanism(s.cfg.Mechanism, s.set.kinds, s.set.perSub)
	if err != nil {
		return nil, s.fail(fmt.Errorf("%w: the person-level mechanism: %v", ErrParams, err))
	}
	if m.Sensitivity() < s.cfg.Mechanism.Sensitivity() {
		m = s.cfg.Mechanism
	}
	s.cfg.Mechanism = m
	s.rec = &recordsLayout{kinds: h.Kinds, slots: int(h.Slots), n: int(h.Records)}
	return s.open(wire.ModePrivateRecords, Kind(h.Kinds), h.Records, h.Elements())
}
