package psi

import (
	"fmt"
	"io"
	"time"

	"github.com/overlap-psi/overlap/psi/dp"
	"github.com/overlap-psi/overlap/psi/wire"
)

// PrivateClientConfig configures the advertiser's side of a private-mode
// session.
type PrivateClientConfig struct {
	Kind          Kind
	CanonVersion  uint16 // canonicalization version of the client's list
	CanonFlags    uint16 // optional canonicalization rules applied
	MaxServerSize uint32 // largest N accepted; 0 means DefaultPrivateMaxServerSize
	Workers       int    // scalar-multiplication workers; 0 means GOMAXPROCS
	// Suites are the ciphersuites the client offers (SPEC.md §12.1); the
	// server chooses. Empty offers suite 1 only. An epoch session offers
	// its epoch's suite and ignores this.
	Suites []Suite

	rand io.Reader // nil means crypto/rand; set only by tests
}

type privClientState int

const (
	privClientAwaitParams privClientState = iota
	privClientAwaitElements
	privClientSendKey
	privClientSendBlinded
	privClientSendReturned
	privClientAwaitRelease
	privClientDone
	privClientFailed
)

// PrivateClient is the advertiser's side of one private-mode session
// (SPEC.md §10). Its work and memory grow with the server's set: it raises
// each of the server's N elements to its key and holds the N results
// (32 bytes each) to shuffle them before sending. It is not safe for
// concurrent use.
type PrivateClient struct {
	cfg      PrivateClientConfig
	state    privClientState
	offer    wire.SuiteSet
	key      *gkey      // a, drawn once the server has chosen the suite
	items    [][32]byte // distinct digests, shuffled
	params   wire.PrivateParams
	mech     dp.Mechanism
	chunk    int
	seq      uint32
	got      int    // server elements received
	out      []byte // the server's elements raised to a, N·32 bytes
	sent     int    // blinded identifiers sent
	returned int    // returned elements sent
	points   points
	workers  int
	timings  PrivateClientTimings
	epoch    *EpochKey // an epoch session's epoch (SPEC.md §10.12.2); nil in mode 2

	// A record session's (SPEC.md §13.5); nil otherwise.
	rec       *recordsLayout
	slotKinds []Kind // each item's kind, 0 for a dummy
}

// PrivateClientTimings is the wall time a private-mode client spent in
// each step of SPEC.md §10.4, for benchmarks.
type PrivateClientTimings struct {
	Raise   time.Duration // checking the server's elements and raising them to a
	Shuffle time.Duration // the duplicate check and shuffle of the results
	Hash    time.Duration // hashing the client's identifiers to the group
	Blind   time.Duration // raising them to a and encoding
}

// Timings returns the time spent so far in each step.
func (c *PrivateClient) Timings() PrivateClientTimings { return c.timings }

// String never prints keys.
func (c *PrivateClient) String() string { return fmt.Sprintf("psi.PrivateClient{state=%d}", c.state) }

// Format never prints keys.
func (c *PrivateClient) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// NewPrivateClient starts a private-mode session over the digests of the
// client's identifiers (SPEC.md §3.1). Duplicate digests are sent once, and
// the list is sent in a random order (SPEC.md §10.4).
func NewPrivateClient(cfg PrivateClientConfig, digests [][32]byte) (*PrivateClient, error) {
	if _, err := hasher(cfg.Kind); err != nil {
		return nil, err
	}
	offer, err := offerSet(cfg.Suites)
	if err != nil {
		return nil, err
	}
	if cfg.MaxServerSize == 0 {
		cfg.MaxServerSize = DefaultPrivateMaxServerSize
	}
	cfg.MaxServerSize = min(cfg.MaxServerSize, wire.MaxSetSize)
	items := dedupe(digests)
	if len(items) == 0 {
		return nil, fmt.Errorf("psi: the client list is empty")
	}
	if len(items) > wire.MaxClientSize {
		return nil, fmt.Errorf("psi: the client list has %d identifiers, more than the protocol's %d", len(items), wire.MaxClientSize)
	}
	r := entropy(cfg.rand)
	if err := shuffle(r, len(items), func(i, j int) { items[i], items[j] = items[j], items[i] }); err != nil {
		return nil, fmt.Errorf("psi: shuffling the list: %w", err)
	}
	return &PrivateClient{cfg: cfg, offer: offer, items: items, workers: workerCount(cfg.Workers)}, nil
}

