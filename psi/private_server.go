package psi

import (
	"fmt"
	"io"
	"slices"

	"github.com/overlap-psi/overlap/psi/dp"
	"github.com/overlap-psi/overlap/psi/gcs"
	"github.com/overlap-psi/overlap/psi/wire"
)

// PrivateServerConfig is the server's policy for one private-mode session.
// The privacy budget (SPEC.md §10.8) is the caller's: reserve it before
// ReceiveHello, and refund it only if Disclosed reports false when the
// session ends.
type PrivateServerConfig struct {
	CanonVersion  uint16       // canonicalization version the server's set uses
	CanonFlags    uint16       // optional canonicalization rules the set uses
	MinClientSize uint32       // smallest client list accepted (SPEC.md §8.3)
	MaxClientSize uint32       // largest client list accepted
	ChunkSize     int          // elements per element chunk; 0 means DefaultChunkSize
	Mechanism     dp.Mechanism // the noise; the zero value means dp.Default()
	Threshold     uint32       // release threshold T; 0 means DefaultThreshold
	Workers       int          // scalar-multiplication workers; 0 means GOMAXPROCS

	rand  io.Reader                         // nil means crypto/rand; set only by tests
	noise func(dp.Mechanism) (int64, error) // nil means the exact sampler; set only by tests
}

type privServerState int

const (
	privServerAwaitHello privServerState = iota
	privServerSendElements
	privServerAwaitKey
	privServerAwaitBlinded
	privServerAwaitReturned
	privServerSendRelease
	privServerDone
	privServerFailed
)

// PrivateServer is the platform's side of one private-mode session
// (SPEC.md §10). It serves exactly one request, erases its keys as soon as
// it no longer needs them, and never holds the exact count or the noise
// beyond the call that computes the release. It is not safe for concurrent
// use.
type PrivateServer struct {
	cfg       PrivateServerConfig
	set       *PrivateSet
	state     privServerState
	params    wire.PrivateParams
	n         int    // announced client size
	seq       uint32 // next chunk sequence number, in or out
	sent      int    // server elements sent
	got       int    // elements received in the current stream
	disclosed bool
	images    []gcs.Uint128 // tags of the ringer images A^(r_j), sorted
	blinded   []gcs.Uint128 // tags of z^b for the client's elements
	returned  []gcs.Uint128 // tags of the returned elements
	release   *wire.PrivateRelease
	workers   int
	rec       *recordsLayout // a record session's (SPEC.md §13.5); nil otherwise
	records   []uint32       // the record of each sorted blinded tag, in a record session
}

// String never prints keys, counts or noise.
func (s *PrivateServer) String() string { return fmt.Sprintf("psi.PrivateServer{state=%d}", s.state) }

// Format never prints keys, counts or noise.
func (s *PrivateServer) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// NewPrivateServer starts a private-mode session that will use set, which
// it claims: a set serves one session only.
func NewPrivateServer(cfg PrivateServerConfig, set *PrivateSet) (*PrivateServer, error) {
	if err := serverDefaults(&cfg.ChunkSize, &cfg.MaxClientSize); err != nil {
		return nil, err
	}
	if cfg.Mechanism.IsZero() {
		cfg.Mechanism = dp.Default()
	}
	if cfg.Threshold == 0 {
		cfg.Threshold = DefaultThreshold
	}
	if err := set.claim(); err != nil {
		return nil, err
	}
	return &PrivateServer{cfg: cfg, set: set, workers: workerCount(cfg.Workers)}, nil
}

func (s *PrivateServer) fail(err error) error {
	s.state = privServerFailed
	s.set.Destroy()
	s.images, s.blinded, s.returned, s.records = nil, nil, nil, nil
	return err
}

// Disclosed reports whether the server has sent anything derived from its
// set (a ServerElementChunk). A session that ends before that is refunded
// its privacy budget; no other session is (SPEC.md §10.8).
func (s *PrivateServer) Disclosed() bool { return s.disclosed }

// Done reports whether the session completed with a release.
func (s *PrivateServer) Done() bool { return s.state == privServerDone }

// Close ends the session and erases its keys and set, whatever its state.
func (s *PrivateServer) Close() {
	if s.state != privServerDone {
		s.state = privServerFailed
	}
	s.set.Destroy()
	s.images, s.blinded, s.returned = nil, nil, nil
}

