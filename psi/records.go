package psi

// Record sessions (SPEC.md §13): the client's input is customer records of
// one or more identifiers of any kinds, and the count is of records with at
// least one identifier in the server's matchable set of its kind. They
// reuse the exact-mode and private-mode roles and their session sequences:
// a record session differs from its mode's only in its opening message
// (RecordsHello), in the client's list, which is the records' slots
// (n records of s elements, §13.2), in the server's set, which is the union
// of the kinds' sets, and in what is counted (records, not elements):
//
//	mode 5 (exact, records): the server permutes whole records and the
//	slots within each (§13.4) where exact mode permutes elements, and the
//	client counts the records with a slot in the set;
//	mode 6 (private, records): the client sends its slots grouped by
//	record, records and slots permuted (§13.5), and the server counts the
//	records with a slot whose image is among the returned elements, noised
//	with the person-level sensitivity Σ_K Δ_K (§13.7).

import (
	"fmt"
	"io"
	mrand "math/rand/v2"
	"slices"

	"github.com/overlap-psi/overlap/psi/dp"
	"github.com/overlap-psi/overlap/psi/gcs"
	"github.com/overlap-psi/overlap/psi/internal/r255"
	"github.com/overlap-psi/overlap/psi/wire"
)

// KindSet is a set of identifier kinds, the kinds of a record session
// (wire.KindSet, SPEC.md §13.3).
type KindSet = wire.KindSet

// MaxSlots is the most slots per record (SPEC.md §13.2).
const MaxSlots = wire.MaxSlots

// RecordID is one identifier of a customer record (SPEC.md §13.1): its kind
// and digest (§3.1). It never prints its digest: every fmt verb gives the
// kind only.
type RecordID struct {
	Kind   Kind
	Digest [32]byte
}

// String returns a redacted description such as "psi.RecordID{kind=email}".
func (id RecordID) String() string { return "psi.RecordID{kind=" + id.Kind.String() + "}" }

// Format writes the redacted String for every verb.
func (id RecordID) Format(f fmt.State, _ rune) { io.WriteString(f, id.String()) }

// RecordsConfig is what a client announces of its records besides their
// number (SPEC.md §13.2, §13.3).
type RecordsConfig struct {
	// Kinds is the session's kind set; zero means the kinds the records
	// hold. It must hold every kind the records hold. overlap match
	// announces the kinds of the file's identifier columns.
	Kinds KindSet
	// Slots is s, the elements per record; zero means the size of the
	// largest record. It must be at least that, and at most MaxSlots.
	// overlap match announces the file's number of identifier columns.
	Slots int
}

// dummyDST is the suite-1 hash-to-group domain-separation tag of the
// dummies that fill a record's empty slots (SPEC.md §13.2): kind 0, which
// names no server set, so a dummy H(0, m)^a is hashed and blinded like any
// identifier and matches nothing. dummyDST2 is suite 2's (§12.3).
var (
	dummyDST  = []byte("OVERLAP-V1-dummy-ristretto255_XMD:SHA-512_R255MAP_RO_")
	dummyDST2 = []byte("OVERLAP-V1-dummy-curve25519_XMD:SHA-512_ELL2_RO_")
)

var dummyHasher = r255.NewHasher(dummyDST)

// dummyKind is the kind of a dummy slot in a client's slot list.
const dummyKind Kind = 0

// s1Hasher returns the suite-1 hasher of a slot's kind, the dummies' for
// kind 0.
func s1Hasher(k Kind) *r255.Hasher {
	if k == dummyKind {
		return dummyHasher
	}
	return hashers[k]
}

// recordsLayout is a record session's shape: n records of s slots each.
// A client's slot list and a server's evaluated or blinded elements hold
// record j at positions j·s to j·s + s − 1.
type recordsLayout struct {
	kinds KindSet
	slots int
	n     int // records
}

// elements returns n·s.
func (l *recordsLayout) elements() int { return l.n * l.slots }

