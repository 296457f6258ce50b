package harness

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"time"

	"filippo.io/edwards25519"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/wire"
)

// PrivateCheck is the release of a private-mode run and how it was checked
// against the true overlap c.
//
// A private release is noised (SPEC.md §10.6) and the library keeps c to
// itself: it offers no hook outside its own tests that fixes the noise or
// reveals c. So the harness checks the release against the truth with a
// tail bound of the noise: with W the least w with P(|Z| ≤ w) ≥ 1 − 10^-9
// (dp.Mechanism.HalfWidth), a released count v must have |v − c| ≤ W, and a
// release below the threshold T needs c < T + W. Clamping to [0, n] only
// moves v towards c. An honest run fails this check with probability below
// 10^-9, a wrong count off by more than W always does. Whether c lies in the
// release's own 95% interval is recorded too (InInterval), and is expected
// to fail in about one run in twenty: it is not checked.
type PrivateCheck struct {
	Mechanism  string `json:"mechanism"`
	Threshold  int    `json:"threshold"`
	Below      bool   `json:"below_threshold"`
	Released   int    `json:"released"` // 0 when Below
	Low        int    `json:"low"`      // the release's 95% interval
	High       int    `json:"high"`
	TailBound  int    `json:"tail_bound"` // W
	InInterval bool   `json:"true_in_95_interval"`
}

// privateTail is 1 − the probability of the tail bound of PrivateCheck.
var privateTail = big.NewRat(1, 1_000_000_000)

func (pc *PrivateCheck) summary(truth int) string {
	if pc == nil {
		return ""
	}
	if pc.Below {
		return fmt.Sprintf("released below %d, true %d (bound %d)", pc.Threshold, truth, pc.TailBound)
	}
	return fmt.Sprintf("released %d [%d, %d], true %d (bound ±%d)", pc.Released, pc.Low, pc.High, truth, pc.TailBound)
}

