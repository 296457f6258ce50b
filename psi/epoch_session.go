package psi

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/overlap-psi/overlap/psi/dp"
	"github.com/overlap-psi/overlap/psi/gcs"
	"github.com/overlap-psi/overlap/psi/wire"
)

// EpochKey is the advertiser's state of one epoch (SPEC.md §10.12.1 step
// 6): the epoch key a_E and what the epoch's sessions need to know. It is a
// secret: keep its encoding in a file private to its owner, and Erase it
// when the epoch ends. Its String and Format never print the key.
type EpochKey struct {
	ID           [16]byte
	Kind         Kind
	CanonVersion uint16
	CanonFlags   uint16
	ServerSize   uint32    // N
	ExpiresAt    time.Time // whole seconds
	Suite        Suite     // the epoch's ciphersuite (SPEC.md §12.1); zero means suite 1
	key          *gkey
}

// String describes the epoch without its key.
func (k *EpochKey) String() string {
	return fmt.Sprintf("psi.EpochKey{id=%x kind=%v suite=%v N=%d expires=%s}", k.ID[:4], k.Kind, k.Suite.Or1(), k.ServerSize, k.ExpiresAt.Format(time.RFC3339))
}

// Format never prints the key.
func (k *EpochKey) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// Expired reports whether the epoch has ended at now.
func (k *EpochKey) Expired(now time.Time) bool { return !now.Before(k.ExpiresAt) }

// Public returns A_E = Enc(B^(a_E)).
func (k *EpochKey) Public() [32]byte {
	return k.key.baseMult()
}

// Erase erases a_E; the key is unusable afterwards.
func (k *EpochKey) Erase() { k.key.erase() }

// The epoch key file's magic: version 2 carries the suite in the byte
// after the magic; version 1, still read, has no suite byte and is suite 1.
var (
	epochKeyMagic   = []byte("OVLEPK2\x00")
	epochKeyMagicV1 = []byte("OVLEPK1\x00")
)

// EpochKeySize is the length of an encoded EpochKey.
const EpochKeySize = 8 + 1 + 16 + 1 + 2 + 2 + 4 + 8 + 32

// epochKeySizeV1 is the length of a version-1 encoding, without the suite.
const epochKeySizeV1 = EpochKeySize - 1

// MarshalBinary encodes the key, secret included, for the client's own
// storage (it is not a protocol message).
func (k *EpochKey) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, EpochKeySize)
	b = append(b, epochKeyMagic...)
	b = append(b, byte(k.Suite.Or1()))
	b = append(b, k.ID[:]...)
	b = append(b, byte(k.Kind))
	b = binary.BigEndian.AppendUint16(b, k.CanonVersion)
	b = binary.BigEndian.AppendUint16(b, k.CanonFlags)
	b = binary.BigEndian.AppendUint32(b, k.ServerSize)
	b = binary.BigEndian.AppendUint64(b, uint64(k.ExpiresAt.Unix()))
	kb := k.key.bytes()
	b = append(b, kb[:]...)
	clear(kb[:])
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary wrote. Its errors never
// contain the key.
func (k *EpochKey) UnmarshalBinary(b []byte) error {
	var out EpochKey
	switch {
	case len(b) == EpochKeySize && bytes.HasPrefix(b, epochKeyMagic):
		if s := Suite(b[len(epochKeyMagic)]); s.Known() {
			out.Suite = wireSuite(s)
		} else {
			return fmt.Errorf("psi: epoch key: unknown ciphersuite %d", uint8(s))
		}
		b = b[len(epochKeyMagic)+1:]
	case len(b) == epochKeySizeV1 && bytes.HasPrefix(b, epochKeyMagicV1):
		b = b[len(epochKeyMagicV1):]
	default:
		return fmt.Errorf("psi: not an epoch key (%d bytes)", len(b))
	}
	copy(out.ID[:], b[:16])
	out.Kind = Kind(b[16])
	out.CanonVersion = binary.BigEndian.Uint16(b[17:])
	out.CanonFlags = binary.BigEndian.Uint16(b[19:])
	out.ServerSize = binary.BigEndian.Uint32(b[21:])
	exp := binary.BigEndian.Uint64(b[25:])
	if _, err := hasher(out.Kind); err != nil {
		return fmt.Errorf("psi: epoch key: %w", err)
	}
	if out.ServerSize == 0 || out.ServerSize > wire.MaxSetSize || exp > 1<<40 {
		return fmt.Errorf("psi: epoch key: N = %d or expiry %d out of range", out.ServerSize, exp)
	}
	s, err := keyFromBytes(out.Suite, [32]byte(b[33:]))
	if err != nil {
		return fmt.Errorf("psi: epoch key: the key is not a valid key of suite %v", out.Suite)
	}
	out.ExpiresAt, out.key = time.Unix(int64(exp), 0).UTC(), s
	*k = out
	return nil
}

