package psi

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/overlap-psi/overlap/psi/gcs"
	"github.com/overlap-psi/overlap/psi/wire"
)

// SetConfig configures the encoding of a server set.
type SetConfig struct {
	Kind    Kind
	Suite   Suite // ciphersuite (SPEC.md §12.1); zero means suite 1
	Workers int   // scalar-multiplication workers; 0 means GOMAXPROCS

	rand io.Reader // nil means crypto/rand; set only by tests and vectors
}

// A PreparedSet is the server's set encoded for exactly one session
// (SPEC.md §4.4): every identifier hashed to the group, multiplied by a
// fresh key b, tagged under a fresh salt, padded to its bucket and sorted.
// It holds the key b until the session it serves has evaluated the client's
// request. It must not be reused: NewServer refuses a used set.
type PreparedSet struct {
	kind  Kind
	kinds KindSet // a record session's set: the union of these kinds' sets (SPEC.md §13.4); 0 otherwise
	key   *gkey
	salt  [32]byte
	tags  []gcs.Uint128 // sorted, padded to bucket size
	real  int           // distinct identifiers before padding
	mu    sync.Mutex
	used  bool
	rand  io.Reader
	build *setBuilder
}

// String never prints the key.
func (p *PreparedSet) String() string {
	return fmt.Sprintf("psi.PreparedSet{kind=%v suite=%v size=%d}", p.kind, p.key.suite, len(p.tags))
}

// Format never prints the key.
func (p *PreparedSet) Format(f fmt.State, _ rune) { io.WriteString(f, p.String()) }

// Size returns the padded size of the set, the N of SPEC.md §4.5.
func (p *PreparedSet) Size() int { return len(p.tags) }

// Kind returns the identifier kind of the set.
func (p *PreparedSet) Kind() Kind { return p.kind }

// Suite returns the ciphersuite the set is encoded in.
func (p *PreparedSet) Suite() Suite { return p.key.suite }

type setBuilder struct {
	kind    Kind // the kind of the digests in batch
	workers int
	batch   [][32]byte
	spare   [][32]byte    // the other buffer, while a batch is in flight
	done    chan struct{} // closed when the batch in flight is encoded; nil if none
	err     error         // the first encoding error, set before done is closed
}

// setBatch is how many identifiers NewSet buffers before it hashes and
// multiplies them in parallel.
const setBatch = 1 << 13

// NewSet starts a single-use encoding of a server set of identifiers of
// cfg.Kind under a fresh key and salt. Add the identifiers' digests
// (SPEC.md §3.1) with Add, then call Finish.
func NewSet(cfg SetConfig) (*PreparedSet, error) {
	if _, err := hasher(cfg.Kind); err != nil {
		return nil, err
	}
	if !suiteKnown(cfg.Suite) {
		return nil, fmt.Errorf("%w: unknown ciphersuite %d", ErrParams, uint8(cfg.Suite))
	}
	r := entropy(cfg.rand)
	key, err := newKey(cfg.Suite, r, false)
	if err != nil {
		return nil, fmt.Errorf("psi: generating the server key: %w", err)
	}
	p := &PreparedSet{kind: cfg.Kind, key: key, rand: r,
		build: &setBuilder{kind: cfg.Kind, workers: workerCount(cfg.Workers)}}
	if _, err := io.ReadFull(r, p.salt[:]); err != nil {
		return nil, fmt.Errorf("psi: generating the tag salt: %w", err)
	}
	return p, nil
}

// Add adds one identifier digest to the set. Duplicates are dropped. Full
// batches are encoded in the background while the caller goes on adding, so
// reading the set from a store overlaps with hashing it.
func (p *PreparedSet) Add(digest [32]byte) {
	b := p.build
	if b == nil {
		panic("psi: PreparedSet.Add after Finish")
	}
	b.batch = append(b.batch, digest)
	if len(b.batch) == setBatch {
		p.startFlush()
	}
}

