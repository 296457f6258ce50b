package psi

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/overlap-psi/overlap/psi/gcs"
	"github.com/overlap-psi/overlap/psi/wire"
)

// EpochSetupConfig is the server's policy for one setup (SPEC.md
// §10.12.1).
type EpochSetupConfig struct {
	CanonVersion uint16    // canonicalization version the server's set uses
	CanonFlags   uint16    // optional canonicalization rules the set uses
	ChunkSize    int       // elements per element chunk; 0 means DefaultChunkSize
	Workers      int       // scalar-multiplication workers; 0 means GOMAXPROCS
	ExpiresAt    time.Time // end of the epoch (SPEC.md §10.12.6); required

	rand io.Reader // nil means crypto/rand; set only by tests
}

type setupServerState int

const (
	setupAwaitHello setupServerState = iota
	setupSendElements
	setupAwaitKey
	setupAwaitTags
	setupSendReady
	setupDone
	setupFailed
)

// EpochSetupServer is the platform's side of one setup (SPEC.md §10.12.1).
// It sends its set, raised to the epoch key b_E and padded with the ringers
// of SPEC.md §10.12.4, takes the client's tags, checks the ringers and
// makes the Epoch that later sessions count against. It is not safe for
// concurrent use.
type EpochSetupServer struct {
	cfg       EpochSetupConfig
	set       *PrivateSet
	state     setupServerState
	params    wire.EpochParams
	f         gcs.Uint128 // N·M
	sent      int
	seq       uint32
	disclosed bool
	clientKey [32]byte
	images    []gcs.Uint128 // tags of the ringer images, sorted
	dec       *gcs.Decoder
	tags      []gcs.Uint128 // the client's tags, as received (sorted)
	epoch     *Epoch
	workers   int
}

// String never prints keys.
func (s *EpochSetupServer) String() string {
	return fmt.Sprintf("psi.EpochSetupServer{state=%d}", s.state)
}

// Format never prints keys.
func (s *EpochSetupServer) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// NewEpochSetupServer starts a setup that will send set, which must have
// been made with PrivateSetConfig.Epoch; it claims the set.
func NewEpochSetupServer(cfg EpochSetupConfig, set *PrivateSet) (*EpochSetupServer, error) {
	if err := serverDefaults(&cfg.ChunkSize, new(uint32)); err != nil {
		return nil, err
	}
	if cfg.ExpiresAt.IsZero() {
		return nil, fmt.Errorf("psi: a setup needs the epoch's expiry")
	}
	if set.epoch == nil {
		return nil, fmt.Errorf("psi: the set was not made for an epoch setup (PrivateSetConfig.Epoch)")
	}
	if err := set.claim(); err != nil {
		return nil, err
	}
	return &EpochSetupServer{cfg: cfg, set: set, workers: workerCount(cfg.Workers)}, nil
}

func (s *EpochSetupServer) fail(err error) error {
	s.state = setupFailed
	s.set.Destroy()
	s.images, s.tags = nil, nil
	return err
}

// Disclosed reports whether the server has sent anything derived from its
// set.
func (s *EpochSetupServer) Disclosed() bool { return s.disclosed }

// Close ends the setup and erases its keys, whatever its state. An Epoch
// already returned by Epoch is the caller's and stays usable.
func (s *EpochSetupServer) Close() {
	if s.state != setupDone {
		s.state = setupFailed
	}
	s.set.Destroy()
	s.images, s.tags = nil, nil
}