// ReceiveHello checks a private-mode hello against the policy (SPEC.md
// §10.2) before any scalar multiplication and returns the session
// parameters.
func (s *PrivateServer) ReceiveHello(h *wire.ClientHello) (*wire.PrivateParams, error) {
	if s.state != privServerAwaitHello {
		return nil, fmt.Errorf("%w: hello received twice", ErrState)
	}
	limits := HelloLimits{Mode: wire.ModePrivate, Kind: s.set.kind, CanonVersion: s.cfg.CanonVersion, CanonFlags: s.cfg.CanonFlags,
		MinClientSize: s.cfg.MinClientSize, MaxClientSize: s.cfg.MaxClientSize}
	if err := limits.Check(h); err != nil {
		return nil, s.fail(err)
	}
	if err := checkSuite(h.Suites, s.set.key.suite); err != nil {
		return nil, s.fail(err)
	}
	return s.open(wire.ModePrivate, h.Kind, h.ClientSize, int(h.ClientSize))
}

// open sets the session's parameters once its hello passed the checks:
// mode and kind are echoed with the announced client size, and the server
// expects elements blinded elements (SPEC.md §10.2, §13.3).
func (s *PrivateServer) open(mode wire.Mode, kind Kind, announced uint32, elements int) (*wire.PrivateParams, error) {
	m := s.cfg.Mechanism
	num, den := m.EpsilonFraction()
	p := wire.PrivateParams{
		Mode: mode, Kind: kind,
		CanonVersion: s.cfg.CanonVersion, CanonFlags: s.cfg.CanonFlags,
		ClientSize: announced, ServerSize: uint32(s.set.elems.Len()), ChunkSize: uint32(s.cfg.ChunkSize),
		Mechanism: m.Code(), EpsNum: num, EpsDen: den, Sensitivity: m.Sensitivity(), Threshold: s.cfg.Threshold,
		Suite: wireSuite(s.set.key.suite),
	}
	if _, err := io.ReadFull(entropy(s.cfg.rand), p.SessionID[:]); err != nil {
		return nil, s.fail(fmt.Errorf("psi: generating a session id: %w", err))
	}
	s.params, s.n = p, elements
	s.state = privServerSendElements
	return &p, nil
}

// NextServerElements returns the next chunk of the server's shuffled
// elements (SPEC.md §10.3), or ok == false when all N have been returned.
func (s *PrivateServer) NextServerElements() (c *wire.ElementChunk, ok bool, err error) {
	if s.state != privServerSendElements {
		return nil, false, fmt.Errorf("%w: no server elements to send now", ErrState)
	}
	elems := s.set.elems
	if s.sent == elems.Len() {
		s.sendDone()
		return nil, false, nil
	}
	c = s.set.nextChunk(s.sent, s.cfg.ChunkSize, s.seq)
	s.sent += c.Count()
	s.seq++
	s.disclosed = true
	return c, true, nil
}

// sendDone ends the sending of the server's elements.
func (s *PrivateServer) sendDone() {
	s.set.elems.truncate(0)
	s.seq, s.state = 0, privServerAwaitKey
}

// ReceiveClientKey checks the client's key A (SPEC.md §3.4) and computes
// the ringer images A^(r_j) (SPEC.md §10.5), then erases the ringer keys.
func (s *PrivateServer) ReceiveClientKey(k *wire.ClientKey) error {
	if s.state == privServerSendElements && s.sent == s.set.elems.Len() {
		s.sendDone()
	}
	if s.state != privServerAwaitKey {
		return fmt.Errorf("%w: client key not expected now", ErrState)
	}
	var a peerElem
	if err := decodePeerElem(s.set.key.suite, &a, k.Key[:]); err != nil {
		return s.fail(fmt.Errorf("%w: client key: %v", ErrPeer, err))
	}
	s.images = make([]gcs.Uint128, len(s.set.ringers))
	if err := s.set.ringerImages(&a, s.workers, func(j int, enc []byte) { s.images[j] = tagOf(&s.set.salt, enc) }); err != nil {
		return s.fail(fmt.Errorf("%w: client key: %v", ErrPeer, err))
	}
	slices.SortFunc(s.images, gcs.Uint128.Cmp)
	s.blinded = make([]gcs.Uint128, 0, s.n)
	s.state = privServerAwaitBlinded
	return nil
}