// layoutRecords builds a client's slot list (SPEC.md §13.2): it drops each
// identifier an earlier record holds and the records left empty, fills
// each record to s slots with dummies (random messages of kind 0), and
// permutes the records and the slots within each, uniformly. It returns the
// slots' digests and kinds.
func layoutRecords(rc RecordsConfig, records [][]RecordID, rand io.Reader) (digests [][32]byte, kinds []Kind, l *recordsLayout, err error) {
	seen := make(map[RecordID]struct{})
	kept := make([][]RecordID, 0, len(records))
	var held KindSet
	largest := 0
	for _, rec := range records {
		var ids []RecordID
		for _, id := range rec {
			if !id.Kind.Valid() {
				return nil, nil, nil, fmt.Errorf("psi: a record holds an identifier of unknown kind %d", uint8(id.Kind))
			}
			if _, dup := seen[id]; dup {
				continue
			}
			seen[id] = struct{}{}
			ids = append(ids, id)
			held |= wire.KindSetOf(id.Kind)
		}
		if len(ids) > 0 {
			kept = append(kept, ids)
			largest = max(largest, len(ids))
		}
	}
	if len(kept) == 0 {
		return nil, nil, nil, fmt.Errorf("psi: no record holds an identifier")
	}
	if rc.Kinds == 0 {
		rc.Kinds = held
	}
	if rc.Slots == 0 {
		rc.Slots = largest
	}
	switch {
	case !rc.Kinds.Valid() || held&^rc.Kinds != 0:
		return nil, nil, nil, fmt.Errorf("psi: the records hold kinds %v, outside the announced %v", held, rc.Kinds)
	case largest > MaxSlots:
		return nil, nil, nil, fmt.Errorf("psi: a record holds %d identifiers, more than the protocol's %d slots", largest, MaxSlots)
	case rc.Slots < largest || rc.Slots > MaxSlots:
		return nil, nil, nil, fmt.Errorf("psi: %d slots per record is outside [%d, %d]", rc.Slots, largest, MaxSlots)
	case len(kept)*rc.Slots > wire.MaxClientSize:
		return nil, nil, nil, fmt.Errorf("psi: %d records of %d slots exceed the protocol's %d elements", len(kept), rc.Slots, wire.MaxClientSize)
	}
	l = &recordsLayout{kinds: rc.Kinds, slots: rc.Slots, n: len(kept)}
	g, wipe, err := seeded(entropy(rand))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("psi: seeding the record layout: %w", err)
	}
	defer wipe()
	rng := mrand.New(g)
	rng.Shuffle(len(kept), func(i, j int) { kept[i], kept[j] = kept[j], kept[i] })
	s := rc.Slots
	digests = make([][32]byte, l.elements())
	kinds = make([]Kind, l.elements())
	for j, rec := range kept {
		base := j * s
		for i, id := range rec {
			digests[base+i], kinds[base+i] = id.Digest, id.Kind
		}
		for i := len(rec); i < s; i++ {
			// A dummy's message is 32 bytes from the seeded generator;
			// kinds[base+i] stays dummyKind.
			for w := 0; w < 32; w += 8 {
				v := g.Uint64()
				for b := range 8 {
					digests[base+i][w+b] = byte(v >> (8 * b))
				}
			}
		}
		rng.Shuffle(s, func(a, b int) {
			digests[base+a], digests[base+b] = digests[base+b], digests[base+a]
			kinds[base+a], kinds[base+b] = kinds[base+b], kinds[base+a]
		})
	}
	return digests, kinds, l, nil
}

// hello returns the RecordsHello of a client with this layout.
func (l *recordsLayout) hello(mode wire.Mode, canonVersion, canonFlags uint16) *wire.RecordsHello {
	return &wire.RecordsHello{Mode: mode, Kinds: l.kinds, CanonVersion: canonVersion, CanonFlags: canonFlags,
		Slots: uint8(l.slots), Records: uint32(l.n)}
}

// taggedSlots is a list of tags with the record of each, sorted by tag so
// that a sorted stream of set values can be merged against it.
type taggedSlots struct {
	tags   []gcs.Uint128
	record []uint32
}

func (t taggedSlots) Len() int           { return len(t.tags) }
func (t taggedSlots) Less(i, j int) bool { return t.tags[i].Less(t.tags[j]) }
func (t taggedSlots) Swap(i, j int) {
	t.tags[i], t.tags[j] = t.tags[j], t.tags[i]
	t.record[i], t.record[j] = t.record[j], t.record[i]
}

// sortByRecord sorts tags, where tags[i] is of slot i of the record layout
// (record i/s), and returns the record of each sorted tag.
func sortByRecord(tags []gcs.Uint128, slots int) []uint32 {
	type ent struct {
		tag gcs.Uint128
		rec uint32
	}
	ents := make([]ent, len(tags))
	for i, t := range tags {
		ents[i] = ent{t, uint32(i / slots)}
	}
	slices.SortFunc(ents, func(a, b ent) int { return a.tag.Cmp(b.tag) })
	records := make([]uint32, len(tags))
	for i, e := range ents {
		tags[i], records[i] = e.tag, e.rec
	}
	return records
}

// recordHits counts the distinct records marked.
type recordHits struct {
	hit   []bool
	count int
}

func newRecordHits(n int) *recordHits { return &recordHits{hit: make([]bool, n)} }

func (h *recordHits) mark(record uint32) {
	if !h.hit[record] {
		h.hit[record] = true
		h.count++
	}
}