// wait waits for the batch in flight, if any.
func (b *setBuilder) wait() {
	if b.done != nil {
		<-b.done
		b.done = nil
	}
}

// startFlush starts encoding the current batch in the background and
// switches Add to the other buffer.
func (p *PreparedSet) startFlush() {
	b := p.build
	b.wait() // p.tags may grow only while no flush writes into it
	batch := b.batch
	start := len(p.tags)
	p.tags = slices.Grow(p.tags, len(batch))[:start+len(batch)]
	done := make(chan struct{})
	b.done = done
	kind := b.kind // AddOf may switch kinds while this batch is encoded
	go func() {
		defer close(done)
		p.encode(b, kind, batch, p.tags[start:start+len(batch)])
	}()
	b.batch, b.spare = b.spare[:0], batch
}

// encode hashes, multiplies and tags digests into tags.
func (p *PreparedSet) encode(b *setBuilder, kind Kind, digests [][32]byte, tags []gcs.Uint128) {
	err := parallel(len(digests), b.workers, func(lo, hi int) error {
		var pts points
		enc := make([]byte, 32*(hi-lo))
		if err := p.key.hashOwn(kind, digests[lo:hi], &pts, enc, true); err != nil {
			return err
		}
		for i := lo; i < hi; i++ {
			tags[i] = tagOf(&p.salt, enc[32*(i-lo):32*(i-lo+1)])
		}
		return nil
	})
	if err != nil {
		b.err = err
	}
}

// Finish completes the set: it sorts the tags, drops duplicates and pads the
// set with uniformly random tags up to its bucket (SPEC.md §4.5).
func (p *PreparedSet) Finish() error {
	if p.build == nil {
		return fmt.Errorf("%w: Finish called twice", ErrState)
	}
	p.startFlush()
	p.build.wait()
	err := p.build.err
	p.build = nil
	if err != nil {
		return fmt.Errorf("psi: encoding the server set: %w", err)
	}
	slices.SortFunc(p.tags, gcs.Uint128.Cmp)
	p.tags = slices.Compact(p.tags)
	p.real = len(p.tags)
	pad := int(Bucket(uint64(len(p.tags)))) - len(p.tags)
	if pad > 0 {
		buf := make([]byte, 16*pad)
		if _, err := io.ReadFull(p.rand, buf); err != nil {
			return fmt.Errorf("psi: generating padding: %w", err)
		}
		for i := range pad {
			p.tags = append(p.tags, gcs.Uint128{
				Hi: binary.BigEndian.Uint64(buf[16*i:]),
				Lo: binary.BigEndian.Uint64(buf[16*i+8:]),
			})
		}
		slices.SortFunc(p.tags, gcs.Uint128.Cmp)
	}
	return nil
}

// Destroy erases the set's key and drops its tags. A destroyed set cannot
// serve a session. Destroying a set before Finish waits for the batch being
// encoded in the background, if any.
func (p *PreparedSet) Destroy() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.build != nil {
		p.build.wait()
		p.build = nil
	}
	p.used = true
	p.key.erase()
	p.tags = nil
}

// claim marks the set used, once.
func (p *PreparedSet) claim() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used {
		return fmt.Errorf("%w: the prepared server set already served a session", ErrUsed)
	}
	if p.build != nil {
		return fmt.Errorf("%w: the prepared server set is not finished", ErrState)
	}
	p.used = true
	return nil
}

// ServerConfig is the server's policy for one session.
type ServerConfig struct {
	CanonVersion  uint16  // canonicalization version the server's set uses
	CanonFlags    uint16  // optional canonicalization rules the set uses
	MinClientSize uint32  // smallest client list accepted (SPEC.md §8.3)
	MaxClientSize uint32  // largest client list accepted
	FalsePositive float64 // expected false matches per session; 0 means DefaultFalsePositive
	ChunkSize     int     // elements per element chunk; 0 means DefaultChunkSize
	Workers       int     // scalar-multiplication workers; 0 means GOMAXPROCS

	rand io.Reader
}