// NewEpochClient starts an epoch session (SPEC.md §10.12.2) over the
// digests of the client's identifiers, with the epoch's key. Duplicates are
// sent once, in a random order. Closing the client does not erase the
// EpochKey, which serves the epoch's other sessions.
func NewEpochClient(cfg PrivateClientConfig, ek *EpochKey, digests [][32]byte) (*EpochClient, error) {
	if ek.Kind != cfg.Kind || ek.CanonVersion != cfg.CanonVersion || ek.CanonFlags != cfg.CanonFlags {
		return nil, fmt.Errorf("psi: the epoch is for kind %v canonicalization v%d flags %#x, the list for %v v%d flags %#x",
			ek.Kind, ek.CanonVersion, ek.CanonFlags, cfg.Kind, cfg.CanonVersion, cfg.CanonFlags)
	}
	c, err := NewPrivateClient(cfg, digests)
	if err != nil {
		return nil, err
	}
	c.key = ek.key.clone()
	c.offer = wire.SuitesOf(ek.Suite)
	if c.offer == wire.SuitesOf(Suite1) {
		c.offer = 0
	}
	c.epoch = ek
	e := &EpochClient{c: c}
	e.ticket.Epoch, e.ticket.Key = ek.ID, ek.Public()
	return e, nil
}

// EpochClient is the advertiser's side of one epoch session: private mode
// whose work and traffic grow with its list only. It is not safe for
// concurrent use.
type EpochClient struct {
	c      *PrivateClient
	ticket wire.EpochTicket
}

// String never prints keys.
func (e *EpochClient) String() string { return fmt.Sprintf("psi.EpochClient{state=%d}", e.c.state) }

// Format never prints keys.
func (e *EpochClient) Format(f fmt.State, _ rune) { io.WriteString(f, e.String()) }

// Size returns the number of distinct identifiers the client will send.
func (e *EpochClient) Size() int { return e.c.Size() }

// Hello returns the message that opens the session (mode 4).
func (e *EpochClient) Hello() *wire.ClientHello { return e.c.Hello() }

// Ticket returns the EpochTicket that follows the hello.
func (e *EpochClient) Ticket() *wire.EpochTicket { t := e.ticket; return &t }

// ReceiveParams checks the session's parameters: those of SPEC.md §10.2
// step 3, mode 4, and the epoch's N.
func (e *EpochClient) ReceiveParams(p *wire.PrivateParams) error { return e.c.ReceiveParams(p) }

// NextBlinded hashes and blinds the next chunk of the list under a_E.
func (e *EpochClient) NextBlinded() (*wire.ElementChunk, bool, error) { return e.c.NextBlinded() }

// ReceiveRelease checks the release as in mode 2 (SPEC.md §10.6).
func (e *EpochClient) ReceiveRelease(r *wire.PrivateRelease) (PrivateResult, error) {
	return e.c.ReceiveRelease(r)
}

// Close erases the session's copy of the epoch key.
func (e *EpochClient) Close() { e.c.Close() }

// Timings returns the time spent hashing and blinding.
func (e *EpochClient) Timings() PrivateClientTimings { return e.c.Timings() }

type epochServerState int