// permuteRecords permutes n·s elements of 32 bytes in buf (SPEC.md
// §13.4 step 2): the n records as wholes, then the s slots within each,
// with one ChaCha8 generator seeded from r.
func permuteRecords(r io.Reader, buf []byte, slots int) error {
	g, wipe, err := seeded(r)
	if err != nil {
		return err
	}
	defer wipe()
	rng := mrand.New(g)
	const size = elemSize
	rec := slots * size
	n := len(buf) / rec
	tmp := make([]byte, rec)
	rng.Shuffle(n, func(i, j int) {
		a, b := buf[i*rec:(i+1)*rec], buf[j*rec:(j+1)*rec]
		copy(tmp, a)
		copy(a, b)
		copy(b, tmp)
	})
	if slots == 1 {
		return nil
	}
	var e [size]byte
	for j := range n {
		base := j * rec
		rng.Shuffle(slots, func(a, b int) {
			x, y := buf[base+a*size:base+(a+1)*size], buf[base+b*size:base+(b+1)*size]
			copy(e[:], x)
			copy(x, y)
			copy(y, e[:])
		})
	}
	return nil
}

// RecordsLimits is what a server accepts in a RecordsHello (SPEC.md
// §13.3): one mode, the kinds of its set, one canonicalization, a range of
// record counts and a most elements n·s.
type RecordsLimits struct {
	Mode         wire.Mode
	Kinds        KindSet // the kinds the server has sets for; a hello may ask for any non-empty subset served
	CanonVersion uint16
	CanonFlags   uint16
	MinRecords   uint32
	MaxRecords   uint32
	MaxElements  uint32 // most n·s; 0 means wire.MaxClientSize
	ExactKinds   bool   // the hello's kinds must equal Kinds (a role whose set is built)
}

// Check returns nil when h is within l, and otherwise a *HelloError naming
// the first check it fails (CheckMode, CheckKind, CheckCanonicalization,
// CheckMinListSize, CheckMaxListSize).
func (l RecordsLimits) Check(h *wire.RecordsHello) error {
	fail := func(check, format string, args ...any) error {
		return &HelloError{Check: check, msg: fmt.Sprintf(format, args...)}
	}
	maxElems := l.MaxElements
	if maxElems == 0 || maxElems > wire.MaxClientSize {
		maxElems = wire.MaxClientSize
	}
	switch {
	case h.Mode != l.Mode:
		return fail(CheckMode, "mode %v is not served by this %v-mode session", h.Mode, l.Mode)
	case !h.Kinds.Valid() || h.Kinds&^l.Kinds != 0 || l.ExactKinds && h.Kinds != l.Kinds:
		return fail(CheckKind, "client asks for kinds %v, this session serves %v", h.Kinds, l.Kinds)
	case h.CanonVersion != l.CanonVersion || h.CanonFlags != l.CanonFlags:
		return fail(CheckCanonicalization, "canonicalization v%d flags %#x, server uses v%d flags %#x",
			h.CanonVersion, h.CanonFlags, l.CanonVersion, l.CanonFlags)
	case h.Records < l.MinRecords:
		return fail(CheckMinListSize, "list of %d records is below the minimum of %d", h.Records, l.MinRecords)
	case h.Records > l.MaxRecords:
		return fail(CheckMaxListSize, "list of %d records is above the maximum of %d", h.Records, l.MaxRecords)
	case h.Slots == 0 || h.Slots > MaxSlots || uint64(h.Elements()) > uint64(maxElems):
		return fail(CheckMaxListSize, "%d records of %d slots is above the maximum of %d elements", h.Records, h.Slots, maxElems)
	}
	return nil
}

// personSensitivity returns Δ_P = Σ_{K ∈ kinds} Δ_K for a cap of perSubject
// digests per subject and kind (SPEC.md §13.7).
func personSensitivity(kinds KindSet, perSubject uint32) uint32 {
	return uint32(kinds.Len()) * max(perSubject, 1)
}

// recordsMechanism returns m with the sensitivity Δ_P of SPEC.md §13.7.
func recordsMechanism(m dp.Mechanism, kinds KindSet, perSubject uint32) (dp.Mechanism, error) {
	num, den := m.EpsilonFraction()
	return dp.FromWire(m.Code(), num, den, personSensitivity(kinds, perSubject))
}

// kindsOf returns kinds[lo:hi], or nil for a list without kinds.
func kindsOf(kinds []Kind, lo, hi int) []Kind {
	if kinds == nil {
		return nil
	}
	return kinds[lo:hi]
}