// ReceiveHello checks a setup's hello (SPEC.md §10.12.1 step 1) and
// returns the epoch's parameters, with a fresh epoch id.
func (s *EpochSetupServer) ReceiveHello(h *wire.ClientHello) (*wire.EpochParams, error) {
	if s.state != setupAwaitHello {
		return nil, fmt.Errorf("%w: hello received twice", ErrState)
	}
	limits := HelloLimits{Mode: wire.ModeEpochSetup, Kind: s.set.kind, CanonVersion: s.cfg.CanonVersion,
		CanonFlags: s.cfg.CanonFlags, MinClientSize: 1, MaxClientSize: 1}
	if err := limits.Check(h); err != nil {
		return nil, s.fail(err)
	}
	if err := checkSuite(h.Suites, s.set.key.suite); err != nil {
		return nil, s.fail(err)
	}
	n := uint32(s.set.elems.Len())
	gp, err := epochGCS(n)
	if err != nil {
		return nil, s.fail(err)
	}
	p := wire.EpochParams{Mode: wire.ModeEpochSetup, Kind: h.Kind, CanonVersion: s.cfg.CanonVersion,
		CanonFlags: s.cfg.CanonFlags, ServerSize: n, ChunkSize: uint32(s.cfg.ChunkSize),
		GCSM: gp.M, GCSK: gp.K, ExpiresAt: uint64(s.cfg.ExpiresAt.Unix()), Suite: wireSuite(s.set.key.suite)}
	if _, err := io.ReadFull(entropy(s.cfg.rand), p.Epoch[:]); err != nil {
		return nil, s.fail(fmt.Errorf("psi: generating an epoch id: %w", err))
	}
	if s.dec, err = gcs.NewDecoder(gp); err != nil {
		return nil, s.fail(err)
	}
	s.params, s.f = p, gp.F()
	s.state = setupSendElements
	return &p, nil
}

// NextServerElements returns the next chunk of the server's shuffled
// elements, or ok == false when all N have been returned.
func (s *EpochSetupServer) NextServerElements() (c *wire.ElementChunk, ok bool, err error) {
	if s.state != setupSendElements {
		return nil, false, fmt.Errorf("%w: no server elements to send now", ErrState)
	}
	if s.sent == s.set.elems.Len() {
		s.set.elems.truncate(0)
		s.seq, s.state = 0, setupAwaitKey
		return nil, false, nil
	}
	c = s.set.nextChunk(s.sent, s.cfg.ChunkSize, s.seq)
	s.sent += c.Count()
	s.seq++
	s.disclosed = true
	return c, true, nil
}

// ReceiveClientKey checks A_E and computes the tags of the ringer images
// (SPEC.md §10.12.1 step 5), then erases the ringer keys.
func (s *EpochSetupServer) ReceiveClientKey(k *wire.ClientKey) error {
	if s.state == setupSendElements && s.sent == s.set.elems.Len() {
		s.set.elems.truncate(0)
		s.seq, s.state = 0, setupAwaitKey
	}
	if s.state != setupAwaitKey {
		return fmt.Errorf("%w: client key not expected now", ErrState)
	}
	var a peerElem
	if err := decodePeerElem(s.set.key.suite, &a, k.Key[:]); err != nil {
		return s.fail(fmt.Errorf("%w: client key: %v", ErrPeer, err))
	}
	s.clientKey = k.Key
	s.images = make([]gcs.Uint128, len(s.set.ringers))
	err := s.set.ringerImages(&a, s.workers, func(j int, enc []byte) {
		s.images[j] = gcs.Reduce(epochT(&s.params.Epoch, enc), s.f)
	})
	if err != nil {
		return s.fail(fmt.Errorf("%w: client key: %v", ErrPeer, err))
	}
	slices.SortFunc(s.images, gcs.Uint128.Cmp)
	s.tags = make([]gcs.Uint128, 0, s.params.ServerSize)
	s.state = setupAwaitTags
	return nil
}