const (
	epochServerAwaitHello epochServerState = iota
	epochServerAwaitBlinded
	epochServerSendRelease
	epochServerDone
	epochServerFailed
)

// EpochServer is the platform's side of one epoch session (SPEC.md
// §10.12.2). Many may share one Epoch, concurrently; each serves one
// request. It draws the noise at admission and holds it until the release
// (or the end of the session), and holds the exact count only inside the
// call that computes the release. It is not safe for concurrent use.
type EpochServer struct {
	cfg      PrivateServerConfig
	ep       *Epoch
	state    epochServerState
	params   wire.PrivateParams
	f        gcs.Uint128
	n        int
	seq      uint32
	ts       []gcs.Uint128 // T of z^(b_E) for each blinded element
	z        int64         // the noise, drawn at admission
	release  *wire.PrivateRelease
	released bool
	workers  int
}

// String never prints keys, counts or noise.
func (s *EpochServer) String() string { return fmt.Sprintf("psi.EpochServer{state=%d}", s.state) }

// Format never prints keys, counts or noise.
func (s *EpochServer) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// NewEpochServer starts an epoch session counting against ep.
func NewEpochServer(cfg PrivateServerConfig, ep *Epoch) (*EpochServer, error) {
	if err := serverDefaults(&cfg.ChunkSize, &cfg.MaxClientSize); err != nil {
		return nil, err
	}
	if cfg.Mechanism.IsZero() {
		cfg.Mechanism = dp.Default()
	}
	if cfg.Threshold == 0 {
		cfg.Threshold = DefaultThreshold
	}
	gp, err := epochGCS(ep.meta.ServerSize)
	if err != nil {
		return nil, err
	}
	return &EpochServer{cfg: cfg, ep: ep, f: gp.F(), workers: workerCount(cfg.Workers)}, nil
}

func (s *EpochServer) fail(err error) error {
	s.state, s.ts, s.z = epochServerFailed, nil, 0
	return err
}

// Disclosed reports whether the release was handed out: the only message
// of an epoch session derived from the server's set.
func (s *EpochServer) Disclosed() bool { return s.released }

// Close ends the session.
func (s *EpochServer) Close() {
	if s.state != epochServerDone {
		s.state = epochServerFailed
	}
	s.ts, s.release, s.z = nil, nil, 0
}

// ReceiveHello checks the hello and the ticket (SPEC.md §10.12.2 step 2)
// and returns the session's parameters.
func (s *EpochServer) ReceiveHello(h *wire.ClientHello, t *wire.EpochTicket, now time.Time) (*wire.PrivateParams, error) {
	if s.state != epochServerAwaitHello {
		return nil, fmt.Errorf("%w: hello received twice", ErrState)
	}
	m := &s.ep.meta
	limits := HelloLimits{Mode: wire.ModeEpochSession, Kind: m.Kind, CanonVersion: m.CanonVersion, CanonFlags: m.CanonFlags,
		MinClientSize: s.cfg.MinClientSize, MaxClientSize: s.cfg.MaxClientSize}
	if err := limits.Check(h); err != nil {
		return nil, s.fail(err)
	}
	if err := checkSuite(h.Suites, m.Suite); err != nil {
		return nil, s.fail(err)
	}
	if err := s.ep.CheckTicket(h, t, now); err != nil {
		return nil, s.fail(err)
	}
	mech := s.cfg.Mechanism
	num, den := mech.EpsilonFraction()
	p := wire.PrivateParams{Mode: wire.ModeEpochSession, Kind: h.Kind, CanonVersion: m.CanonVersion, CanonFlags: m.CanonFlags,
		ClientSize: h.ClientSize, ServerSize: m.ServerSize, ChunkSize: uint32(s.cfg.ChunkSize),
		Mechanism: mech.Code(), EpsNum: num, EpsDen: den, Sensitivity: mech.Sensitivity(), Threshold: s.cfg.Threshold,
		Suite: wireSuite(m.Suite)}
	if _, err := io.ReadFull(entropy(s.cfg.rand), p.SessionID[:]); err != nil {
		return nil, s.fail(fmt.Errorf("psi: generating a session id: %w", err))
	}
	if err := s.drawNoise(); err != nil {
		return nil, s.fail(err)
	}
	s.params, s.n = p, int(h.ClientSize)
	s.ts = make([]gcs.Uint128, 0, s.n)
	s.state = epochServerAwaitBlinded
	return &p, nil
}

