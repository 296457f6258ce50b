package psi

// Private mode (SPEC.md §10), where the server counts and releases only a
// differentially private, thresholded count:
//
//	Client (list X, key a)                     Server (set Y, key b, ringer keys r_j)
//	ClientHello{mode 2, kind, |X|}   ───────▶
//	                                 ◀───────  PrivateParams{session, N, C, mechanism, ε, Δ, T}
//	                                 ◀───────  ServerElementChunk…  H(y)^b, y ∈ Y, and
//	                                                                B^(r_j) ringers, shuffled
//	raise each to a, shuffle
//	ClientKey{A = B^a}               ───────▶
//	BlindedChunk…  H(x)^a, shuffled  ───────▶  raise each to b
//	ReturnedChunk… e^a, shuffled     ───────▶  every ringer back as A^(r_j)? count
//	                                 ◀───────  PrivateRelease{noised count or "below T", 95% interval}
//
// The client learns the release and N; the server learns |X| and the exact
// overlap. A client that does not raise every server element to one
// exponent is caught by the ringers with the probability SPEC.md §10.10.2
// gives; the release holds against a client that deviates in any other way.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/overlap-psi/overlap/psi/dp"
	"github.com/overlap-psi/overlap/psi/wire"
)

// Private-mode defaults (SPEC.md §10).
const (
	// DefaultRingers is the least number of ringers a private-mode server
	// set carries (SPEC.md §10.3).
	DefaultRingers = 1000
	// DefaultThreshold is the release threshold T (SPEC.md §10.6).
	DefaultThreshold = 100
	// DefaultPrivateMaxServerSize is the largest N a private-mode client
	// accepts by default: its work and memory (32 bytes per element) grow
	// with N (SPEC.md §10.11).
	DefaultPrivateMaxServerSize = 1 << 25
)

// ErrDeviation reports a private-mode client caught by the ringer check
// (SPEC.md §10.5): it did not raise every server element to the exponent of
// its key. The session is over, nothing is released, and the service audits
// it as a deviation and keeps its budget spent. An error that wraps
// ErrDeviation also wraps ErrPeer.
var ErrDeviation = errors.New("psi: the client deviated from the protocol")

// PrivateResult is what the client learns from a private-mode session
// (SPEC.md §10.6). When the noised count is below the threshold, Below is
// true and the result carries nothing about the count beyond that: Count is
// 0 and the interval depends on public parameters only, so two such results
// of one mechanism and list size are equal but for their session ids.
type PrivateResult struct {
	SessionID  [16]byte
	ClientSize int          // distinct identifiers the client sent, n; records, in a record session
	Slots      int          // s, the elements per record of a record session; 0 otherwise
	ServerSize int          // elements the server sent, ringers included, N
	Mechanism  dp.Mechanism // the noise and its parameters
	Threshold  int          // T
	Below      bool         // the noised count was below T
	Count      int          // the noised count, in [T, n]; 0 when Below
	Low, High  int          // the 95% interval for the true overlap
}

// String describes the result as an advertiser would read it.
func (r PrivateResult) String() string {
	if r.Below {
		return fmt.Sprintf("under %d (95%% interval %d–%d; %v)", r.Threshold, r.Low, r.High, r.Mechanism)
	}
	return fmt.Sprintf("%d (95%% interval %d–%d; %v)", r.Count, r.Low, r.High, r.Mechanism)
}

// PrivateSetConfig configures the encoding of a server set for one
// private-mode session.
type PrivateSetConfig struct {
	Kind    Kind
	Suite   Suite // ciphersuite (SPEC.md §12.1); zero means suite 1
	Ringers int   // least number of ringers R (SPEC.md §10.3); 0 means DefaultRingers
	// Epoch makes the set for an epoch setup (SPEC.md §10.12.1): the
	// least number of ringers is then EpochRingersFor(|Y|, EpochDelta),
	// and Ringers is ignored.
	Epoch bool
	// EpochDelta is the bound on δ_E of an epoch set; 0 means the
	// protocol's EpochDelta (10^-6).
	EpochDelta float64
	Workers    int // scalar-multiplication workers; 0 means GOMAXPROCS

	rand         io.Reader     // nil means crypto/rand; set only by tests
	size         func(int) int // N for |Y| + R elements; nil means Bucket; set only by tests
	blockShift   uint          // log2 of the elements per storage block; 0 means the default; set only by tests
	epochRingers func(int) int // R for an epoch set of |Y| elements; nil means EpochRingers; set only by tests
}