// ReceiveTags takes one chunk of the client's Golomb-coded tags. After the
// last one it makes the ringer check and keeps the other tags as the
// epoch's (SPEC.md §10.12.1 step 5). A failed ringer check returns an error
// wrapping ErrDeviation.
func (s *EpochSetupServer) ReceiveTags(c *wire.TagChunk) error {
	if s.state != setupAwaitTags {
		return fmt.Errorf("%w: tag chunk not expected now", ErrState)
	}
	total := int(s.params.ServerSize)
	switch {
	case c.Seq != s.seq:
		return s.fail(fmt.Errorf("%w: tag chunk %d arrived, want %d", ErrPeer, c.Seq, s.seq))
	case int(c.Count) > s.cfg.ChunkSize || len(c.Data) > 16*s.cfg.ChunkSize:
		return s.fail(fmt.Errorf("%w: tag chunk of %d values in %d bytes exceeds the agreed %d values in %d bytes",
			ErrPeer, c.Count, len(c.Data), s.cfg.ChunkSize, 16*s.cfg.ChunkSize))
	case len(s.tags)+int(c.Count) > total:
		return s.fail(fmt.Errorf("%w: client sent more than the %d tags expected", ErrPeer, total))
	}
	err := s.dec.Chunk(int(c.Count), c.Data, func(v gcs.Uint128) { s.tags = append(s.tags, v) })
	if err != nil {
		return s.fail(fmt.Errorf("%w: tag chunk %d: %v", ErrPeer, c.Seq, err))
	}
	s.seq++
	if len(s.tags) < total {
		return nil
	}
	if err := s.dec.Finish(); err != nil {
		return s.fail(fmt.Errorf("%w: tags: %v", ErrPeer, err))
	}
	kept, ok := removeRingers(s.tags, s.images)
	// As in mode 2, the error does not say how many ringers were missing.
	if !ok || len(kept) != s.set.real {
		return s.fail(fmt.Errorf("%w: %w: a ringer did not come back as the tag of A^r", ErrPeer, ErrDeviation))
	}
	// The epoch takes its own copy of b_E; the set's is erased with it.
	key := s.set.key.clone()
	s.set.Destroy()
	s.epoch = newEpoch(EpochMeta{
		ID: s.params.Epoch, Kind: s.set.kind, Suite: wireSuite(key.suite), CanonVersion: s.cfg.CanonVersion, CanonFlags: s.cfg.CanonFlags,
		ServerSize: s.params.ServerSize, Size: len(kept), ExpiresAt: time.Unix(int64(s.params.ExpiresAt), 0).UTC(),
		ClientKey: s.clientKey}, key, slices.Clip(kept))
	s.images, s.tags = nil, nil
	s.state = setupSendReady
	return nil
}

// epochK is the K of a setup's tag set of n values.
func epochK(n uint32) uint8 {
	p, err := epochGCS(max(n, 1))
	if err != nil {
		return 0
	}
	return p.K
}

// removeRingers removes one occurrence of each ringer tag from tags (both
// sorted) and reports whether every one was there. It reuses tags' memory.
func removeRingers(tags, images []gcs.Uint128) ([]gcs.Uint128, bool) {
	kept := tags[:0]
	j := 0
	for _, t := range tags {
		if j < len(images) && images[j].Less(t) {
			return nil, false // images[j] is missing
		}
		if j < len(images) && images[j] == t {
			j++
			continue
		}
		kept = append(kept, t)
	}
	return kept, j == len(images)
}

// Epoch returns the epoch the setup made, and the EpochReady message to
// send once the caller has stored it.
func (s *EpochSetupServer) Epoch() (*Epoch, *wire.EpochReady, error) {
	if s.state != setupSendReady {
		return nil, nil, fmt.Errorf("%w: the setup has not completed", ErrState)
	}
	s.state = setupDone
	return s.epoch, &wire.EpochReady{Epoch: s.params.Epoch, ExpiresAt: s.params.ExpiresAt}, nil
}