// ReceiveBlinded takes one chunk of the client's blinded identifiers,
// checks every element and computes T of z^(b_E). After the last chunk it
// checks for duplicates, counts against the epoch's tags and computes the
// release.
func (s *EpochServer) ReceiveBlinded(c *wire.ElementChunk) error {
	if s.state != epochServerAwaitBlinded {
		return fmt.Errorf("%w: blinded chunk not expected now", ErrState)
	}
	switch {
	case c.Type != wire.TypeBlinded:
		return s.fail(fmt.Errorf("%w: got %v, want %v", ErrPeer, c.Type, wire.TypeBlinded))
	case c.Seq != s.seq:
		return s.fail(fmt.Errorf("%w: %v %d arrived, want %d", ErrPeer, c.Type, c.Seq, s.seq))
	case c.Count() > s.cfg.ChunkSize:
		return s.fail(fmt.Errorf("%w: chunk of %d elements exceeds the agreed %d", ErrPeer, c.Count(), s.cfg.ChunkSize))
	case len(s.ts)+c.Count() > s.n:
		return s.fail(fmt.Errorf("%w: client sent more than the %d elements expected", ErrPeer, s.n))
	}
	start := len(s.ts)
	s.ts = s.ts[:start+c.Count()]
	key, id := s.ep.key, &s.ep.meta.ID
	err := parallel(c.Count(), s.workers, func(lo, hi int) error {
		i, err := key.multPeers(lo, hi, c.Element, func(i int, enc *[32]byte) {
			s.ts[start+i] = epochT(id, enc[:])
		})
		if err != nil {
			return elemErr("blinded element", start+i, err)
		}
		return nil
	})
	if err != nil {
		return s.fail(err)
	}
	s.seq++
	if len(s.ts) < s.n {
		return nil
	}
	rel, err := s.count()
	if err != nil {
		return s.fail(err)
	}
	s.release, s.ts = rel, nil
	s.state = epochServerSendRelease
	return nil
}

// count checks the request for duplicates and counts; the count lives
// only in this function.
func (s *EpochServer) count() (*wire.PrivateRelease, error) {
	slices.SortFunc(s.ts, gcs.Uint128.Cmp)
	c := 0
	for i, t := range s.ts {
		// Distinct elements give distinct z^(b_E), and equal T but with
		// probability n²/2^129; in suite 2 torsion variants of one element
		// give equal products, refused here too (SPEC.md §12.6).
		if i > 0 && t == s.ts[i-1] {
			return nil, fmt.Errorf("%w: the client's blinded identifiers contain a duplicate", ErrPeer)
		}
		if s.ep.contains(gcs.Reduce(t, s.f)) {
			c++
		}
	}
	return releaseOf(&s.params, c, s.z), nil
}

// drawNoise draws the release's noise at admission, before the list
// arrives, so that the sampler's running time (which varies with |Z|)
// does not separate the last blinded chunk from the release.
func (s *EpochServer) drawNoise() error {
	m := s.cfg.Mechanism
	var err error
	if s.cfg.noise != nil {
		s.z, err = s.cfg.noise(m)
	} else {
		smp := dp.NewSampler(entropy(s.cfg.rand))
		s.z, err = m.Sample(smp)
		smp.Erase()
	}
	if err != nil {
		return fmt.Errorf("psi: sampling the noise: %w", err)
	}
	return nil
}

// Release returns the session's release; the session is then done.
func (s *EpochServer) Release() (*wire.PrivateRelease, error) {
	if s.state != epochServerSendRelease {
		return nil, fmt.Errorf("%w: no release to send now", ErrState)
	}
	rel := s.release
	s.release, s.released, s.z = nil, true, 0
	s.state = epochServerDone
	return rel, nil
}
