package psi

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/overlap-psi/overlap/psi/gcs"
	"github.com/overlap-psi/overlap/psi/wire"
)

// ClientConfig configures the advertiser's side of a session.
type ClientConfig struct {
	Kind          Kind
	CanonVersion  uint16  // canonicalization version of the client's list
	CanonFlags    uint16  // optional canonicalization rules applied
	FalsePositive float64 // largest expected false matches accepted; 0 means DefaultFalsePositive
	MaxServerSize uint32  // largest padded server set accepted; 0 means wire.MaxSetSize
	Workers       int     // scalar-multiplication workers; 0 means GOMAXPROCS
	// Suites are the ciphersuites the client offers (SPEC.md §12.1); the
	// server chooses. Empty offers suite 1 only.
	Suites []Suite

	rand io.Reader
}

type clientState int

const (
	clientAwaitParams clientState = iota
	clientSendBlinded
	clientAwaitEvaluated
	clientAwaitSet
	clientDone
	clientFailed
)

// Client is the advertiser's side of one exact-mode session (SPEC.md §4).
// It is not safe for concurrent use.
type Client struct {
	cfg     ClientConfig
	state   clientState
	offer   wire.SuiteSet
	key     *gkey      // a and 1/a, drawn once the server has chosen the suite
	items   [][32]byte // distinct digests, in input order
	params  wire.ServerParams
	chunk   int
	seq     uint32
	sent    int
	got     int
	tags    []gcs.Uint128 // tags of H(x)^b, then sorted reduced values
	dec     *gcs.Decoder
	pos     int // merge position in tags
	matches int
	workers int
	points  points // per-chunk scratch
	timings ClientTimings

	// A record session's (SPEC.md §13.4); nil and empty otherwise.
	rec       *recordsLayout
	slotKinds []Kind      // each item's kind, 0 for a dummy
	records   []uint32    // the record of each sorted tag
	hits      *recordHits // records with a tag in the set
}

// ClientTimings is the wall time a client spent in each step of SPEC.md §4,
// for benchmarks.
type ClientTimings struct {
	Hash    time.Duration // hashing identifiers to the group
	Blind   time.Duration // raising them to a and encoding
	Unblind time.Duration // checking, raising evaluated elements to 1/a, tagging
	Count   time.Duration // sorting tags, decoding the server set, counting
}

// Timings returns the time spent so far in each step.
func (c *Client) Timings() ClientTimings { return c.timings }

// Result is what the client learns from an exact-mode session.
type Result struct {
	SessionID     [16]byte
	Overlap       int     // identifiers of the client's list found in the server's set; records, in a record session
	ClientSize    int     // distinct identifiers the client sent; records, in a record session
	Slots         int     // s, the elements per record of a record session; 0 otherwise
	ServerSize    int     // the server's set size, padded to a public bucket
	FalsePositive float64 // bound on the expected number of false matches counted
}

// String never prints keys.
func (c *Client) String() string { return fmt.Sprintf("psi.Client{state=%d}", c.state) }

// Format never prints keys.
func (c *Client) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// NewClient starts a session over the digests of the client's identifiers
// (SPEC.md §3.1). Duplicate digests are sent once.
func NewClient(cfg ClientConfig, digests [][32]byte) (*Client, error) {
	if _, err := hasher(cfg.Kind); err != nil {
		return nil, err
	}
	offer, err := offerSet(cfg.Suites)
	if err != nil {
		return nil, err
	}
	if cfg.FalsePositive == 0 {
		cfg.FalsePositive = DefaultFalsePositive
	}
	if cfg.MaxServerSize == 0 || cfg.MaxServerSize > wire.MaxSetSize {
		cfg.MaxServerSize = wire.MaxSetSize
	}
	items := dedupe(digests)
	if len(items) == 0 {
		return nil, fmt.Errorf("psi: the client list is empty")
	}
	if len(items) > wire.MaxClientSize {
		return nil, fmt.Errorf("psi: the client list has %d identifiers, more than the protocol's %d", len(items), wire.MaxClientSize)
	}
	return &Client{cfg: cfg, offer: offer, items: items, workers: workerCount(cfg.Workers)}, nil
}

// dedupe returns the distinct digests in first-seen order.
func dedupe(in [][32]byte) [][32]byte {
	seen := make(map[[32]byte]struct{}, len(in))
	out := make([][32]byte, 0, len(in))
	for _, d := range in {
		if _, ok := seen[d]; !ok {
			seen[d] = struct{}{}
			out = append(out, d)
		}
	}
	return out
}

// Size returns the number of distinct identifiers the client will send.
func (c *Client) Size() int { return len(c.items) }