// EpochSetupClientConfig configures the advertiser's side of a setup.
type EpochSetupClientConfig struct {
	Kind          Kind
	CanonVersion  uint16
	CanonFlags    uint16
	MaxServerSize uint32           // largest N accepted; 0 means DefaultEpochMaxServerSize
	Workers       int              // scalar-multiplication workers; 0 means GOMAXPROCS
	Now           func() time.Time // the clock the expiry is checked against; nil means time.Now
	// Suites are the ciphersuites the client offers for the epoch
	// (SPEC.md §12.1); the server chooses, and the epoch keeps that suite
	// to its end. Empty offers suite 1 only.
	Suites []Suite

	rand io.Reader // nil means crypto/rand; set only by tests
}

type setupClientState int

const (
	setupClientAwaitParams setupClientState = iota
	setupClientAwaitElements
	setupClientSendKey
	setupClientSendTags
	setupClientAwaitReady
	setupClientDone
	setupClientFailed
)

// EpochSetupClient is the advertiser's side of one setup (SPEC.md
// §10.12.1): it raises the server's N elements to a fresh epoch key a_E,
// holds their 8-byte tags, sorts them and sends them Golomb-coded. Its
// result is the EpochKey that the epoch's sessions use. It is not safe for
// concurrent use.
type EpochSetupClient struct {
	cfg     EpochSetupClientConfig
	state   setupClientState
	offer   wire.SuiteSet
	key     *gkey // a_E, drawn once the server has chosen the suite
	params  wire.EpochParams
	f       gcs.Uint128
	ts      []gcs.Uint128 // T of each raised element, then sorted
	seq     uint32
	next    int // tags encoded so far
	enc     *gcs.Encoder
	pending []*wire.TagChunk
	workers int
}

// String never prints keys.
func (c *EpochSetupClient) String() string {
	return fmt.Sprintf("psi.EpochSetupClient{state=%d}", c.state)
}

// Format never prints keys.
func (c *EpochSetupClient) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// NewEpochSetupClient starts a setup with a fresh epoch key.
func NewEpochSetupClient(cfg EpochSetupClientConfig) (*EpochSetupClient, error) {
	if _, err := hasher(cfg.Kind); err != nil {
		return nil, err
	}
	if cfg.MaxServerSize == 0 {
		cfg.MaxServerSize = DefaultEpochMaxServerSize
	}
	cfg.MaxServerSize = min(cfg.MaxServerSize, wire.MaxSetSize)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	offer, err := offerSet(cfg.Suites)
	if err != nil {
		return nil, err
	}
	return &EpochSetupClient{cfg: cfg, offer: offer, workers: workerCount(cfg.Workers)}, nil
}

// Hello returns the message that opens the setup: mode 3, n = 1.
func (c *EpochSetupClient) Hello() *wire.ClientHello {
	return &wire.ClientHello{Mode: wire.ModeEpochSetup, Kind: c.cfg.Kind,
		CanonVersion: c.cfg.CanonVersion, CanonFlags: c.cfg.CanonFlags, ClientSize: 1, Suites: c.offer}
}

func (c *EpochSetupClient) fail(err error) error {
	c.state = setupClientFailed
	c.key.erase()
	c.ts, c.pending = nil, nil
	return err
}

// Close erases the epoch key unless the setup completed (the key then
// belongs to the EpochKey that ReceiveReady returned).
func (c *EpochSetupClient) Close() {
	if c.state != setupClientDone {
		c.state = setupClientFailed
		c.key.erase()
	}
	c.ts, c.pending = nil, nil
}

// Params returns the epoch's parameters once received.
func (c *EpochSetupClient) Params() wire.EpochParams { return c.params }