// Size returns the number of distinct identifiers the client will send.
func (c *PrivateClient) Size() int { return len(c.items) }

// Progress reports the elements processed so far and in all: the server's
// N elements raised, then the client's n identifiers blinded.
func (c *PrivateClient) Progress() (done, total int) {
	return c.got + c.sent, int(c.params.ServerSize) + len(c.items)
}

// Hello returns the message that opens the session.
func (c *PrivateClient) Hello() *wire.ClientHello {
	return &wire.ClientHello{Mode: c.mode(), Kind: c.cfg.Kind,
		CanonVersion: c.cfg.CanonVersion, CanonFlags: c.cfg.CanonFlags,
		ClientSize: uint32(len(c.items)), Suites: c.offer}
}

// mode is the session's mode: private, or an epoch session.
func (c *PrivateClient) mode() wire.Mode {
	if c.epoch != nil {
		return wire.ModeEpochSession
	}
	if c.rec != nil {
		return wire.ModePrivateRecords
	}
	return wire.ModePrivate
}

func (c *PrivateClient) fail(err error) error {
	c.state = privClientFailed
	c.erase()
	return err
}

func (c *PrivateClient) erase() {
	c.key.erase()
	c.out = nil
}

// Close erases the client's key whatever the session's state.
func (c *PrivateClient) Close() {
	if c.state != privClientDone {
		c.state = privClientFailed
	}
	c.erase()
}

// ReceiveParams checks the server's parameters (SPEC.md §10.2): they must
// echo the hello, N must be within this client's limit, and the mechanism
// must be one it knows, with valid parameters.
func (c *PrivateClient) ReceiveParams(p *wire.PrivateParams) error {
	if c.state != privClientAwaitParams {
		return fmt.Errorf("%w: parameters received twice", ErrState)
	}
	switch {
	case p.Mode != c.mode():
		return c.fail(fmt.Errorf("%w: server chose mode %v, client asked for %v", ErrParams, p.Mode, c.mode()))
	case c.epoch != nil && p.ServerSize != c.epoch.ServerSize:
		return c.fail(fmt.Errorf("%w: server announced N = %d, the epoch's is %d", ErrParams, p.ServerSize, c.epoch.ServerSize))
	case p.Kind != c.kindField():
		return c.fail(fmt.Errorf("%w: server answered for kind %v, client asked for %v", ErrParams, p.Kind, c.kindField()))
	case p.CanonVersion != c.cfg.CanonVersion || p.CanonFlags != c.cfg.CanonFlags:
		return c.fail(fmt.Errorf("%w: server uses canonicalization v%d flags %#x, client v%d flags %#x",
			ErrParams, p.CanonVersion, p.CanonFlags, c.cfg.CanonVersion, c.cfg.CanonFlags))
	case int(p.ClientSize) != c.announced():
		return c.fail(fmt.Errorf("%w: server echoed a client size of %d, client has %d", ErrParams, p.ClientSize, c.announced()))
	case c.rec != nil && p.Sensitivity < uint32(c.rec.kinds.Len()):
		// Δ_P = Σ_K Δ_K is at least one per kind (SPEC.md §13.5, §13.7).
		return c.fail(fmt.Errorf("%w: sensitivity %d is below the %d kinds of a record session", ErrParams, p.Sensitivity, c.rec.kinds.Len()))
	case c.epoch == nil && (p.ServerSize == 0 || p.ServerSize > c.cfg.MaxServerSize):
		// An epoch session's N is the epoch's (checked above), which its
		// setup accepted under the setup's limit; nothing of size N comes.
		return c.fail(fmt.Errorf("%w: server set of %d elements is outside the client's limit of %d", ErrParams, p.ServerSize, c.cfg.MaxServerSize))
	case p.ChunkSize == 0 || p.ChunkSize > wire.MaxChunkElements:
		return c.fail(fmt.Errorf("%w: chunk size %d", ErrParams, p.ChunkSize))
	case p.Threshold == 0:
		return c.fail(fmt.Errorf("%w: threshold 0", ErrParams))
	}
	m, err := dp.FromWire(p.Mechanism, p.EpsNum, p.EpsDen, p.Sensitivity)
	if err != nil {
		return c.fail(fmt.Errorf("%w: %v", ErrParams, err))
	}
	if err := checkChosen(c.offer, p.Suite); err != nil {
		return c.fail(err)
	}
	c.params, c.mech, c.chunk = *p, m, int(p.ChunkSize)
	if c.epoch != nil {
		// An epoch session sends the list only (SPEC.md §10.12.2), under
		// the epoch's key, set by NewEpochClient.
		c.state = privClientSendBlinded
		return nil
	}
	key, err := newKey(p.Suite, entropy(c.cfg.rand), false)
	if err != nil {
		return c.fail(fmt.Errorf("psi: generating the client key: %w", err))
	}
	c.key = key
	c.out = make([]byte, 0, int(p.ServerSize)*elemSize)
	c.state = privClientAwaitElements
	return nil
}