// A PrivateSet is the server's set encoded for exactly one private-mode
// session (SPEC.md §10.3): every identifier hashed to the group and raised
// to a fresh key b, padded with ringers B^(r_j) for fresh r_j to N =
// Bucket(|Y| + R) elements, and shuffled. It holds b and the r_j until the
// session has used them. NewPrivateServer refuses a used set.
type PrivateSet struct {
	kind    Kind
	kinds   KindSet       // a record session's set: the union of these kinds' sets (SPEC.md §13.5); 0 otherwise
	perSub  uint32        // Δ_K of a record session's set: the cap its caller applied to each kind
	key     *gkey         // b
	ringers []*gkey       // r_j
	salt    [32]byte      // secret salt of the server's internal tags
	elems   *elemBlocks   // Enc(H(y)^b), then all N elements, shuffled
	real    int           // distinct identifiers
	min     int           // R
	epoch   func(int) int // R as a function of |Y| for an epoch set; nil otherwise
	size    func(int) int
	mu      sync.Mutex
	used    bool
	rand    io.Reader
	build   *setBuilder
}

// String never prints keys.
func (p *PrivateSet) String() string {
	return fmt.Sprintf("psi.PrivateSet{kind=%v suite=%v size=%d}", p.kind, p.key.suite, p.elems.Len())
}

// Format never prints keys.
func (p *PrivateSet) Format(f fmt.State, _ rune) { io.WriteString(f, p.String()) }

// Size returns N, the number of elements the set sends, ringers included.
// It is 0 before Finish.
func (p *PrivateSet) Size() int {
	if p.build != nil {
		return 0
	}
	return p.elems.Len()
}

// Kind returns the identifier kind of the set.
func (p *PrivateSet) Kind() Kind { return p.kind }

// Suite returns the ciphersuite the set is encoded in.
func (p *PrivateSet) Suite() Suite { return p.key.suite }

// NewPrivateSet starts a single-use private-mode encoding of a server set
// of identifiers of cfg.Kind under a fresh key. Add the identifiers'
// digests (SPEC.md §3.1) with Add, then call Finish.
func NewPrivateSet(cfg PrivateSetConfig) (*PrivateSet, error) {
	if _, err := hasher(cfg.Kind); err != nil {
		return nil, err
	}
	if !suiteKnown(cfg.Suite) {
		return nil, fmt.Errorf("%w: unknown ciphersuite %d", ErrParams, uint8(cfg.Suite))
	}
	if cfg.Ringers == 0 {
		cfg.Ringers = DefaultRingers
	}
	if cfg.Ringers < 1 || cfg.Ringers > wire.MaxSetSize/2 {
		return nil, fmt.Errorf("psi: %d ringers is outside [1, %d]", cfg.Ringers, wire.MaxSetSize/2)
	}
	if cfg.size == nil {
		cfg.size = func(n int) int { return int(Bucket(uint64(n))) }
	}
	r := entropy(cfg.rand)
	key, err := newKey(cfg.Suite, r, false)
	if err != nil {
		return nil, fmt.Errorf("psi: generating the server key: %w", err)
	}
	if cfg.Epoch && cfg.epochRingers == nil {
		delta := cfg.EpochDelta
		if delta == 0 {
			delta = EpochDelta
		}
		if !(delta > 0 && delta < 1) {
			return nil, fmt.Errorf("psi: an epoch set's δ bound %g is outside (0, 1)", delta)
		}
		cfg.epochRingers = func(y int) int { return EpochRingersFor(y, delta) }
	}
	if !cfg.Epoch {
		cfg.epochRingers = nil
	}
	p := &PrivateSet{kind: cfg.Kind, key: key, min: cfg.Ringers, epoch: cfg.epochRingers, size: cfg.size, rand: r,
		elems: newElemBlocks(cfg.blockShift),
		build: &setBuilder{kind: cfg.Kind, workers: workerCount(cfg.Workers)}}
	if _, err := io.ReadFull(r, p.salt[:]); err != nil {
		return nil, fmt.Errorf("psi: generating the tag salt: %w", err)
	}
	return p, nil
}

// Add adds one identifier digest to the set. Duplicates are dropped.
func (p *PrivateSet) Add(digest [32]byte) {
	b := p.build
	if b == nil {
		panic("psi: PrivateSet.Add after Finish")
	}
	b.batch = append(b.batch, digest)
	if len(b.batch) == setBatch {
		p.flush()
	}
}

func (p *PrivateSet) flush() {
	b := p.build
	start := p.elems.Len()
	p.elems.extend(len(b.batch))
	err := parallel(len(b.batch), b.workers, func(lo, hi int) error {
		var pts points
		enc := make([]byte, elemSize*(hi-lo))
		if err := p.key.hashOwn(b.kind, b.batch[lo:hi], &pts, enc, false); err != nil {
			return err
		}
		for i := lo; i < hi; i++ {
			copy(p.elems.at(start + i)[:], enc[elemSize*(i-lo):])
		}
		return nil
	})
	if err != nil && b.err == nil {
		b.err = err
	}
	b.batch = b.batch[:0]
}