// Hello returns the message that opens the session.
// In a record session it is the identifier-level hello the session does
// not send; see opening.
func (c *Client) Hello() *wire.ClientHello {
	return &wire.ClientHello{Mode: wire.ModeExact, Kind: c.cfg.Kind,
		CanonVersion: c.cfg.CanonVersion, CanonFlags: c.cfg.CanonFlags,
		ClientSize: uint32(len(c.items)), Suites: c.offer}
}

func (c *Client) fail(err error) error {
	c.state = clientFailed
	c.erase()
	return err
}

func (c *Client) erase() {
	c.key.erase()
	c.tags = nil
}

// ReceiveParams checks the server's parameters (SPEC.md §4.1): they must
// echo the hello, and the server set and Golomb parameters must meet this
// client's limits and false-positive bound.
func (c *Client) ReceiveParams(p *wire.ServerParams) error {
	if c.state != clientAwaitParams {
		return fmt.Errorf("%w: parameters received twice", ErrState)
	}
	gp := gcs.Params{N: uint64(p.ServerSize), M: p.GCSM, K: p.GCSK}
	switch {
	case p.Mode != c.mode():
		return c.fail(fmt.Errorf("%w: server chose mode %v, client asked for %v", ErrParams, p.Mode, c.mode()))
	case p.Kind != c.kindField():
		return c.fail(fmt.Errorf("%w: server answered for kind %v, client asked for %v", ErrParams, p.Kind, c.kindField()))
	case p.CanonVersion != c.cfg.CanonVersion || p.CanonFlags != c.cfg.CanonFlags:
		return c.fail(fmt.Errorf("%w: server uses canonicalization v%d flags %#x, client v%d flags %#x",
			ErrParams, p.CanonVersion, p.CanonFlags, c.cfg.CanonVersion, c.cfg.CanonFlags))
	case int(p.ClientSize) != c.announced():
		return c.fail(fmt.Errorf("%w: server echoed a client size of %d, client has %d", ErrParams, p.ClientSize, c.announced()))
	case p.ServerSize > c.cfg.MaxServerSize:
		return c.fail(fmt.Errorf("%w: server set of %d exceeds the client's limit of %d", ErrParams, p.ServerSize, c.cfg.MaxServerSize))
	case p.ChunkSize == 0 || p.ChunkSize > wire.MaxChunkElements:
		return c.fail(fmt.Errorf("%w: chunk size %d", ErrParams, p.ChunkSize))
	}
	if err := gp.Validate(); err != nil {
		return c.fail(fmt.Errorf("%w: %v", ErrParams, err))
	}
	if err := checkChosen(c.offer, p.Suite); err != nil {
		return c.fail(err)
	}
	// Expected false matches: each of the n queries hits with probability
	// at most 1/M (SPEC.md §6.3).
	if fp := float64(len(c.items)) / float64(p.GCSM); fp > c.cfg.FalsePositive {
		return c.fail(fmt.Errorf("%w: server's Golomb range M=%d allows %.3g expected false matches, more than the client's bound %.3g",
			ErrParams, p.GCSM, fp, c.cfg.FalsePositive))
	}
	dec, err := gcs.NewDecoder(gp)
	if err != nil {
		return c.fail(fmt.Errorf("%w: %v", ErrParams, err))
	}
	key, err := newKey(p.Suite, entropy(c.cfg.rand), true)
	if err != nil {
		return c.fail(fmt.Errorf("psi: generating the client key: %w", err))
	}
	c.params, c.dec, c.chunk, c.key = *p, dec, int(p.ChunkSize), key
	c.state = clientSendBlinded
	return nil
}

