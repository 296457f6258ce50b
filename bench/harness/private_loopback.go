package harness

import (
	"context"
	"fmt"
	"time"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/dp"
	"github.com/overlap-psi/overlap/psi/wire"
)

// Private-loopback mode runs private mode (SPEC.md §10) through the real
// service, as loopback mode runs exact mode: a server child (serverChild,
// its advertiser served both modes, no pool) and a client child that calls
// Client.MatchPrivate (privateClientChild).

// privateClientReport is what the client child measured of a private
// session. Times are nanoseconds from the start of MatchPrivate, taken in
// its progress callback, which runs on the session's goroutine after each
// chunk.
type privateClientReport struct {
	ClientSize int   `json:"client_size"` // n
	ServerSize int   `json:"server_size"` // N, ringers included
	Snapshot   int64 `json:"snapshot_version"`
	// The release, as the client checked it; the mechanism as on the wire
	// (dp.FromWire).
	MechCode    uint8  `json:"mechanism_code"`
	EpsNum      uint32 `json:"eps_num"`
	EpsDen      uint32 `json:"eps_den"`
	Sensitivity uint32 `json:"sensitivity"`
	Threshold   int    `json:"threshold"`
	Below       bool   `json:"below"`
	Count       int    `json:"count"`
	Low         int    `json:"low"`
	High        int    `json:"high"`

	ElapsedNS  int64 `json:"elapsed_ns"`
	ParamsNS   int64 `json:"params_ns"`   // PrivateParams arrived
	RaisedNS   int64 `json:"raised_ns"`   // all N raised, checked for duplicates and shuffled
	SentNS     int64 `json:"sent_ns"`     // the last blinded chunk went out (the key before them)
	ReturnedNS int64 `json:"returned_ns"` // the last returned chunk went out
	CPUNS      int64 `json:"cpu_ns"`
	client.Traffic
}

// paramsNS is when PrivateParams arrived, from the start of the session.
func (cr *privateClientReport) paramsNS() int64 { return cr.ParamsNS }