// ReceiveServerElements checks one chunk of the server's elements (SPEC.md
// §10.4) and raises each to a. After the last chunk it checks that no two
// were equal and shuffles the results.
func (c *PrivateClient) ReceiveServerElements(ch *wire.ElementChunk) error {
	if c.state != privClientAwaitElements {
		return fmt.Errorf("%w: server elements not expected now", ErrState)
	}
	total := int(c.params.ServerSize)
	switch {
	case ch.Type != wire.TypeServerElements:
		return c.fail(fmt.Errorf("%w: got %v, want a server element chunk", ErrPeer, ch.Type))
	case ch.Seq != c.seq:
		return c.fail(fmt.Errorf("%w: server element chunk %d arrived, want %d", ErrPeer, ch.Seq, c.seq))
	case ch.Count() > c.chunk:
		return c.fail(fmt.Errorf("%w: chunk of %d elements exceeds the agreed %d", ErrPeer, ch.Count(), c.chunk))
	case c.got+ch.Count() > total:
		return c.fail(fmt.Errorf("%w: server sent more than the %d elements it announced", ErrPeer, total))
	}
	t0 := time.Now()
	start := len(c.out)
	c.out = c.out[:start+len(ch.Elements)]
	err := parallel(ch.Count(), c.workers, func(lo, hi int) error {
		i, err := c.key.multPeers(lo, hi, ch.Element, func(i int, enc *[32]byte) {
			copy(c.out[start+i*elemSize:], enc[:])
		})
		if err != nil {
			return elemErr("server element", c.got+i, err)
		}
		return nil
	})
	c.timings.Raise += time.Since(t0)
	if err != nil {
		return c.fail(err)
	}
	c.got += ch.Count()
	c.seq++
	if c.got < total {
		return nil
	}
	t1 := time.Now()
	defer func() { c.timings.Shuffle += time.Since(t1) }()
	// Equal results mean equal elements: the server repeated one, and the
	// returned set would repeat it too (SPEC.md §10.4); in suite 2 also one
	// element under several torsion variants (SPEC.md §12.6).
	if i, ok := findDuplicate(c.out); ok {
		return c.fail(fmt.Errorf("%w: server element %d is a duplicate", ErrPeer, i))
	}
	var tmp [elemSize]byte
	err = shuffle(entropy(c.cfg.rand), total, func(i, j int) {
		a := c.out[i*elemSize : (i+1)*elemSize]
		b := c.out[j*elemSize : (j+1)*elemSize]
		copy(tmp[:], a)
		copy(a, b)
		copy(b, tmp[:])
	})
	if err != nil {
		return c.fail(fmt.Errorf("psi: shuffling: %w", err))
	}
	c.seq = 0
	c.state = privClientSendKey
	return nil
}

// ClientKey returns the client's public key A = B^a (SPEC.md §10.7.3),
// once all the server's elements have arrived.
func (c *PrivateClient) ClientKey() (*wire.ClientKey, error) {
	if c.state != privClientSendKey {
		return nil, fmt.Errorf("%w: the client key is sent after all server elements arrived", ErrState)
	}
	k := wire.ClientKey{Key: c.key.baseMult()}
	c.state = privClientSendBlinded
	return &k, nil
}