// NextBlinded hashes and blinds the next chunk of the client's identifiers,
// or returns ok == false when all have been sent.
func (c *Client) NextBlinded() (ch *wire.ElementChunk, ok bool, err error) {
	if c.state != clientSendBlinded {
		return nil, false, fmt.Errorf("%w: not sending blinded elements now", ErrState)
	}
	if c.sent == len(c.items) {
		c.state, c.seq = clientAwaitEvaluated, 0
		c.tags = make([]gcs.Uint128, 0, len(c.items))
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

// ReceiveEvaluated unblinds one chunk of the server's evaluated elements
// and records their tags. It checks every element as strictly as the
// server does (SPEC.md §5.7), and after the last chunk, that no two were
// equal.
func (c *Client) ReceiveEvaluated(ch *wire.ElementChunk) error {
	if c.state == clientSendBlinded && c.sent == len(c.items) {
		c.state, c.seq = clientAwaitEvaluated, 0
		c.tags = make([]gcs.Uint128, 0, len(c.items))
	}
	if c.state != clientAwaitEvaluated {
		return fmt.Errorf("%w: evaluated chunk not expected now", ErrState)
	}
	n := len(c.items)
	switch {
	case ch.Type != wire.TypeEvaluated:
		return c.fail(fmt.Errorf("%w: got %v, want an evaluated chunk", ErrPeer, ch.Type))
	case ch.Seq != c.seq:
		return c.fail(fmt.Errorf("%w: evaluated chunk %d arrived, want %d", ErrPeer, ch.Seq, c.seq))
	case ch.Count() > c.chunk:
		return c.fail(fmt.Errorf("%w: chunk of %d elements exceeds the agreed %d", ErrPeer, ch.Count(), c.chunk))
	case c.got+ch.Count() > n:
		return c.fail(fmt.Errorf("%w: server returned more than the %d elements sent", ErrPeer, n))
	}
	defer c.addTime(&c.timings.Unblind, time.Now())
	start := len(c.tags)
	c.tags = c.tags[:start+ch.Count()]
	salt := &c.params.Salt
	err := parallel(ch.Count(), c.workers, func(lo, hi int) error {
		enc := make([]byte, 32*(hi-lo))
		if i, err := c.key.invMultPeerTags(ch.Elements[lo*elemSize:hi*elemSize], enc); err != nil {
			return elemErr("evaluated element", c.got+lo+i, err)
		}
		for i := lo; i < hi; i++ {
			c.tags[start+i] = tagOf(salt, enc[32*(i-lo):32*(i-lo+1)])
		}
		return nil
	})
	if err != nil {
		return c.fail(err)
	}
	c.got += ch.Count()
	c.seq++
	if c.got < n {
		return nil
	}
	c.key.erase()
	// Distinct elements have distinct tags except with probability 2^-128,
	// so equal tags mean the server repeated an element.
	if c.rec != nil {
		c.records = sortByRecord(c.tags, c.rec.slots)
		c.hits = newRecordHits(c.rec.n)
	} else {
		slices.SortFunc(c.tags, gcs.Uint128.Cmp)
	}
	for i := 1; i < n; i++ {
		if c.tags[i] == c.tags[i-1] {
			return c.fail(fmt.Errorf("%w: the server returned a duplicate evaluated element", ErrPeer))
		}
	}
	// Reduce is monotone, so the reduced values stay sorted.
	f := gcs.Params{N: uint64(c.params.ServerSize), M: c.params.GCSM, K: c.params.GCSK}.F()
	for i := range c.tags {
		c.tags[i] = gcs.Reduce(c.tags[i], f)
	}
	c.seq = 0
	c.state = clientAwaitSet
	return nil
}

// ReceiveSetChunk decodes one chunk of the server's Golomb-coded set and
// counts the client's values found in it.
func (c *Client) ReceiveSetChunk(ch *wire.SetChunk) error {
	if c.state != clientAwaitSet {
		return fmt.Errorf("%w: set chunk not expected now", ErrState)
	}
	if ch.Seq != c.seq {
		return c.fail(fmt.Errorf("%w: set chunk %d arrived, want %d", ErrPeer, ch.Seq, c.seq))
	}
	defer c.addTime(&c.timings.Count, time.Now())
	vals := c.tags
	err := c.dec.Chunk(int(ch.Count), ch.Data, func(v gcs.Uint128) {
		for c.pos < len(vals) && vals[c.pos].Less(v) {
			c.pos++
		}
		for c.pos < len(vals) && vals[c.pos] == v {
			c.matches++
			if c.hits != nil {
				c.hits.mark(c.records[c.pos])
			}
			c.pos++
		}
	})
	if err != nil {
		return c.fail(fmt.Errorf("%w: server set chunk %d: %v", ErrPeer, ch.Seq, err))
	}
	c.seq++
	return nil
}

// Result finishes the session. It fails unless the whole server set
// arrived, as announced.
func (c *Client) Result() (Result, error) {
	if c.state != clientAwaitSet {
		return Result{}, fmt.Errorf("%w: the session has not reached its result", ErrState)
	}
	if err := c.dec.Finish(); err != nil {
		return Result{}, c.fail(fmt.Errorf("%w: %v", ErrPeer, err))
	}
	n := c.announced()
	overlap, slots := c.matches, 0
	if c.rec != nil {
		overlap, slots = c.hits.count, c.rec.slots
	}
	c.state = clientDone
	c.erase()
	return Result{
		SessionID:     c.params.SessionID,
		Overlap:       min(overlap, n), // by construction; the clamp is belt and braces
		ClientSize:    n,
		Slots:         slots,
		ServerSize:    int(c.params.ServerSize),
		FalsePositive: float64(len(c.items)) / float64(c.params.GCSM),
	}, nil
}

func (c *Client) addTime(d *time.Duration, start time.Time) { *d += time.Since(start) }

// Close erases the client's keys whatever the session's state.
func (c *Client) Close() {
	if c.state != clientDone {
		c.state = clientFailed
	}
	c.erase()
}