// NewRecordsClient starts a record session in exact mode (SPEC.md §13.4)
// over the client's records. Each identifier an earlier record holds is
// dropped, and each record left empty (SPEC.md §13.2). cfg.Kind is not
// used: the kinds are the records' (rc.Kinds).
func NewRecordsClient(cfg ClientConfig, rc RecordsConfig, records [][]RecordID) (*Client, error) {
	if cfg.FalsePositive == 0 {
		cfg.FalsePositive = DefaultFalsePositive
	}
	if cfg.MaxServerSize == 0 || cfg.MaxServerSize > wire.MaxSetSize {
		cfg.MaxServerSize = wire.MaxSetSize
	}
	offer, err := offerSet(cfg.Suites)
	if err != nil {
		return nil, err
	}
	items, kinds, l, err := layoutRecords(rc, records, entropy(cfg.rand))
	if err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, offer: offer, items: items, workers: workerCount(cfg.Workers),
		rec: l, slotKinds: kinds}, nil
}

// mode is the session's mode: exact, or exact for records.
func (c *Client) mode() wire.Mode {
	if c.rec != nil {
		return wire.ModeExactRecords
	}
	return wire.ModeExact
}

// kindField is what the kind field of the server's parameters must echo:
// the session's kind, or a record session's kind set (SPEC.md §13.3).
func (l *recordsLayout) kindField(kind Kind) Kind {
	if l == nil {
		return kind
	}
	return Kind(l.kinds)
}

// announced is the n of the hello: the identifiers, or the records.
func (l *recordsLayout) announced(items int) int {
	if l == nil {
		return items
	}
	return l.n
}

// shape returns n and s, or 0 and 0 for an identifier-level session.
func (l *recordsLayout) shape() (n, slots int) {
	if l == nil {
		return 0, 0
	}
	return l.n, l.slots
}

// recordsHello returns a record session's opening, nil for an
// identifier-level session.
func (l *recordsLayout) recordsHello(mode wire.Mode, canonVersion, canonFlags uint16, offer wire.SuiteSet) *wire.RecordsHello {
	if l == nil {
		return nil
	}
	h := l.hello(mode, canonVersion, canonFlags)
	h.Suites = offer
	return h
}

func (c *Client) kindField() Kind { return c.rec.kindField(c.cfg.Kind) }
func (c *Client) announced() int  { return c.rec.announced(len(c.items)) }
func (c *Client) opening() marshaler {
	if c.rec != nil {
		return c.RecordsHello()
	}
	return c.Hello()
}

// Records returns the number of records a record session sends, and s; 0
// and 0 for an identifier-level session.
func (c *Client) Records() (n, slots int) { return c.rec.shape() }

// RecordsHello returns the message that opens a record session, nil for an
// identifier-level session.
func (c *Client) RecordsHello() *wire.RecordsHello {
	return c.rec.recordsHello(wire.ModeExactRecords, c.cfg.CanonVersion, c.cfg.CanonFlags, c.offer)
}

// NewPrivateRecordsClient starts a record session in private mode (SPEC.md
// §13.5) over the client's records, laid out as NewRecordsClient does:
// records and the slots within each in a random order, grouped by record.
func NewPrivateRecordsClient(cfg PrivateClientConfig, rc RecordsConfig, records [][]RecordID) (*PrivateClient, error) {
	if cfg.MaxServerSize == 0 {
		cfg.MaxServerSize = DefaultPrivateMaxServerSize
	}
	cfg.MaxServerSize = min(cfg.MaxServerSize, wire.MaxSetSize)
	offer, err := offerSet(cfg.Suites)
	if err != nil {
		return nil, err
	}
	items, kinds, l, err := layoutRecords(rc, records, entropy(cfg.rand))
	if err != nil {
		return nil, err
	}
	return &PrivateClient{cfg: cfg, offer: offer, items: items, workers: workerCount(cfg.Workers), rec: l, slotKinds: kinds}, nil
}

func (c *PrivateClient) kindField() Kind { return c.rec.kindField(c.cfg.Kind) }
func (c *PrivateClient) announced() int  { return c.rec.announced(len(c.items)) }
func (c *PrivateClient) slots() int      { _, s := c.rec.shape(); return s }

// Records returns the number of records a record session sends, and s; 0
// and 0 for an identifier-level session.
func (c *PrivateClient) Records() (n, slots int) { return c.rec.shape() }

// RecordsHello returns the message that opens a record session, nil for an
// identifier-level session.
func (c *PrivateClient) RecordsHello() *wire.RecordsHello {
	return c.rec.recordsHello(wire.ModePrivateRecords, c.cfg.CanonVersion, c.cfg.CanonFlags, c.offer)
}

func (c *PrivateClient) opening() marshaler {
	if c.rec != nil {
		return c.RecordsHello()
	}
	return c.Hello()
}
