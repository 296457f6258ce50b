package psi

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"strings"
	"testing"

	"filippo.io/edwards25519"

	"github.com/overlap-psi/overlap/psi/dp"
	"github.com/overlap-psi/overlap/psi/wire"
)

// serveLocalRecords is serveLocal for a record session: the RecordsHello,
// then serve.
func serveLocalRecords(sc *PipeConn, observe func(Sender, []byte), serve func(Conn, *wire.RecordsHello) error) <-chan error {
	errc := make(chan error, 1)
	go func() {
		_, hello, err := RecvOpening(sc)
		if err == nil && hello == nil {
			err = fmt.Errorf("a ClientHello opened a record session")
		}
		if err == nil {
			err = serve(observed{sc, FromServer, observe}, hello)
		}
		if err != nil {
			sc.Close()
		} else {
			sc.CloseSend()
		}
		errc <- err
	}()
	return errc
}

// runRecordsPipe plays a record session between c and s through a Pipe,
// with ServeRecords, every message through its wire encoding.
func runRecordsPipe[R any](c interface {
	Run(Conn, *Hooks) (R, error)
	Close()
}, s interface {
	ServeRecords(Conn, *wire.RecordsHello, *Hooks) error
	Close()
}, observe func(Sender, []byte)) (R, error) {
	return pipeSession(c, s.Close, func(sc *PipeConn) <-chan error {
		return serveLocalRecords(sc, observe, func(conn Conn, h *wire.RecordsHello) error { return s.ServeRecords(conn, h, nil) })
	}, observe)
}

// kindSets is a platform's matchable set of each kind.
type kindSets map[Kind][][32]byte

func (k kindSets) kinds() KindSet {
	var s KindSet
	for kind := range k {
		s |= wire.KindSetOf(kind)
	}
	return s
}

func (k kindSets) has(id RecordID) bool {
	for _, d := range k[id.Kind] {
		if d == id.Digest {
			return true
		}
	}
	return false
}

// plainCount is SPEC.md §13.1 in plain Go: the records with an identifier
// in the set of its kind, each identifier counted in its first record only
// (§13.2).
func plainCount(records [][]RecordID, sets kindSets) int {
	seen := make(map[RecordID]bool)
	c := 0
	for _, rec := range records {
		hit := false
		for _, id := range rec {
			if seen[id] {
				continue
			}
			seen[id] = true
			hit = hit || sets.has(id)
		}
		if hit {
			c++
		}
	}
	return c
}

func prepareRecords(t testing.TB, kinds KindSet, sets kindSets) *PreparedSet {
	t.Helper()
	return prepareRecordsSuite(t, Suite1, kinds, sets)
}