type serverState int

const (
	serverAwaitHello serverState = iota
	serverAwaitBlinded
	serverSendEvaluated
	serverSendSet
	serverDone
	serverFailed
)

// Server is the platform's side of one exact-mode session (SPEC.md §4). It
// serves exactly one request and then erases its key. It is not safe for
// concurrent use.
type Server struct {
	cfg     ServerConfig
	set     *PreparedSet
	state   serverState
	params  wire.ServerParams
	gcsp    gcs.Params
	n       int    // announced client size
	got     int    // elements received
	seq     uint32 // next chunk sequence number, in or out
	out     []byte // evaluated elements, n·32 bytes
	sent    int    // evaluated elements sent
	setPos  int    // tags encoded
	enc     *gcs.Encoder
	encOut  []byte // the chunk the encoder emitted last
	workers int
	rec     *recordsLayout // a record session's (SPEC.md §13.4); nil otherwise
}

// String never prints keys.
func (s *Server) String() string { return fmt.Sprintf("psi.Server{state=%d}", s.state) }

// Format never prints keys.
func (s *Server) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// NewServer starts a session that will use set, which it claims: a set
// serves one session only.
func NewServer(cfg ServerConfig, set *PreparedSet) (*Server, error) {
	if cfg.FalsePositive == 0 {
		cfg.FalsePositive = DefaultFalsePositive
	}
	if err := serverDefaults(&cfg.ChunkSize, &cfg.MaxClientSize); err != nil {
		return nil, err
	}
	if err := set.claim(); err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, set: set, workers: workerCount(cfg.Workers)}, nil
}

func (s *Server) fail(err error) error {
	s.state = serverFailed
	s.set.Destroy()
	s.out = nil
	return err
}

// ReceiveHello checks the client's hello against the policy (SPEC.md §4.1)
// before any scalar multiplication and returns the session parameters.
func (s *Server) ReceiveHello(h *wire.ClientHello) (*wire.ServerParams, error) {
	if s.state != serverAwaitHello {
		return nil, fmt.Errorf("%w: hello received twice", ErrState)
	}
	limits := HelloLimits{Mode: wire.ModeExact, Kind: s.set.kind, CanonVersion: s.cfg.CanonVersion, CanonFlags: s.cfg.CanonFlags,
		MinClientSize: s.cfg.MinClientSize, MaxClientSize: s.cfg.MaxClientSize}
	if err := limits.Check(h); err != nil {
		return nil, s.fail(err)
	}
	if err := checkSuite(h.Suites, s.set.key.suite); err != nil {
		return nil, s.fail(err)
	}
	return s.open(wire.ModeExact, h.Kind, h.ClientSize, int(h.ClientSize))
}

// open chooses the session's parameters once its hello passed the checks:
// mode and kind are echoed with the announced client size, and the server
// expects elements blinded elements (SPEC.md §4.1, §13.3).
func (s *Server) open(mode wire.Mode, kind Kind, announced uint32, elements int) (*wire.ServerParams, error) {
	gp, err := gcs.ChooseParams(uint64(len(s.set.tags)), uint64(elements), s.cfg.FalsePositive)
	if err != nil {
		return nil, s.fail(fmt.Errorf("%w: %v", ErrParams, err))
	}
	s.gcsp = gp
	s.n = elements
	p := wire.ServerParams{
		Mode: mode, Kind: kind,
		CanonVersion: s.cfg.CanonVersion, CanonFlags: s.cfg.CanonFlags,
		Salt:       s.set.salt,
		ClientSize: announced, ServerSize: uint32(len(s.set.tags)),
		GCSM: gp.M, GCSK: gp.K, ChunkSize: uint32(s.cfg.ChunkSize),
		Suite: wireSuite(s.set.key.suite),
	}
	if _, err := io.ReadFull(entropy(s.cfg.rand), p.SessionID[:]); err != nil {
		return nil, s.fail(fmt.Errorf("psi: generating a session id: %w", err))
	}
	s.params = p
	s.out = make([]byte, 0, s.n*elemSize)
	s.state = serverAwaitBlinded
	return &p, nil
}