// checkChunk makes the order and size checks of SPEC.md §10.7.5 on one
// incoming chunk of a stream of want elements.
func (s *PrivateServer) checkChunk(c *wire.ElementChunk, typ wire.Type, want int) error {
	switch {
	case c.Type != typ:
		return fmt.Errorf("%w: got %v, want %v", ErrPeer, c.Type, typ)
	case c.Seq != s.seq:
		return fmt.Errorf("%w: %v %d arrived, want %d", ErrPeer, typ, c.Seq, s.seq)
	case c.Count() > s.cfg.ChunkSize:
		return fmt.Errorf("%w: chunk of %d elements exceeds the agreed %d", ErrPeer, c.Count(), s.cfg.ChunkSize)
	case s.got+c.Count() > want:
		return fmt.Errorf("%w: client sent more than the %d elements expected", ErrPeer, want)
	}
	return nil
}

// ReceiveBlinded takes one chunk of the client's blinded identifiers,
// checks every element (SPEC.md §4.3) and raises it to b. After the last
// chunk it erases b and checks for duplicates across the whole request.
func (s *PrivateServer) ReceiveBlinded(c *wire.ElementChunk) error {
	if s.state != privServerAwaitBlinded {
		return fmt.Errorf("%w: blinded chunk not expected now", ErrState)
	}
	if err := s.checkChunk(c, wire.TypeBlinded, s.n); err != nil {
		return s.fail(err)
	}
	start := len(s.blinded)
	s.blinded = s.blinded[:start+c.Count()]
	key := s.set.key
	err := parallel(c.Count(), s.workers, func(lo, hi int) error {
		i, err := key.multPeers(lo, hi, c.Element, func(i int, enc *[32]byte) {
			s.blinded[start+i] = tagOf(&s.set.salt, enc[:])
		})
		if err != nil {
			return elemErr("blinded element", s.got+i, err)
		}
		return nil
	})
	if err != nil {
		return s.fail(err)
	}
	s.got += c.Count()
	s.seq++
	if s.got < s.n {
		return nil
	}
	s.set.key.erase()
	// Distinct elements z give distinct z^b and, but with probability
	// 2^-128 per pair, distinct tags: equal tags are a repeated element,
	// or in suite 2 one element under several torsion variants, whose
	// products are equal (SPEC.md §12.6): refused either way.
	if s.rec != nil {
		s.records = sortByRecord(s.blinded, s.rec.slots)
	} else {
		slices.SortFunc(s.blinded, gcs.Uint128.Cmp)
	}
	if hasAdjacentEqual(s.blinded) {
		return s.fail(fmt.Errorf("%w: the client's blinded identifiers contain a duplicate", ErrPeer))
	}
	s.got, s.seq = 0, 0
	s.returned = make([]gcs.Uint128, 0, len(s.images)+s.set.real)
	s.state = privServerAwaitReturned
	return nil
}

func hasAdjacentEqual(sorted []gcs.Uint128) bool {
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			return true
		}
	}
	return false
}

// ReceiveReturned takes one chunk of the server's elements as the client
// returned them, raised to a and shuffled, and checks every element. After
// the last chunk it makes the ringer check (SPEC.md §10.5), counts, and
// computes the release (SPEC.md §10.6). A failed ringer check returns an
// error wrapping ErrDeviation.
func (s *PrivateServer) ReceiveReturned(c *wire.ElementChunk) error {
	if s.state != privServerAwaitReturned {
		return fmt.Errorf("%w: returned chunk not expected now", ErrState)
	}
	total := int(s.params.ServerSize)
	if err := s.checkChunk(c, wire.TypeReturned, total); err != nil {
		return s.fail(err)
	}
	start := len(s.returned)
	s.returned = s.returned[:start+c.Count()]
	err := parallel(c.Count(), s.workers, func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			if err := validPeer(s.set.key.suite, c.Element(i)); err != nil {
				return elemErr("returned element", s.got+i, err)
			}
			// A valid encoding is canonical, so it is Enc(E) itself.
			s.returned[start+i] = tagOf(&s.set.salt, c.Element(i))
		}
		return nil
	})
	if err != nil {
		return s.fail(err)
	}
	s.got += c.Count()
	s.seq++
	if s.got < total {
		return nil
	}
	rel, err := s.count()
	if err != nil {
		return s.fail(err)
	}
	s.release = rel
	s.images, s.blinded, s.returned, s.records = nil, nil, nil, nil
	s.state = privServerSendRelease
	return nil
}