// ReceiveParams checks the setup's parameters (SPEC.md §10.12.8).
func (c *EpochSetupClient) ReceiveParams(p *wire.EpochParams) error {
	if c.state != setupClientAwaitParams {
		return fmt.Errorf("%w: parameters received twice", ErrState)
	}
	gp := gcs.Params{N: uint64(p.ServerSize), M: p.GCSM, K: p.GCSK}
	now := c.cfg.Now()
	switch {
	case p.Mode != wire.ModeEpochSetup:
		return c.fail(fmt.Errorf("%w: server chose mode %v, client asked for a setup", ErrParams, p.Mode))
	case p.Kind != c.cfg.Kind:
		return c.fail(fmt.Errorf("%w: server answered for kind %v, client asked for %v", ErrParams, p.Kind, c.cfg.Kind))
	case p.CanonVersion != c.cfg.CanonVersion || p.CanonFlags != c.cfg.CanonFlags:
		return c.fail(fmt.Errorf("%w: server uses canonicalization v%d flags %#x, client v%d flags %#x",
			ErrParams, p.CanonVersion, p.CanonFlags, c.cfg.CanonVersion, c.cfg.CanonFlags))
	case p.ServerSize == 0 || p.ServerSize > c.cfg.MaxServerSize:
		return c.fail(fmt.Errorf("%w: server set of %d elements is outside the client's limit of %d", ErrParams, p.ServerSize, c.cfg.MaxServerSize))
	case p.ChunkSize == 0 || p.ChunkSize > wire.MaxChunkElements:
		return c.fail(fmt.Errorf("%w: chunk size %d", ErrParams, p.ChunkSize))
	case p.GCSM != EpochTagRange || gp.Validate() != nil || p.GCSK != epochK(p.ServerSize):
		// A K far from the optimum would make this side's code huge.
		return c.fail(fmt.Errorf("%w: tag parameters M=%d K=%d, want M=%d K=%d", ErrParams, p.GCSM, p.GCSK, uint64(EpochTagRange), epochK(p.ServerSize)))
	case p.ExpiresAt <= uint64(now.Unix()):
		return c.fail(fmt.Errorf("%w: the epoch would expire at %s, before now", ErrParams, time.Unix(int64(p.ExpiresAt), 0).UTC().Format(time.RFC3339)))
	}
	if err := checkChosen(c.offer, p.Suite); err != nil {
		return c.fail(err)
	}
	key, err := newKey(p.Suite, entropy(c.cfg.rand), false)
	if err != nil {
		return c.fail(fmt.Errorf("psi: generating the epoch key: %w", err))
	}
	c.params, c.f, c.key = *p, gp.F(), key
	c.ts = make([]gcs.Uint128, 0, p.ServerSize)
	c.state = setupClientAwaitElements
	return nil
}

// ReceiveServerElements checks one chunk of the server's elements and
// computes T of each raised to a_E. After the last chunk it sorts them and
// aborts if two are equal (SPEC.md §10.12.1 step 4).
func (c *EpochSetupClient) ReceiveServerElements(ch *wire.ElementChunk) error {
	if c.state != setupClientAwaitElements {
		return fmt.Errorf("%w: server elements not expected now", ErrState)
	}
	total := int(c.params.ServerSize)
	switch {
	case ch.Type != wire.TypeServerElements:
		return c.fail(fmt.Errorf("%w: got %v, want a server element chunk", ErrPeer, ch.Type))
	case ch.Seq != c.seq:
		return c.fail(fmt.Errorf("%w: server element chunk %d arrived, want %d", ErrPeer, ch.Seq, c.seq))
	case ch.Count() > int(c.params.ChunkSize):
		return c.fail(fmt.Errorf("%w: chunk of %d elements exceeds the agreed %d", ErrPeer, ch.Count(), c.params.ChunkSize))
	case len(c.ts)+ch.Count() > total:
		return c.fail(fmt.Errorf("%w: server sent more than the %d elements it announced", ErrPeer, total))
	}
	start := len(c.ts)
	c.ts = c.ts[:start+ch.Count()]
	err := parallel(ch.Count(), c.workers, func(lo, hi int) error {
		i, err := c.key.multPeers(lo, hi, ch.Element, func(i int, enc *[32]byte) {
			c.ts[start+i] = epochT(&c.params.Epoch, enc[:])
		})
		if err != nil {
			return elemErr("server element", start+i, err)
		}
		return nil
	})
	if err != nil {
		return c.fail(err)
	}
	c.seq++
	if len(c.ts) < total {
		return nil
	}
	slices.SortFunc(c.ts, gcs.Uint128.Cmp)
	for i := 1; i < len(c.ts); i++ {
		if c.ts[i] == c.ts[i-1] {
			// Also one element under several torsion variants in suite 2
			// (SPEC.md §12.6).
			return c.fail(fmt.Errorf("%w: two of the server's elements are equal (or their tags collide; retry the setup)", ErrPeer))
		}
	}
	c.seq, c.state = 0, setupClientSendKey
	return nil
}