func prepareRecordsSuite(t testing.TB, suite Suite, kinds KindSet, sets kindSets) *PreparedSet {
	t.Helper()
	set := must(NewRecordsSet(SetConfig{Suite: suite}, kinds))
	for _, k := range kinds.Kinds() {
		for _, d := range sets[k] {
			if err := set.AddOf(k, d); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := set.Finish(); err != nil {
		t.Fatal(err)
	}
	return set
}

func preparePrivateRecords(t testing.TB, kinds KindSet, sets kindSets, perSubject uint32, ringers int, size func(int) int) *PrivateSet {
	t.Helper()
	return preparePrivateRecordsSuite(t, Suite1, kinds, sets, perSubject, ringers, size)
}

func preparePrivateRecordsSuite(t testing.TB, suite Suite, kinds KindSet, sets kindSets, perSubject uint32, ringers int, size func(int) int) *PrivateSet {
	t.Helper()
	set := must(NewPrivateRecordsSet(PrivateSetConfig{Ringers: ringers, size: size, blockShift: 3, Suite: suite}, kinds, perSubject))
	for _, k := range kinds.Kinds() {
		for _, d := range sets[k] {
			if err := set.AddOf(k, d); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := set.Finish(); err != nil {
		t.Fatal(err)
	}
	return set
}

func runExactRecords(t testing.TB, cc ClientConfig, rc RecordsConfig, sc ServerConfig, records [][]RecordID, set *PreparedSet) (Result, error) {
	t.Helper()
	c, err := NewRecordsClient(cc, rc, records)
	if err != nil {
		return Result{}, err
	}
	return runRecordsPipe(c, must(NewServer(sc, set)), nil)
}

func runPrivateRecords(t testing.TB, cc PrivateClientConfig, rc RecordsConfig, sc PrivateServerConfig, records [][]RecordID, set *PrivateSet) (PrivateResult, error) {
	t.Helper()
	c, err := NewPrivateRecordsClient(cc, rc, records)
	if err != nil {
		return PrivateResult{}, err
	}
	return runRecordsPipe(c, must(NewPrivateServer(sc, set)), nil)
}

// randomRecords returns a platform's sets of the given kinds and a list of
// records of 1 to maxIDs identifiers each, about half of them on the
// platform, some identifiers repeated across records.
func randomRecords(rng *mrand.Rand, kinds KindSet, nRecords, maxIDs, platform int) ([][]RecordID, kindSets) {
	tag := rng.Uint64()
	ks := kinds.Kinds()
	sets := kindSets{}
	for _, k := range ks {
		for i := range platform {
			sets[k] = append(sets[k], digest(fmt.Sprintf("%d-%v-%d", tag, k, i)))
		}
	}
	var records [][]RecordID
	for range nRecords {
		var rec []RecordID
		for range 1 + rng.IntN(maxIDs) {
			k := ks[rng.IntN(len(ks))]
			// Two thirds of the draws fall in [0, platform), the set.
			id := RecordID{Kind: k, Digest: digest(fmt.Sprintf("%d-%v-%d", tag, k, rng.IntN(platform*3/2)))}
			if rng.IntN(20) == 0 && len(records) > 0 {
				prev := records[rng.IntN(len(records))]
				id = prev[rng.IntN(len(prev))] // held by an earlier record
			}
			if !contains(rec, id) {
				rec = append(rec, id)
			}
		}
		records = append(records, rec)
	}
	return records, sets
}

func contains(rec []RecordID, id RecordID) bool {
	for _, x := range rec {
		if x == id {
			return true
		}
	}
	return false
}

// Both record modes count records (SPEC.md §13.1) as the plain computation
// does, with the noise fixed at 0 in mode 6, for random records of one to
// three kinds and slots from the largest record up to MaxSlots, in both
// ciphersuites (SPEC.md §13.3: the client offers both, the set's suite is
// chosen, and the dummies are hashed in it).
func TestRecordsMatchPlainCount(t *testing.T) {
	for _, suite := range []Suite{Suite1, Suite2} {
		t.Run(suite.String(), func(t *testing.T) { testRecordsMatchPlainCount(t, suite) })
	}
}

func testRecordsMatchPlainCount(t *testing.T, suite Suite) {
	rng := mrand.New(mrand.NewPCG(131, 132))
	offer := []Suite{Suite1, Suite2}
	for i, tc := range []struct {
		kinds    KindSet
		n, ids   int
		slots    int
		platform int
	}{
		{wire.KindSetOf(KindEmail), 50, 1, 0, 40},
		{wire.KindSetOf(KindEmail, KindPhone), 200, 2, 0, 120},
		{wire.KindSetOf(KindEmail, KindPhone), 150, 2, 5, 100},
		{wire.AllKinds, 300, 3, 0, 150},
		{wire.AllKinds, 120, 8, 8, 60},
		{wire.KindSetOf(KindPhone, KindID), 1, 1, 2, 5},
	} {
		records, sets := randomRecords(rng, tc.kinds, tc.n, tc.ids, tc.platform)
		want := plainCount(records, sets)
		rc := RecordsConfig{Kinds: tc.kinds, Slots: tc.slots}
		exact, err := runExactRecords(t, ClientConfig{Suites: offer}, rc, ServerConfig{ChunkSize: 1 + rng.IntN(100)}, records,
			prepareRecordsSuite(t, suite, tc.kinds, sets))
		if err != nil {
			t.Fatalf("case %d: exact: %v", i, err)
		}
		priv, err := runPrivateRecords(t, PrivateClientConfig{Suites: offer}, rc,
			PrivateServerConfig{Threshold: 1, ChunkSize: 1 + rng.IntN(100), noise: fixedNoise(0)},
			records, preparePrivateRecordsSuite(t, suite, tc.kinds, sets, 1, 16, unpadded))
		if err != nil {
			t.Fatalf("case %d: private: %v", i, err)
		}
		if exact.Overlap != want || priv.Count != want && !(want == 0 && priv.Below) {
			t.Errorf("case %d: exact %d, private %d, plain %d", i, exact.Overlap, priv.Count, want)
		}
		if exact.ClientSize != priv.ClientSize || exact.Slots != priv.Slots || exact.Slots < tc.slots || exact.Slots == 0 {
			t.Errorf("case %d: sizes %d/%d slots %d/%d", i, exact.ClientSize, priv.ClientSize, exact.Slots, priv.Slots)
		}
		t.Logf("case %d: %d of %d records, %d slots", i, want, exact.ClientSize, exact.Slots)
	}
}

// A record matched through two identifiers counts once, a record matched
// through none counts nothing, and an identifier held by an earlier record
// counts only there (SPEC.md §13.2).
func TestRecordMatchedTwiceCountsOnce(t *testing.T) {
	e := func(s string) RecordID { return RecordID{KindEmail, digest("e" + s)} }
	p := func(s string) RecordID { return RecordID{KindPhone, digest("p" + s)} }
	sets := kindSets{KindEmail: {e("1").Digest, e("2").Digest}, KindPhone: {p("1").Digest, p("3").Digest}}
	kinds := wire.KindSetOf(KindEmail, KindPhone)
	for _, tc := range []struct {
		name    string
		records [][]RecordID
		want    int
	}{
		{"both identifiers match", [][]RecordID{{e("1"), p("1")}}, 1},
		{"twice and once", [][]RecordID{{e("1"), p("1")}, {e("2")}, {p("9")}}, 2},
		{"identifier held by an earlier record", [][]RecordID{{e("9"), p("3")}, {e("8"), p("3")}}, 1},
		{"none", [][]RecordID{{e("9"), p("9")}}, 0},
	} {
		if got := plainCount(tc.records, sets); got != tc.want {
			t.Fatalf("%s: plain count %d, want %d", tc.name, got, tc.want)
		}
		exact, err := runExactRecords(t, ClientConfig{}, RecordsConfig{Kinds: kinds, Slots: 2}, ServerConfig{}, tc.records, prepareRecords(t, kinds, sets))
		if err != nil {
			t.Fatal(err)
		}
		priv, err := runPrivateRecords(t, PrivateClientConfig{}, RecordsConfig{Kinds: kinds, Slots: 2},
			PrivateServerConfig{Threshold: 1, noise: fixedNoise(0)}, tc.records, preparePrivateRecords(t, kinds, sets, 1, 4, unpadded))
		if err != nil {
			t.Fatal(err)
		}
		if exact.Overlap != tc.want || priv.Count != tc.want && !(tc.want == 0 && priv.Below) {
			t.Errorf("%s: exact %d, private %d, want %d", tc.name, exact.Overlap, priv.Count, tc.want)
		}
	}
}

// The client's list is n·s valid, distinct elements (dummies included),
// RecordsHello announces n and s, and the layout holds each record's
// identifiers in one group of s slots, records and slots permuted
// (SPEC.md §13.2).
func TestRecordsLayout(t *testing.T) {
	id := func(k Kind, i int) RecordID { return RecordID{k, digest(fmt.Sprintf("%v%d", k, i))} }
	var records [][]RecordID
	for i := range 40 {
		rec := []RecordID{id(KindEmail, i)}
		if i%2 == 0 {
			rec = append(rec, id(KindPhone, i))
		}
		records = append(records, rec)
	}
	records = append(records, []RecordID{id(KindEmail, 0)}) // a duplicate, dropped
	digests, kinds, l, err := layoutRecords(RecordsConfig{Slots: 3}, records, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.n != 40 || l.slots != 3 || l.kinds != wire.KindSetOf(KindEmail, KindPhone) || len(digests) != 120 || len(kinds) != 120 {
		t.Fatalf("layout %+v, %d slots", *l, len(digests))
	}
	firstGroupOf := make(map[[32]byte]int)
	dummies, moved := 0, 0
	for j := range l.n {
		var email, phone int = -1, -1
		for i := j * 3; i < j*3+3; i++ {
			switch kinds[i] {
			case dummyKind:
				dummies++
			case KindEmail:
				fmt.Sscan(strings.TrimPrefix(findName(digests[i], KindEmail), "email"), &email)
			case KindPhone:
				fmt.Sscan(strings.TrimPrefix(findName(digests[i], KindPhone), "phone"), &phone)
			}
			firstGroupOf[digests[i]] = j
		}
		if email < 0 || (email%2 == 0) != (phone == email) || email%2 == 1 && phone != -1 {
			t.Errorf("record %d holds email %d and phone %d", j, email, phone)
		}
		if email != j {
			moved++
		}
	}
	if dummies != 120-60 || len(firstGroupOf) != 120 {
		t.Errorf("%d dummies, %d distinct slots", dummies, len(firstGroupOf))
	}
	if moved < 30 {
		t.Errorf("only %d of 40 records moved: the records are not permuted", moved)
	}
	for _, bad := range []struct {
		rc      RecordsConfig
		records [][]RecordID
	}{
		{RecordsConfig{Slots: 1}, records},                                // fewer slots than the largest record
		{RecordsConfig{Slots: 9}, records},                                // more than MaxSlots
		{RecordsConfig{Kinds: wire.KindSetOf(KindEmail)}, records},        // a kind outside the announced set
		{RecordsConfig{}, [][]RecordID{{}, {}}},                           // no identifier
		{RecordsConfig{}, [][]RecordID{{{Kind: 7, Digest: [32]byte{1}}}}}, // unknown kind
	} {
		if _, _, _, err := layoutRecords(bad.rc, bad.records, nil); err == nil {
			t.Errorf("%+v accepted", bad.rc)
		}
	}
}

// findName finds which test identifier a digest is, by brute force over
// the small range TestRecordsLayout uses.
func findName(d [32]byte, k Kind) string {
	for i := range 40 {
		if name := fmt.Sprintf("%v%d", k, i); digest(name) == d {
			return name
		}
	}
	return ""
}

// A dummy is hashed under its own DST, so it is a valid group element,
// never the hash of an identifier of any kind of the same bytes.
func TestDummyDST(t *testing.T) {
	msg := digest("x")
	d := r255NewElement()
	dummyHasher.Hash(d, msg[:])
	for _, k := range Kinds {
		e := r255NewElement()
		hashers[k].Hash(e, msg[:])
		if e.Equal(d) {
			t.Errorf("the dummy hash equals the %v hash", k)
		}
	}
	if bytes.Contains(dummyDST, []byte("email")) || !bytes.HasPrefix(dummyDST, []byte("OVERLAP-V1-")) {
		t.Errorf("dummy DST %q", dummyDST)
	}
	// Suite 2: DST2 with the name "dummy" (SPEC.md §13.2, §12.3), and a
	// dummy's hash is none of the kinds'.
	if string(DST2(dummyKind)) != "OVERLAP-V1-dummy-curve25519_XMD:SHA-512_ELL2_RO_" {
		t.Errorf("suite-2 dummy DST %q", DST2(dummyKind))
	}
	d2 := make([][32]byte, 1)
	s2HashBatch(dummyKind, [][32]byte{msg}, d2)
	for _, k := range Kinds {
		e := make([][32]byte, 1)
		s2HashBatch(k, [][32]byte{msg}, e)
		if e[0] == d2[0] {
			t.Errorf("the suite-2 dummy hash equals the %v hash", k)
		}
	}
	// hashSlots hashes each slot under its own kind, in both suites.
	kinds := []Kind{KindEmail, dummyKind, KindPhone, dummyKind, KindEmail}
	ds := [][32]byte{digest("a"), digest("b"), digest("c"), digest("d"), digest("e")}
	for _, s := range []Suite{Suite1, Suite2} {
		var slots, one points
		slots.grow(s, len(ds))
		hashSlots(s, kinds, ds, &slots, 0, len(ds))
		for i := range ds {
			one.grow(s, 1)
			hashInto(s, kinds[i], ds[i:i+1], &one, 0, 1)
			same := s == Suite2 && one.s2[0] == slots.s2[i] || s == Suite1 && one.s1[0].Equal(&slots.s1[i])
			if !same {
				t.Errorf("suite %v: slot %d hashed unlike its kind %v", s, i, kinds[i])
			}
		}
	}
}

// The server permutes whole records and the slots within each (SPEC.md
// §13.4 step 2): every group of s after the permutation is a group of
// before, and records move.
func TestPermuteRecords(t *testing.T) {
	const n, s = 64, 3
	buf := make([]byte, n*s*32)
	for i := range n * s {
		buf[i*32] = byte(i / s)
		buf[i*32+1] = byte(i % s)
	}
	if err := permuteRecords(entropy(nil), buf, s); err != nil {
		t.Fatal(err)
	}
	moved, slotMoved := 0, 0
	seen := make(map[byte]bool)
	for j := range n {
		rec := buf[j*s*32]
		slots := map[byte]bool{}
		for i := range s {
			e := buf[(j*s+i)*32:]
			if e[0] != rec {
				t.Fatalf("group %d mixes records %d and %d", j, rec, e[0])
			}
			slots[e[1]] = true
			if e[1] != byte(i) {
				slotMoved++
			}
		}
		if len(slots) != s || seen[rec] {
			t.Fatalf("group %d: slots %v, record %d seen before: %v", j, slots, rec, seen[rec])
		}
		seen[rec] = true
		if rec != byte(j) {
			moved++
		}
	}
	if moved < n/2 || slotMoved < n/2 {
		t.Errorf("%d records and %d slots moved", moved, slotMoved)
	}
}

// A server refuses, before any multiplication, a record hello outside its
// policy, a record hello on a set of one kind and an identifier hello on a
// record set (SPEC.md §13.3).
func TestRecordsServerPolicy(t *testing.T) {
	ep := wire.KindSetOf(KindEmail, KindPhone)
	sets := kindSets{KindEmail: {digest("a")}, KindPhone: {digest("b")}}
	hello := func(mode wire.Mode, kinds KindSet, canon uint16, slots uint8, n uint32) *wire.RecordsHello {
		return &wire.RecordsHello{Mode: mode, Kinds: kinds, CanonVersion: canon, Slots: slots, Records: n}
	}
	cfg := ServerConfig{CanonVersion: 1, MinClientSize: 10, MaxClientSize: 1000}
	pcfg := PrivateServerConfig{CanonVersion: 1, MinClientSize: 10, MaxClientSize: 1000}
	for _, tc := range []struct {
		name  string
		h     *wire.RecordsHello
		check string
	}{
		{"private records on exact", hello(wire.ModePrivateRecords, ep, 1, 2, 100), CheckMode},
		{"a kind without a set", hello(wire.ModeExactRecords, wire.AllKinds, 1, 2, 100), CheckKind},
		{"a subset of the kinds", hello(wire.ModeExactRecords, wire.KindSetOf(KindEmail), 1, 2, 100), CheckKind},
		{"canonicalization", hello(wire.ModeExactRecords, ep, 2, 2, 100), CheckCanonicalization},
		{"too few records", hello(wire.ModeExactRecords, ep, 1, 8, 9), CheckMinListSize},
		{"too many records", hello(wire.ModeExactRecords, ep, 1, 1, 1001), CheckMaxListSize},
	} {
		s := must(NewServer(cfg, prepareRecords(t, ep, sets)))
		_, err := s.ReceiveRecordsHello(tc.h)
		var he *HelloError
		if !errors.Is(err, ErrParams) || !errors.As(err, &he) || he.Check != tc.check {
			t.Errorf("exact, %s: %v, want check %q", tc.name, err, tc.check)
		}
		ph := *tc.h
		ph.Mode ^= wire.ModeExactRecords ^ wire.ModePrivateRecords
		ps := must(NewPrivateServer(pcfg, preparePrivateRecords(t, ep, sets, 1, 4, unpadded)))
		if _, err := ps.ReceiveRecordsHello(&ph); !errors.As(err, &he) || he.Check != tc.check || ps.Disclosed() {
			t.Errorf("private, %s: %v, want check %q", tc.name, err, tc.check)
		}
	}
	// n·s above the protocol's elements is refused by RecordsLimits too.
	l := RecordsLimits{Mode: wire.ModeExactRecords, Kinds: ep, MaxRecords: 1 << 30, MaxElements: 100}
	if err := l.Check(hello(wire.ModeExactRecords, ep, 0, 2, 51)); err == nil {
		t.Error("n·s above MaxElements accepted")
	}
	if err := l.Check(hello(wire.ModeExactRecords, ep, 0, 2, 50)); err != nil {
		t.Errorf("n·s = MaxElements: %v", err)
	}
	// A set of one kind refuses a record hello; a record set refuses an
	// identifier hello.
	s := must(NewServer(cfg, prepare(t, KindEmail, [][32]byte{digest("a")})))
	if _, err := s.ReceiveRecordsHello(hello(wire.ModeExactRecords, wire.KindSetOf(KindEmail), 1, 1, 100)); !errors.Is(err, ErrParams) {
		t.Errorf("record hello on an identifier set: %v", err)
	}
	s = must(NewServer(cfg, prepareRecords(t, ep, sets)))
	if _, err := s.ReceiveHello(&wire.ClientHello{Mode: wire.ModeExact, Kind: KindEmail, CanonVersion: 1, ClientSize: 100}); !errors.Is(err, ErrParams) {
		t.Errorf("identifier hello on a record set: %v", err)
	}
	ps := must(NewPrivateServer(pcfg, preparePrivateRecords(t, ep, sets, 1, 4, unpadded)))
	if _, err := ps.ReceiveHello(&wire.ClientHello{Mode: wire.ModePrivate, Kind: KindEmail, CanonVersion: 1, ClientSize: 100}); !errors.Is(err, ErrParams) {
		t.Errorf("identifier hello on a private record set: %v", err)
	}
	// AddOf refuses a kind outside the set, and Add after Finish.
	rs := must(NewRecordsSet(SetConfig{}, wire.KindSetOf(KindEmail)))
	if err := rs.AddOf(KindPhone, digest("x")); !errors.Is(err, ErrParams) {
		t.Errorf("AddOf of another kind: %v", err)
	}
	if _, err := NewRecordsSet(SetConfig{}, 0); err == nil {
		t.Error("empty kind set accepted")
	}
	if _, err := NewPrivateRecordsSet(PrivateSetConfig{Epoch: true}, ep, 1); err == nil {
		t.Error("an epoch record set accepted")
	}
}

// A modified client that puts one identifier in two records sends equal
// elements, which the server refuses in both modes (SPEC.md §13.2, §13.7
// test plan (3)); the honest client never does.
func TestRecordsServerRefusesAnIdentifierInTwoRecords(t *testing.T) {
	ep := wire.KindSetOf(KindEmail, KindPhone)
	sets := kindSets{KindEmail: {digest("a")}, KindPhone: {digest("b")}}
	records := [][]RecordID{{{KindEmail, digest("a")}}, {{KindPhone, digest("b")}}, {{KindEmail, digest("c")}}}
	c := must(NewRecordsClient(ClientConfig{}, RecordsConfig{Slots: 2}, records))
	// The modified client: its layout with one slot copied into another
	// record.
	c.items[2], c.slotKinds[2] = c.items[0], c.slotKinds[0]
	s := must(NewServer(ServerConfig{}, prepareRecords(t, ep, sets)))
	if _, err := runRecordsPipe(c, s, nil); !errors.Is(err, ErrPeer) || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("exact: %v, want a duplicate refused", err)
	}
	pc := must(NewPrivateRecordsClient(PrivateClientConfig{}, RecordsConfig{Slots: 2}, records))
	pc.items[2], pc.slotKinds[2] = pc.items[0], pc.slotKinds[0]
	ps := must(NewPrivateServer(PrivateServerConfig{Threshold: 1, noise: fixedNoise(0)}, preparePrivateRecords(t, ep, sets, 1, 4, unpadded)))
	if _, err := runRecordsPipe(pc, ps, nil); !errors.Is(err, ErrPeer) || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("private: %v, want a duplicate refused", err)
	}
}

// The client checks the echoes of a record session's parameters (SPEC.md
// §13.3) and, in mode 6, refuses a sensitivity below the number of kinds
// (§13.5).
func TestRecordsClientChecksParams(t *testing.T) {
	records := [][]RecordID{{{KindEmail, digest("a")}, {KindPhone, digest("b")}}}
	rc := RecordsConfig{}
	good := wire.ServerParams{Mode: wire.ModeExactRecords, Kind: Kind(wire.KindSetOf(KindEmail, KindPhone)), ClientSize: 1,
		ServerSize: 1024, GCSM: 1 << 30, GCSK: 20, ChunkSize: 10}
	if err := must(NewRecordsClient(ClientConfig{}, rc, records)).ReceiveParams(&good); err != nil {
		t.Fatalf("good params: %v", err)
	}
	for name, mutate := range map[string]func(*wire.ServerParams){
		"exact mode":        func(p *wire.ServerParams) { p.Mode = wire.ModeExact },
		"kinds":             func(p *wire.ServerParams) { p.Kind = Kind(wire.AllKinds) },
		"a kind":            func(p *wire.ServerParams) { p.Kind = KindEmail },
		"n·s echoed":        func(p *wire.ServerParams) { p.ClientSize = 2 },
		"M too small for 2": func(p *wire.ServerParams) { p.GCSM = 1_500_000 },
	} {
		p := good
		mutate(&p)
		if err := must(NewRecordsClient(ClientConfig{}, rc, records)).ReceiveParams(&p); !errors.Is(err, ErrParams) {
			t.Errorf("%s: %v", name, err)
		}
	}
	pgood := wire.PrivateParams{Mode: wire.ModePrivateRecords, Kind: good.Kind, ClientSize: 1, ServerSize: 1024, ChunkSize: 10,
		Mechanism: dp.CodeDiscreteLaplace, EpsNum: 1, EpsDen: 2, Sensitivity: 2, Threshold: 1}
	if err := must(NewPrivateRecordsClient(PrivateClientConfig{}, rc, records)).ReceiveParams(&pgood); err != nil {
		t.Fatalf("good private params: %v", err)
	}
	for name, mutate := range map[string]func(*wire.PrivateParams){
		"private mode":           func(p *wire.PrivateParams) { p.Mode = wire.ModePrivate },
		"kinds":                  func(p *wire.PrivateParams) { p.Kind = KindPhone },
		"n":                      func(p *wire.PrivateParams) { p.ClientSize = 2 },
		"sensitivity 1, 2 kinds": func(p *wire.PrivateParams) { p.Sensitivity = 1 },
	} {
		p := pgood
		mutate(&p)
		if err := must(NewPrivateRecordsClient(PrivateClientConfig{}, rc, records)).ReceiveParams(&p); !errors.Is(err, ErrParams) {
			t.Errorf("private %s: %v", name, err)
		}
	}
}

// Mode 6 noises the count of records with the person-level sensitivity
// Δ_P = Σ_K Δ_K (SPEC.md §13.7): the sampler is given Δ_P, the parameters
// and the release carry it, and with ε = 1/2 and Δ_P = 2 the 95% half-width
// is 12 (the values of ε = 1/4, Δ = 1).
func TestPrivateRecordsSensitivity(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(133, 134))
	for _, tc := range []struct {
		kinds      KindSet
		perSubject uint32
		configured uint32 // the configured mechanism's Δ
		want       uint32
	}{
		{wire.KindSetOf(KindEmail, KindPhone), 1, 1, 2},
		{wire.AllKinds, 1, 1, 3},
		{wire.KindSetOf(KindEmail, KindPhone), 3, 1, 6},
		{wire.KindSetOf(KindEmail), 1, 1, 1},
		{wire.KindSetOf(KindEmail, KindPhone), 1, 5, 5}, // a larger configured Δ is kept
	} {
		records, sets := randomRecords(rng, tc.kinds, 300, 2, 200)
		var sampled dp.Mechanism
		m := must(dp.NewDiscreteLaplace(big.NewRat(1, 2), tc.configured))
		res, err := runPrivateRecords(t, PrivateClientConfig{}, RecordsConfig{},
			PrivateServerConfig{Mechanism: m, Threshold: 1, noise: func(m dp.Mechanism) (int64, error) { sampled = m; return 0, nil }},
			records, preparePrivateRecords(t, tc.kinds, sets, tc.perSubject, 8, unpadded))
		if err != nil {
			t.Fatal(err)
		}
		if sampled.Sensitivity() != tc.want || res.Mechanism.Sensitivity() != tc.want {
			t.Errorf("%v, Δ_K = %d: sampled with Δ = %d, released Δ = %d, want %d", tc.kinds, tc.perSubject, sampled.Sensitivity(), res.Mechanism.Sensitivity(), tc.want)
		}
		if want := must(dp.NewDiscreteLaplace(big.NewRat(1, 2), tc.want)).HalfWidth95(); int64(res.High-res.Low) > 2*want || res.Count-res.Low != int(want) && res.Low != 0 {
			t.Errorf("interval [%d, %d] around %d, half-width %d", res.Low, res.High, res.Count, want)
		}
	}
	if w := must(dp.NewDiscreteLaplace(big.NewRat(1, 2), 2)).HalfWidth95(); w != 12 {
		t.Errorf("ε = 1/2, Δ = 2: half-width %d, SPEC.md §13.7 says 12", w)
	}
}

// The release of mode 6 is the release of SPEC.md §10.6 over records: the
// noise is added, clamped to [0, n records] and thresholded, and below the
// threshold the release is the same bytes, but for the session id,
// whatever the true count and the noise.
func TestPrivateRecordsRelease(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(135, 136))
	kinds := wire.KindSetOf(KindEmail, KindPhone)
	records, sets := randomRecords(rng, kinds, 200, 2, 150)
	c := plainCount(records, sets)
	n := len(records) // randomRecords' repeats can empty no record: each keeps its first draw or a repeat
	for _, tc := range []struct {
		noise int64
		below bool
		count int
	}{{0, false, c}, {7, false, c + 7}, {-9, false, c - 9}, {1000, false, -1}, {-1000, true, 0}} {
		res, err := runPrivateRecords(t, PrivateClientConfig{}, RecordsConfig{},
			PrivateServerConfig{noise: fixedNoise(tc.noise)}, records, preparePrivateRecords(t, kinds, sets, 1, 8, unpadded))
		if err != nil {
			t.Fatal(err)
		}
		want := tc.count
		if want < 0 {
			want = res.ClientSize // clamped at n
		}
		if res.Below != tc.below || res.Count != want || res.ClientSize > n || res.Mechanism.Sensitivity() != 2 {
			t.Errorf("noise %+d: %+v, want below=%v count=%d", tc.noise, res, tc.below, want)
		}
	}
	var first []byte
	for _, tc := range []struct {
		overlap int
		noise   int64
	}{{0, 0}, {5, -3}, {50, 40}, {99, 0}, {130, -40}} {
		// overlap records, each matched through both its identifiers or
		// one, out of 150.
		var recs [][]RecordID
		sets := kindSets{}
		for i := range 150 {
			e := RecordID{KindEmail, digest(fmt.Sprintf("below-e%d", i))}
			p := RecordID{KindPhone, digest(fmt.Sprintf("below-p%d", i))}
			recs = append(recs, []RecordID{e, p})
			if i < tc.overlap {
				sets[KindEmail] = append(sets[KindEmail], e.Digest)
				if i%2 == 0 {
					sets[KindPhone] = append(sets[KindPhone], p.Digest)
				}
			}
		}
		sets[KindEmail] = append(sets[KindEmail], digest("platform-only"))
		sets[KindPhone] = append(sets[KindPhone], digest("platform-only"))
		pc := must(NewPrivateRecordsClient(PrivateClientConfig{}, RecordsConfig{}, recs))
		ps := must(NewPrivateServer(PrivateServerConfig{noise: fixedNoise(tc.noise)}, preparePrivateRecords(t, kinds, sets, 1, 8, unpadded)))
		var release []byte
		res, err := runRecordsPipe(pc, ps, func(_ Sender, b []byte) {
			if wire.Type(b[1]) == wire.TypePrivateRelease {
				release = bytes.Clone(b)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Below || res.Count != 0 {
			t.Fatalf("overlap %d, noise %+d: %+v, want below the threshold", tc.overlap, tc.noise, res)
		}
		clear(release[2:18])
		if first == nil {
			first = release
		} else if !bytes.Equal(release, first) {
			t.Errorf("overlap %d, noise %+d: release %x differs from %x", tc.overlap, tc.noise, release, first)
		}
	}
}

// The person-level bound of SPEC.md §13.7 on the server's own count:
// platforms of subjects with up to Δ_K digests of each kind, and lists
// that hold a subject's identifiers together or each in a record of its
// own (the adversarial layout). Removing one subject changes the count
// that mode 6 computes (noise fixed at 0) by at most Σ_K Δ_K, and by
// exactly that in the adversarial layout, so a mechanism given max_K Δ_K
// would be too small.
func TestPrivateRecordsPersonSensitivity(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(137, 138))
	kinds := wire.KindSetOf(KindEmail, KindPhone)
	const subjects, perKind = 12, 2
	type subject []RecordID
	platform := make([]subject, subjects)
	for u := range platform {
		for _, k := range kinds.Kinds() {
			for i := range 1 + rng.IntN(perKind) {
				platform[u] = append(platform[u], RecordID{k, digest(fmt.Sprintf("u%d-%v-%d", u, k, i))})
			}
		}
	}
	setsWithout := func(skip int) kindSets {
		s := kindSets{KindEmail: {digest("pad-e")}, KindPhone: {digest("pad-p")}}
		for u, ids := range platform {
			if u != skip {
				for _, id := range ids {
					s[id.Kind] = append(s[id.Kind], id.Digest)
				}
			}
		}
		return s
	}
	count := func(records [][]RecordID, sets kindSets) int {
		res, err := runPrivateRecords(t, PrivateClientConfig{}, RecordsConfig{Slots: 2 * perKind},
			PrivateServerConfig{Threshold: 1, noise: fixedNoise(0)}, records, preparePrivateRecords(t, kinds, sets, perKind, 4, unpadded))
		if err != nil {
			t.Fatal(err)
		}
		if res.Below {
			return 0
		}
		return res.Count
	}
	bound := int(personSensitivity(kinds, perKind))
	for _, layout := range []string{"together", "apart"} {
		var records [][]RecordID
		for _, ids := range platform {
			if layout == "together" {
				records = append(records, ids)
				continue
			}
			for _, id := range ids {
				records = append(records, []RecordID{id})
			}
		}
		full := count(records, setsWithout(-1))
		if want := plainCount(records, setsWithout(-1)); full != want {
			t.Fatalf("%s: server count %d, plain %d", layout, full, want)
		}
		worst := 0
		for u := range 4 { // four subjects: each count is a session
			d := full - count(records, setsWithout(u))
			if d < 0 || d > bound {
				t.Errorf("%s: removing subject %d changes the count by %d, above Δ_P = %d", layout, u, d, bound)
			}
			if layout == "apart" && d != len(platform[u]) {
				t.Errorf("apart: removing subject %d with %d identifiers changes the count by %d", u, len(platform[u]), d)
			}
			worst = max(worst, d)
		}
		if layout == "together" && worst != 1 {
			t.Errorf("together: the largest change is %d, want 1", worst)
		}
	}
	// A subject with Δ_K digests of each kind, apart, changes the count by
	// exactly Σ_K Δ_K: more than max_K Δ_K.
	full := subject{}
	for _, k := range kinds.Kinds() {
		for i := range perKind {
			full = append(full, RecordID{k, digest(fmt.Sprintf("full-%v-%d", k, i))})
		}
	}
	platform[0] = full
	var records [][]RecordID
	for _, id := range full {
		records = append(records, []RecordID{id})
	}
	if d := count(records, setsWithout(-1)) - count(records, setsWithout(0)); d != bound || d <= perKind {
		t.Errorf("the full subject apart changes the count by %d, want Δ_P = %d > max Δ_K = %d", d, bound, perKind)
	}
}

// The ringer check catches in mode 6 the deviations it catches in mode 2
// (SPEC.md §13.7 test plan (5)): the check does not depend on the client's
// list, and a record session's set mixes its kinds with the ringers.
func TestPrivateRecordsDeviationIsCaught(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(139, 140))
	kinds := wire.KindSetOf(KindEmail, KindPhone)
	for name, d := range deviations {
		for run := range 5 {
			records, sets := randomRecords(rng, kinds, 10, 2, 8)
			set := preparePrivateRecords(t, kinds, sets, 1, 16, unpadded)
			ringerKeys := make([]edwards25519.Scalar, len(set.ringers))
			for j := range set.ringers { // the test plays the server and knows them
				ringerKeys[j].Set(set.ringers[j].s1.k)
			}
			c := must(NewPrivateRecordsClient(PrivateClientConfig{}, RecordsConfig{}, records))
			s := must(NewPrivateServer(PrivateServerConfig{ChunkSize: 7, noise: fixedNoise(0)}, set))
			if err := c.ReceiveParams(must(s.ReceiveRecordsHello(c.RecordsHello()))); err != nil {
				t.Fatal(err)
			}
			err := deviateAfterHello(t, rng, c, s, ringerKeys, d.dev)
			if d.want == nil && err != nil || d.want != nil && !errors.Is(err, d.want) {
				t.Fatalf("%s, run %d: %v, want %v", name, run, err, d.want)
			}
		}
	}
}