// count makes the checks of SPEC.md §10.5 on the whole returned set,
// counts the overlap and returns the release. The count and the noise live
// only in this function. The server compares its own and the client's
// blinded values here, which it is entitled to see.
func (s *PrivateServer) count() (*wire.PrivateRelease, error) {
	ret := s.returned
	slices.SortFunc(ret, gcs.Uint128.Cmp)
	if hasAdjacentEqual(ret) {
		return nil, fmt.Errorf("%w: the returned elements contain a duplicate", ErrPeer)
	}
	// Every ringer image must be among the returned elements; the others
	// are the images of the real elements. Both lists are sorted.
	real := ret[:0]
	j := 0
	for _, t := range ret {
		for j < len(s.images) && s.images[j].Less(t) {
			j++
		}
		if j < len(s.images) && s.images[j] == t {
			j++
			continue
		}
		real = append(real, t)
	}
	// The count of missing ringers would reveal R' = N − |Y|: the error
	// does not carry it.
	if len(ret)-len(real) != len(s.images) {
		return nil, fmt.Errorf("%w: %w: a ringer did not come back as A^r", ErrPeer, ErrDeviation)
	}
	c := 0
	i := 0
	var hits *recordHits
	if s.rec != nil {
		hits = newRecordHits(s.rec.n)
	}
	for k, t := range s.blinded {
		for i < len(real) && real[i].Less(t) {
			i++
		}
		if i < len(real) && real[i] == t {
			c++
			i++
			if hits != nil {
				hits.mark(s.records[k])
			}
		}
	}
	if hits != nil {
		// A record counts once, however many of its slots matched
		// (SPEC.md §13.5 step 3).
		c = hits.count
	}
	m := s.cfg.Mechanism
	var z int64
	var err error
	if s.cfg.noise != nil {
		z, err = s.cfg.noise(m)
	} else {
		smp := dp.NewSampler(entropy(s.cfg.rand))
		z, err = m.Sample(smp)
		smp.Erase()
	}
	if err != nil {
		return nil, fmt.Errorf("psi: sampling the noise: %w", err)
	}
	return releaseOf(&s.params, c, z), nil
}

// releaseOf computes the release of SPEC.md §10.6 for a true count c and
// noise z. Below the threshold, nothing in the result depends on c or z.
func releaseOf(p *wire.PrivateParams, c int, z int64) *wire.PrivateRelease {
	n, t := int64(p.ClientSize), int64(p.Threshold)
	v := min(max(int64(c)+z, 0), n)
	mech, err := dp.FromWire(p.Mechanism, p.EpsNum, p.EpsDen, p.Sensitivity)
	if err != nil {
		panic("psi: internal error: the server's own mechanism is invalid: " + err.Error())
	}
	w := mech.HalfWidth95()
	rel := &wire.PrivateRelease{SessionID: p.SessionID, Mechanism: p.Mechanism,
		EpsNum: p.EpsNum, EpsDen: p.EpsDen, Sensitivity: p.Sensitivity, Threshold: p.Threshold}
	lo, hi, count, outcome := expectedInterval(n, t, v, w)
	rel.Outcome, rel.Count, rel.Low, rel.High = outcome, uint32(count), uint32(lo), uint32(hi)
	return rel
}

// expectedInterval returns the outcome, released count and 95% interval
// for a clamped noised count v (SPEC.md §10.6). Both sides use it: the
// server to release, the client to check.
func expectedInterval(n, t, v, w int64) (lo, hi, count int64, outcome uint8) {
	if v < t {
		return 0, min(n, satAdd(t-1, w)), 0, wire.OutcomeBelow
	}
	return max(0, v-w), min(n, satAdd(v, w)), v, wire.OutcomeCount
}

// satAdd adds two non-negative int64s without overflowing.
func satAdd(a, b int64) int64 {
	if a > 1<<62 || b > 1<<62 {
		return 1 << 62
	}
	return a + b
}

// Release returns the session's release once the returned elements have
// passed every check. The session is then done and its set destroyed.
func (s *PrivateServer) Release() (*wire.PrivateRelease, error) {
	if s.state != privServerSendRelease {
		return nil, fmt.Errorf("%w: no release to send now", ErrState)
	}
	rel := s.release
	s.release = nil
	s.state = privServerDone
	s.set.Destroy()
	return rel, nil
}