// NextBlinded hashes and blinds the next chunk of the client's identifiers
// (in the random order of NewPrivateClient), or returns ok == false when
// all have been sent; the key is then erased.
func (c *PrivateClient) NextBlinded() (ch *wire.ElementChunk, ok bool, err error) {
	if c.state != privClientSendBlinded {
		return nil, false, fmt.Errorf("%w: not sending blinded elements now", ErrState)
	}
	if c.sent == len(c.items) {
		c.key.erase()
		c.seq, c.state = 0, privClientSendReturned
		if c.epoch != nil {
			c.state = privClientAwaitRelease
		}
		return nil, false, nil
	}
	k := min(c.chunk, len(c.items)-c.sent)
	buf, err := blindChunk(c.cfg.Kind, kindsOf(c.slotKinds, c.sent, c.sent+k), c.key, c.items[c.sent:c.sent+k], &c.points, c.workers, &c.timings.Hash, &c.timings.Blind)
	if err != nil {
		return nil, false, c.fail(fmt.Errorf("psi: blinding: %w", err))
	}
	ch = &wire.ElementChunk{Type: wire.TypeBlinded, Seq: c.seq, Elements: buf}
	c.sent += k
	c.seq++
	return ch, true, nil
}

// NextReturned returns the next chunk of the server's elements raised to a,
// shuffled, or ok == false when all have been returned.
func (c *PrivateClient) NextReturned() (ch *wire.ElementChunk, ok bool, err error) {
	if c.state == privClientSendBlinded && c.sent == len(c.items) {
		c.key.erase()
		c.seq, c.state = 0, privClientSendReturned
	}
	if c.state != privClientSendReturned {
		return nil, false, fmt.Errorf("%w: not returning elements now", ErrState)
	}
	total := int(c.params.ServerSize)
	if c.returned == total {
		c.out = nil
		c.state = privClientAwaitRelease
		return nil, false, nil
	}
	k := min(c.chunk, total-c.returned)
	ch = &wire.ElementChunk{Type: wire.TypeReturned, Seq: c.seq,
		Elements: c.out[c.returned*elemSize : (c.returned+k)*elemSize]}
	c.returned += k
	c.seq++
	return ch, true, nil
}

// ReceiveRelease checks the server's release (SPEC.md §10.6): it must echo
// the session's parameters, its count must be in range, and its interval
// must be the one the client computes itself.
func (c *PrivateClient) ReceiveRelease(r *wire.PrivateRelease) (PrivateResult, error) {
	if c.state == privClientSendReturned && c.returned == int(c.params.ServerSize) ||
		c.state == privClientSendBlinded && c.epoch != nil && c.sent == len(c.items) {
		c.key.erase()
		c.out, c.state = nil, privClientAwaitRelease
	}
	if c.state != privClientAwaitRelease {
		return PrivateResult{}, fmt.Errorf("%w: release not expected now", ErrState)
	}
	p := &c.params
	switch {
	case r.SessionID != p.SessionID:
		return PrivateResult{}, c.fail(fmt.Errorf("%w: the release is for another session", ErrPeer))
	case r.Mechanism != p.Mechanism || r.EpsNum != p.EpsNum || r.EpsDen != p.EpsDen ||
		r.Sensitivity != p.Sensitivity || r.Threshold != p.Threshold:
		return PrivateResult{}, c.fail(fmt.Errorf("%w: the release's mechanism or threshold differs from the session's", ErrPeer))
	}
	n, t := int64(p.ClientSize), int64(p.Threshold)
	v := int64(r.Count)
	if r.Outcome == wire.OutcomeBelow {
		v = -1 // any value below the threshold
	} else if v < t || v > n {
		return PrivateResult{}, c.fail(fmt.Errorf("%w: released count %d is outside [%d, %d]", ErrPeer, v, t, n))
	}
	lo, hi, count, outcome := expectedInterval(n, t, v, c.mech.HalfWidth95())
	if r.Outcome != outcome || int64(r.Count) != count || int64(r.Low) != lo || int64(r.High) != hi {
		return PrivateResult{}, c.fail(fmt.Errorf("%w: release %d [%d, %d] does not match its mechanism's interval [%d, %d]",
			ErrPeer, r.Count, r.Low, r.High, lo, hi))
	}
	c.state = privClientDone
	c.erase()
	return PrivateResult{
		SessionID: p.SessionID, ClientSize: c.announced(), ServerSize: int(p.ServerSize), Slots: c.slots(),
		Mechanism: c.mech, Threshold: int(t),
		Below: outcome == wire.OutcomeBelow, Count: int(count), Low: int(lo), High: int(hi),
	}, nil
}