// privateClientChild runs one private-mode session with the seeded client
// list and reports it.
func privateClientChild(cfg clientChildConfig) error {
	c, req, err := newClientChild(cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	var rep privateClientReport
	cpu0 := cpuTime()
	start := time.Now()
	req.Progress = func(p client.Progress) {
		t := int64(time.Since(start))
		switch p.Phase {
		case "raising":
			if p.Done == p.Total {
				rep.RaisedNS = t
			}
		case "sending":
			if p.Done == p.Total {
				rep.SentNS = t
			}
		case "returning":
			if p.Done == p.Total {
				rep.ReturnedNS = t
			}
		}
	}
	res, err := c.MatchPrivate(context.Background(), req)
	// On the clock of the progress reports, so that the phases add up.
	rep.ElapsedNS = int64(time.Since(start))
	rep.CPUNS = int64(cpuTime() - cpu0)
	if err != nil {
		return err
	}
	r := res.Result
	rep.ClientSize, rep.ServerSize, rep.Snapshot = r.ClientSize, r.ServerSize, res.Snapshot.Version
	rep.MechCode = r.Mechanism.Code()
	rep.EpsNum, rep.EpsDen = r.Mechanism.EpsilonFraction()
	rep.Sensitivity = r.Mechanism.Sensitivity()
	rep.Threshold, rep.Below, rep.Count, rep.Low, rep.High = r.Threshold, r.Below, r.Count, r.Low, r.High
	rep.Traffic = res.Traffic
	rep.ParamsNS = int64(res.Params)
	return report(rep)
}

// runPrivateLoopback runs one private-mode session through the real
// service, each side in a child process of its own. The server encodes its
// set, with ringers, in the session (there is no private-mode pool).
func runPrivateLoopback(cfg Config, p Pair, rep *Report) (Run, error) {
	r := Run{Mode: ModePrivateLoopback, Suite: int(cfg.suite.Or1()), Client: p.Client, Server: p.Server}
	d := &data{seed: cfg.Seed, server: p.Server, overlap: overlapOf(p, cfg.Overlap)}
	if cfg.tamper != nil {
		cfg.tamper(d)
	}
	r.TrueOverlap = d.overlap
	sc, cc := childConfigs(cfg, p, 0, true)
	return privateLoopback(cfg, r, rep, sc, cc, nil)
}

// privateLoopback runs one private-mode session, identifier-level or a
// record session (mode 6), through the real service with children
// configured by sc and cc, and completes r, whose description (mode, part,
// sizes) and TrueOverlap are set. check, if not nil, checks the client's
// report before the release is checked against the truth.
func privateLoopback(cfg Config, r Run, rep *Report, sc serverChildConfig, cc clientChildConfig, check func(*privateClientReport) error) (Run, error) {
	p := Pair{Client: r.Client, Server: r.Server}
	var cr privateClientReport
	lb, err := runChildPair(cfg, sc, cc, &cr)
	if err != nil {
		return r, err
	}
	if cr.ClientSize != p.Client || cr.ServerSize <= r.setSize() {
		return r, fmt.Errorf("harness: %s, client %d, server %d: the session had n = %d, N = %d",
			r.label(), p.Client, p.Server, cr.ClientSize, cr.ServerSize)
	}
	if check != nil {
		if err := check(&cr); err != nil {
			return r, err
		}
	}
	r.ClientRSS, r.ServerRSS = lb.clientRSS, lb.serverRSS
	r.ServerPadded = cr.ServerSize
	r.Ringers = r.ServerPadded - r.setSize() // one identifier per subject and kind: the whole set is in the snapshot

	ns := func(v int64) float64 { return time.Duration(v).Seconds() }
	params := cr.paramsNS()
	r.WallS = ns(cr.ElapsedNS)
	r.OnlineS = ns(cr.ElapsedNS - params)
	r.ClientCPUS, r.ServerCPUS = ns(cr.CPUNS), ns(lb.done.CPUNS-lb.ready.CPUNS)
	r.CPUS = r.ClientCPUS + r.ServerCPUS
	r.ClientBytes, r.ServerBytes = cr.FrameBytesSent, cr.FrameBytesReceived
	r.ClientWire, r.ServerWire = cr.WireBytesSent, cr.WireBytesReceived
	addPhase(&r, "open: TLS, policy, budget, snapshot, set encoding with ringers (until PrivateParams)", "both", 0, params, r.setSize())
	addPhase(&r, "client: receive and raise server elements (check, multiply, duplicate check, shuffle)", "client", params, cr.RaisedNS, r.ServerPadded)
	addPhase(&r, "client: key, hash, blind and send the list (the server computes ringer images, evaluates as chunks arrive)", "both",
		cr.RaisedNS, cr.SentNS, r.elements())
	addPhase(&r, "client: return the raised elements (the server checks them as they arrive)", "both", cr.SentNS, cr.ReturnedNS, r.ServerPadded)
	addPhase(&r, "server: check the last returned, ringer check, count, release (until PrivateRelease)", "server", cr.ReturnedNS, cr.ElapsedNS, 0)

	mech, err := dp.FromWire(cr.MechCode, cr.EpsNum, cr.EpsDen, cr.Sensitivity)
	if err != nil {
		return r, fmt.Errorf("harness: %s, client %d, server %d: the release's mechanism: %w", r.label(), p.Client, p.Server, err)
	}
	res := psi.PrivateResult{ClientSize: cr.ClientSize, ServerSize: cr.ServerSize, Mechanism: mech, Threshold: cr.Threshold,
		Below: cr.Below, Count: cr.Count, Low: cr.Low, High: cr.High}
	if err := checkPrivate(&r, res); err != nil {
		return r, err
	}
	r.HashNS, r.MultNS = float64(lb.oc.HashToGroup.Nanoseconds()), float64(lb.oc.ScalarMult.Nanoseconds())
	r.BaseMultNS = float64(lb.base.Nanoseconds())
	// The server's frames are PrivateParams, its element chunks and
	// PrivateRelease.
	privateFinish(&r, rep, r.ServerBytes-wire.PrivateParamsSize-suiteByte(r.Suite)-wire.PrivateReleaseSize)
	return r, nil
}