// checkPrivate fills r.Private from res and fails with ErrWrongCount if the
// release is not consistent with the true overlap.
func checkPrivate(r *Run, res psi.PrivateResult) error {
	level := new(big.Rat).Sub(big.NewRat(1, 1), privateTail)
	w, err := res.Mechanism.HalfWidth(level)
	if err != nil {
		return fmt.Errorf("harness: the noise's tail bound: %w", err)
	}
	c := r.TrueOverlap
	pc := &PrivateCheck{Mechanism: res.Mechanism.String(), Threshold: res.Threshold, Below: res.Below,
		Released: res.Count, Low: res.Low, High: res.High, TailBound: int(w), InInterval: res.Low <= c && c <= res.High}
	r.Private, r.Counted = pc, res.Count
	ok := !res.Below && abs(res.Count-c) <= int(w) || res.Below && int64(c) < int64(res.Threshold)+w
	if !ok {
		return fmt.Errorf("%w: %s, client %d, server %d: %s; the noise exceeds that bound with probability below %v",
			ErrWrongCount, r.Mode, r.Client, r.Server, pc.summary(c), privateTail.FloatString(9))
	}
	return nil
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// measureBaseMult times n fixed-base scalar multiplications (the ringers of
// private mode, SPEC.md §10.3) on the calling goroutine, through the same
// edwards25519 code psi uses, and returns the mean.
func measureBaseMult(n int) time.Duration {
	n = max(n, 1)
	scalars := make([]*edwards25519.Scalar, min(n, 64))
	for i := range scalars {
		var b [64]byte
		rand.Read(b[:])
		scalars[i], _ = edwards25519.NewScalar().SetUniformBytes(b[:])
	}
	p := new(edwards25519.Point)
	start := time.Now()
	for i := range n {
		p.ScalarBaseMult(scalars[i%len(scalars)])
	}
	return time.Since(start) / time.Duration(n)
}

// runPrivate runs one private-mode session with both roles in this
// process, every message through its wire encoding, and measures each
// phase (SPEC.md §10.1).
func runPrivate(cfg Config, p Pair, rep *Report, oc psi.OpCosts, base time.Duration) (Run, error) {
	var r Run
	d, b := startInProcess(cfg, p, ModePrivate, &r)
	add := b.add

	// Server: encode its set, with ringers (a pool could do this ahead of
	// the session, SPEC.md §10.3).
	m := startMeter()
	set, err := privateSet(d.seed, d.server, cfg.suite)
	if err != nil {
		return r, err
	}
	add(m.end("server: encode set (hash, multiply; ringers: fixed-base multiply; shuffle)", "server", d.server))
	setDone := time.Now()
	r.ServerPadded = set.Size()
	r.Ringers = r.ServerPadded - d.server

	c, err := psi.NewPrivateClient(psi.PrivateClientConfig{Kind: psi.KindEmail, Suites: []psi.Suite{cfg.suite}}, d.client)
	if err != nil {
		set.Destroy()
		return r, err
	}
	defer c.Close()
	s, err := psi.NewPrivateServer(psi.PrivateServerConfig{}, set)
	if err != nil {
		set.Destroy()
		return r, err
	}
	defer s.Close()
	sh := &shipper{r: &r}
	ship := sh.ship
	if err := privateOpening(sh, c, s); err != nil {
		return r, err
	}

	// The server's elements, streamed; the client raises each to its key.
	m = startMeter()
	elemBytes, err := relay(sh, psi.FromServer, wire.TypeServerElements, s.NextServerElements, c.ReceiveServerElements)
	if err != nil {
		return r, err
	}
	add(m.end("client: raise server elements (check, multiply, duplicate check, shuffle)", "client", r.ServerPadded))

	m = startMeter()
	key, err := c.ClientKey()
	if err != nil {
		return r, err
	}
	var k wire.ClientKey
	if err := k.UnmarshalBinary(ship(psi.FromClient, key)); err != nil {
		return r, err
	}
	if err := s.ReceiveClientKey(&k); err != nil {
		return r, err
	}
	add(m.end("server: ringer images (multiply)", "server", r.Ringers))

	// The client's own list: hash and blind. Then the server raises it.
	m = startMeter()
	blinded, err := collect(sh, psi.FromClient, c.NextBlinded)
	if err != nil {
		return r, err
	}
	ct := c.Timings()
	addHashBlind(add, m.end("client: hash and blind", "client", p.Client), "client: ", ct.Hash, ct.Blind, p.Client)

	m = startMeter()
	if err := deliver(blinded, wire.TypeBlinded, s.ReceiveBlinded); err != nil {
		return r, err
	}
	blinded = nil
	add(m.end("server: evaluate (check, multiply, duplicate check)", "server", p.Client))

	// The client returns the raised elements; the server checks them,
	// makes the ringer check and counts.
	m = startMeter()
	if _, err := relay(sh, psi.FromClient, wire.TypeReturned, c.NextReturned, s.ReceiveReturned); err != nil {
		return r, err
	}
	add(m.end("server: check returned elements, ringer check, count", "server", r.ServerPadded))

	m = startMeter()
	res, err := privateRelease(sh, c, s)
	if err != nil {
		return r, err
	}
	add(m.end("release (noise, threshold, interval; the client checks it)", "both", 1))
	r.Phases = append(r.Phases, Phase{Name: "transfer (encode messages)", Side: "both", WallS: sh.wall.Seconds(), CPUS: sh.cpu.Seconds()})

	b.end(setDone)
	if err := checkPrivate(&r, res); err != nil {
		return r, err
	}
	r.HashNS, r.MultNS = float64(oc.HashToGroup.Nanoseconds()), float64(oc.ScalarMult.Nanoseconds())
	r.BaseMultNS = float64(base.Nanoseconds())

	privateFinish(&r, rep, elemBytes)
	return r, nil
}

// privateSet encodes the synthetic server set of n digests, with ringers.
func privateSet(seed uint64, n int, suite psi.Suite) (*psi.PrivateSet, error) {
	set, err := psi.NewPrivateSet(psi.PrivateSetConfig{Kind: psi.KindEmail, Suite: suite})
	if err != nil {
		return nil, err
	}
	return set, fill(set, seed, n)
}

// privateRelease ships the server's release to the client, which checks it.
func privateRelease(sh *shipper, c *psi.PrivateClient, s *psi.PrivateServer) (psi.PrivateResult, error) {
	rel, err := s.Release()
	if err != nil {
		return psi.PrivateResult{}, err
	}
	var rr wire.PrivateRelease
	if err := rr.UnmarshalBinary(sh.ship(psi.FromServer, rel)); err != nil {
		return psi.PrivateResult{}, err
	}
	return c.ReceiveRelease(&rr)
}

// privateOpening ships the hello and the parameters between c and s.
func privateOpening(sh *shipper, c *psi.PrivateClient, s *psi.PrivateServer) error {
	var hello wire.ClientHello
	if err := hello.UnmarshalBinary(sh.ship(psi.FromClient, c.Hello())); err != nil {
		return err
	}
	params, err := s.ReceiveHello(&hello)
	if err != nil {
		return err
	}
	var pm wire.PrivateParams
	if err := pm.UnmarshalBinary(sh.ship(psi.FromServer, params)); err != nil {
		return err
	}
	return c.ReceiveParams(&pm)
}

// privateFinish derives the sizes per element, the lower bound and the
// efficiencies of a private-mode run (in process or through the service)
// whose WallS, OnlineS, per-op costs, bytes and sizes are set; elemBytes is
// the size of the server's element chunks.
func privateFinish(r *Run, rep *Report, elemBytes int64) {
	r.ClientBPE = float64(r.ClientBytes) / float64(r.elements()+r.ServerPadded)
	r.ServerBPE = float64(r.ServerBytes) / float64(r.ServerPadded)
	r.SetBitsPerEl = 8 * float64(elemBytes) / float64(r.ServerPadded)

	// The operations private mode needs (SPEC.md §10.11, as psi does them):
	// the server hashes and multiplies each of its |Y| identifiers and
	// makes R' ringers by fixed-base multiplication (both preparable before
	// the session); the client raises all N = |Y| + R' server elements and
	// hashes and blinds its n identifiers; the server computes R' ringer
	// images and raises the n blinded identifiers. The client key A = B^a is
	// one more fixed-base multiplication.
	// A record session's n is its n·s slots, its |Y| the union of the
	// kinds' sets.
	n, y, bigN, rp := float64(r.elements()), float64(r.setSize()), float64(r.ServerPadded), float64(r.Ringers)
	cores := float64(rep.Workers)
	cost := func(hashes, mults, bases float64) float64 {
		return (hashes*r.HashNS + mults*r.MultNS + bases*r.BaseMultNS) / cores / 1e9
	}
	r.BoundS = cost(n+y, y+bigN+rp+2*n, rp+1)
	r.Efficiency = r.BoundS / r.WallS
	r.OnlineBoundS = cost(n, bigN+rp+2*n, 1)
	r.OnlineEff = r.OnlineBoundS / r.OnlineS
}