// ClientKey returns A_E = B^(a_E), once all the server's elements arrived.
func (c *EpochSetupClient) ClientKey() (*wire.ClientKey, error) {
	if c.state != setupClientSendKey {
		return nil, fmt.Errorf("%w: the client key is sent after all server elements arrived", ErrState)
	}
	k := wire.ClientKey{Key: c.key.baseMult()}
	c.state = setupClientSendTags
	return &k, nil
}

// NextTags returns the next chunk of the Golomb-coded sorted tags, at most
// C values each, or ok == false when all N have been sent.
func (c *EpochSetupClient) NextTags() (ch *wire.TagChunk, ok bool, err error) {
	if c.state != setupClientSendTags {
		return nil, false, fmt.Errorf("%w: not sending tags now", ErrState)
	}
	if c.enc == nil {
		gp := gcs.Params{N: uint64(c.params.ServerSize), M: c.params.GCSM, K: c.params.GCSK}
		c.enc, err = gcs.NewEncoder(gp, int(c.params.ChunkSize), func(count int, data []byte) error {
			c.pending = append(c.pending, &wire.TagChunk{Count: uint32(count), Data: slices.Clone(data)})
			return nil
		})
		if err != nil {
			return nil, false, c.fail(err)
		}
	}
	for len(c.pending) == 0 && c.next < len(c.ts) {
		if err := c.enc.Add(gcs.Reduce(c.ts[c.next], c.f)); err != nil {
			return nil, false, c.fail(err)
		}
		c.next++
		if c.next == len(c.ts) {
			if err := c.enc.Close(); err != nil {
				return nil, false, c.fail(err)
			}
		}
	}
	if len(c.pending) == 0 {
		c.ts = nil
		c.state = setupClientAwaitReady
		return nil, false, nil
	}
	ch, c.pending = c.pending[0], c.pending[1:]
	ch.Seq = c.seq
	c.seq++
	return ch, true, nil
}

// Progress reports the tags encoded so far and in all.
func (c *EpochSetupClient) Progress() (done, total int) { return c.next, int(c.params.ServerSize) }

// ReceiveReady checks the server's confirmation and returns the epoch's
// key, which the client keeps secret until the epoch ends.
func (c *EpochSetupClient) ReceiveReady(r *wire.EpochReady) (*EpochKey, error) {
	if c.state == setupClientSendTags && c.next == len(c.ts) && len(c.pending) == 0 {
		c.ts, c.state = nil, setupClientAwaitReady
	}
	if c.state != setupClientAwaitReady {
		return nil, fmt.Errorf("%w: EpochReady not expected now", ErrState)
	}
	if r.Epoch != c.params.Epoch || r.ExpiresAt != c.params.ExpiresAt {
		return nil, c.fail(fmt.Errorf("%w: EpochReady names another epoch or expiry", ErrPeer))
	}
	c.state = setupClientDone
	p := &c.params
	return &EpochKey{ID: p.Epoch, Kind: p.Kind, CanonVersion: p.CanonVersion, CanonFlags: p.CanonFlags,
		ServerSize: p.ServerSize, ExpiresAt: time.Unix(int64(p.ExpiresAt), 0).UTC(), Suite: wireSuite(p.Suite), key: c.key}, nil
}