func compareElems(a, b [32]byte) int {
	if x, y := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8]); x != y {
		if x < y {
			return -1
		}
		return 1
	}
	return bytes.Compare(a[8:], b[8:])
}

// Finish completes the set: it drops duplicate identifiers, adds the
// ringers (at least R, up to the bucket of SPEC.md §10.3) and shuffles all
// N elements.
func (p *PrivateSet) Finish() error {
	if p.build == nil {
		return fmt.Errorf("%w: Finish called twice", ErrState)
	}
	p.flush()
	workers, err := p.build.workers, p.build.err
	p.build = nil
	if err != nil {
		return fmt.Errorf("psi: encoding the server set: %w", err)
	}
	p.elems.sortCompact()
	p.real = p.elems.Len()
	if p.epoch != nil {
		p.min = p.epoch(p.real)
	}
	n := p.size(p.real + p.min)
	if n > wire.MaxSetSize {
		return fmt.Errorf("psi: a private-mode set of %d elements exceeds the protocol's %d", n, wire.MaxSetSize)
	}
	k := n - p.real
	// The ringer keys come from ChaCha8 keyed with 32 bytes of the
	// session's entropy, as the shuffle does (SPEC.md §4.3): one read of
	// the system generator instead of one per ringer.
	rng, wipe, err := seeded(p.rand)
	if err != nil {
		return fmt.Errorf("psi: generating ringer keys: %w", err)
	}
	defer wipe()
	p.ringers = make([]*gkey, k)
	for j := range p.ringers {
		if p.ringers[j], err = newKey(p.key.suite, rng, false); err != nil {
			return fmt.Errorf("psi: generating ringer keys: %w", err)
		}
	}
	ringers := make([][32]byte, k)
	parallel(k, workers, func(lo, hi int) error {
		baseMults(p.ringers[lo:hi], ringers[lo:hi])
		return nil
	})
	// The N elements must be distinct (SPEC.md §10.3). A collision has
	// probability below N²/ℓ ≈ 2^-192; refuse rather than redraw.
	sorted := slices.Clone(ringers)
	slices.SortFunc(sorted, compareElems)
	for j, e := range sorted {
		if p.elems.search(p.real, e) || (j > 0 && sorted[j-1] == e) {
			return fmt.Errorf("psi: a ringer collides with another element; prepare the set again")
		}
	}
	p.elems.extend(k)
	for j := range ringers {
		*p.elems.at(p.real + j) = ringers[j]
	}
	return shuffle(p.rand, p.elems.Len(), p.elems.Swap)
}

// nextChunk returns the set's elements from sent on, at most size of them,
// as the server-element chunk numbered seq, and drops what was sent: memory
// falls as the set goes out.
func (p *PrivateSet) nextChunk(sent, size int, seq uint32) *wire.ElementChunk {
	k := min(size, p.elems.Len()-sent)
	buf := make([]byte, 0, k*elemSize)
	for i := sent; i < sent+k; i++ {
		buf = append(buf, p.elems.at(i)[:]...)
	}
	p.elems.release(sent + k)
	return &wire.ElementChunk{Type: wire.TypeServerElements, Seq: seq, Elements: buf}
}

// ringerImages computes the encoding of A^(r_j) for every ringer key and
// passes it to fn (from several goroutines, one j each), then erases the
// ringer keys (SPEC.md §10.5 step 1, §10.12.1 step 5).
func (p *PrivateSet) ringerImages(a *peerElem, workers int, fn func(j int, enc []byte)) error {
	ringers := p.ringers
	err := parallel(len(ringers), workers, func(lo, hi int) error {
		enc := make([][elemSize]byte, hi-lo)
		if err := multDecodedKeys(ringers[lo:hi], a, enc); err != nil {
			return err
		}
		for j := lo; j < hi; j++ {
			fn(j, enc[j-lo][:])
		}
		return nil
	})
	for j := range ringers {
		ringers[j].erase()
	}
	p.ringers = nil
	return err
}

// Destroy erases the set's keys and drops its elements. A destroyed set
// cannot serve a session.
func (p *PrivateSet) Destroy() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.used = true
	p.eraseKeys()
	p.elems = newElemBlocks(p.elems.shift)
}

func (p *PrivateSet) eraseKeys() {
	p.key.erase()
	for j := range p.ringers {
		p.ringers[j].erase()
	}
	p.ringers = nil
}

// claim marks the set used, once.
func (p *PrivateSet) claim() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used {
		return fmt.Errorf("%w: the private-mode server set already served a session", ErrUsed)
	}
	if p.build != nil {
		return fmt.Errorf("%w: the private-mode server set is not finished", ErrState)
	}
	p.used = true
	return nil
}