// ReceiveBlinded evaluates one chunk of the client's blinded elements. Every
// element must be the canonical encoding of a non-identity element (SPEC.md
// §5.7); one bad element fails the whole session and nothing evaluated is
// ever sent. After the last chunk it checks for duplicates across the whole
// request and shuffles the result.
func (s *Server) ReceiveBlinded(c *wire.ElementChunk) error {
	if s.state != serverAwaitBlinded {
		return fmt.Errorf("%w: blinded chunk not expected now", ErrState)
	}
	switch {
	case c.Type != wire.TypeBlinded:
		return s.fail(fmt.Errorf("%w: got %v, want a blinded chunk", ErrPeer, c.Type))
	case c.Seq != s.seq:
		return s.fail(fmt.Errorf("%w: blinded chunk %d arrived, want %d", ErrPeer, c.Seq, s.seq))
	case c.Count() > s.cfg.ChunkSize:
		return s.fail(fmt.Errorf("%w: chunk of %d elements exceeds the agreed %d", ErrPeer, c.Count(), s.cfg.ChunkSize))
	case s.got+c.Count() > s.n:
		return s.fail(fmt.Errorf("%w: client sent more than the %d elements it announced", ErrPeer, s.n))
	}
	start := len(s.out)
	s.out = s.out[:start+len(c.Elements)]
	err := parallel(c.Count(), s.workers, func(lo, hi int) error {
		i, err := s.set.key.multPeers(lo, hi, c.Element, func(i int, enc *[32]byte) {
			copy(s.out[start+i*elemSize:], enc[:])
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
	// The whole request is in: the key is no longer needed.
	s.set.key.erase()
	// Equal products are a repeated element, or in suite 2 one element
	// under several torsion variants (SPEC.md §12.6): refused either way.
	if i, ok := findDuplicate(s.out); ok {
		return s.fail(fmt.Errorf("%w: blinded element %d is a duplicate", ErrPeer, i))
	}
	var tmp [elemSize]byte
	if s.rec != nil {
		err = permuteRecords(entropy(s.cfg.rand), s.out, s.rec.slots)
	} else {
		err = shuffle(entropy(s.cfg.rand), s.n, func(i, j int) {
			a := s.out[i*elemSize : (i+1)*elemSize]
			b := s.out[j*elemSize : (j+1)*elemSize]
			copy(tmp[:], a)
			copy(a, b)
			copy(b, tmp[:])
		})
	}
	if err != nil {
		return s.fail(fmt.Errorf("psi: shuffling: %w", err))
	}
	s.seq = 0
	s.state = serverSendEvaluated
	return nil
}

// decodePeer decodes a peer's element and refuses the identity.
func decodePeer(e *s1Elem, b []byte) error {
	if _, err := e.SetCanonicalBytes(b); err != nil {
		return fmt.Errorf("not a canonical ristretto255 encoding")
	}
	if e.IsIdentity() {
		return fmt.Errorf("is the identity element")
	}
	return nil
}

// findDuplicate reports the index of an element of elems (32-byte
// encodings) that repeats an earlier one. It sorts 8-byte prefixes and
// compares whole encodings only where prefixes collide. The party calling it
// is allowed to see these elements: they are blinded values it received or
// computed.
func findDuplicate(elems []byte) (int, bool) {
	n := len(elems) / elemSize
	type ent struct {
		prefix uint64
		idx    uint32
	}
	ents := make([]ent, n)
	for i := range n {
		ents[i] = ent{binary.BigEndian.Uint64(elems[i*elemSize:]), uint32(i)}
	}
	slices.SortFunc(ents, func(a, b ent) int { return cmp.Compare(a.prefix, b.prefix) })
	for i := 1; i < n; i++ {
		if ents[i].prefix != ents[i-1].prefix {
			continue
		}
		// Compare every pair inside the run of equal prefixes.
		for j := i - 1; j >= 0 && ents[j].prefix == ents[i].prefix; j-- {
			a, b := int(ents[i].idx), int(ents[j].idx)
			if bytes.Equal(elems[a*elemSize:(a+1)*elemSize], elems[b*elemSize:(b+1)*elemSize]) {
				return max(a, b), true
			}
		}
	}
	return 0, false
}

// NextEvaluated returns the next chunk of evaluated elements, shuffled, or
// ok == false when all have been returned.
func (s *Server) NextEvaluated() (c *wire.ElementChunk, ok bool, err error) {
	if s.state != serverSendEvaluated {
		return nil, false, fmt.Errorf("%w: no evaluated elements to send now", ErrState)
	}
	if s.sent == s.n {
		s.state = serverSendSet
		s.seq = 0
		s.out = nil
		return nil, false, nil
	}
	k := min(s.cfg.ChunkSize, s.n-s.sent)
	c = &wire.ElementChunk{Type: wire.TypeEvaluated, Seq: s.seq,
		Elements: s.out[s.sent*elemSize : (s.sent+k)*elemSize]}
	s.sent += k
	s.seq++
	return c, true, nil
}

// setChunkValues is how many Golomb-coded values one set chunk carries.
const setChunkValues = 1 << 16

// NextSetChunk returns the next chunk of the Golomb-coded server set
// (SPEC.md §6), or ok == false when the set has been sent and the session
// is done.
func (s *Server) NextSetChunk() (c *wire.SetChunk, ok bool, err error) {
	if s.state == serverSendEvaluated && s.sent == s.n {
		s.state, s.seq, s.out = serverSendSet, 0, nil
	}
	if s.state != serverSendSet {
		return nil, false, fmt.Errorf("%w: the server set is sent after the evaluated elements", ErrState)
	}
	tags := s.set.tags
	if s.setPos == len(tags) {
		s.state = serverDone
		s.set.Destroy()
		return nil, false, nil
	}
	f := s.gcsp.F()
	k := min(setChunkValues, len(tags)-s.setPos)
	vals := make([]gcs.Uint128, k)
	for i := range k {
		vals[i] = gcs.Reduce(tags[s.setPos+i], f)
	}
	data, err := s.encodeValues(vals)
	if err != nil {
		return nil, false, s.fail(fmt.Errorf("psi: encoding the server set: %w", err))
	}
	c = &wire.SetChunk{Seq: s.seq, Count: uint32(k), Data: data}
	s.setPos += k
	s.seq++
	return c, true, nil
}

// Done reports whether the session completed.
func (s *Server) Done() bool { return s.state == serverDone }

// Close ends the session and erases its key and set, whatever its state.
func (s *Server) Close() {
	if s.state != serverDone {
		s.state = serverFailed
	}
	s.set.Destroy()
	s.out = nil
}

// encodeValues Golomb-codes one chunk of sorted values, continuing the gaps
// of the previous chunk.
func (s *Server) encodeValues(vals []gcs.Uint128) ([]byte, error) {
	if s.enc == nil {
		enc, err := gcs.NewEncoder(s.gcsp, setChunkValues, func(_ int, data []byte) error {
			s.encOut = append(s.encOut, data...)
			return nil
		})
		if err != nil {
			return nil, err
		}
		s.enc = enc
	}
	s.encOut = nil
	for _, v := range vals {
		if err := s.enc.Add(v); err != nil {
			return nil, err
		}
	}
	if err := s.enc.Flush(); err != nil {
		return nil, err
	}
	return s.encOut, nil
}
