package client

import (
	"context"
	"time"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/ident"
)

// SetupRequest asks for a new epoch of one kind (SPEC.md §10.12.1).
type SetupRequest struct {
	Kind       psi.Kind
	CanonFlags uint16
	// MaxServerSize is the largest N accepted; 0 means
	// psi.DefaultEpochMaxServerSize (the client holds 8 bytes per element).
	MaxServerSize uint32
	// Progress, if not nil, is told "raising" (the server's elements
	// raised to the epoch key) and "tags" (the tags sent), each of N.
	Progress func(Progress)
}

// SetupResult is a completed setup: the epoch's key, which the caller keeps
// secret (EpochKey.MarshalBinary, in a file private to its owner) until it
// expires, and what the setup cost.
type SetupResult struct {
	Key       *psi.EpochKey
	SessionID string
	Snapshot  Snapshot // the consent snapshot every session of the epoch counts against
	Traffic   Traffic
	Elapsed   time.Duration
}

// Setup runs one setup: the server sends its set once, the client raises
// it under a fresh epoch key and returns it as tags. Its work, memory and
// traffic grow with the server's set; the epoch's sessions then cost what
// the list costs (MatchEpoch).
func (c *Client) Setup(ctx context.Context, req SetupRequest) (SetupResult, error) {
	start := time.Now()
	sc, err := psi.NewEpochSetupClient(psi.EpochSetupClientConfig{Kind: req.Kind, CanonVersion: ident.Version,
		CanonFlags: req.CanonFlags, MaxServerSize: req.MaxServerSize, Workers: c.cfg.Workers, Suites: c.suites()})
	if err != nil {
		return SetupResult{}, err
	}
	defer sc.Close()
	var res SetupResult
	st := c.open(ctx, &res.Traffic)
	defer st.close()
	mr := MatchRequest{Progress: req.Progress}
	ek, err := sc.Run(st, mr.hooks(func() {}))
	res.SessionID, res.Snapshot = st.sessionID(), st.snap
	if err != nil {
		return res, err
	}
	res.Key, res.Elapsed = ek, time.Since(start)
	st.countWire()
	return res, nil
}

// MatchEpoch runs one epoch session (SPEC.md §10.12.2) with the key of a
// setup: the client sends its blinded list only, and gets the release of
// private mode. Its work and traffic grow with the list, not with the
// server's set. A refusal with limit LimitEpoch means the epoch expired or
// is gone: make a new setup.
func (c *Client) MatchEpoch(ctx context.Context, key *psi.EpochKey, req MatchRequest) (PrivateMatchResult, error) {
	start := time.Now()
	ec, err := psi.NewEpochClient(psi.PrivateClientConfig{Kind: req.Kind, CanonVersion: ident.Version, CanonFlags: req.CanonFlags,
		Workers: c.cfg.Workers}, key, req.Digests)
	if err != nil {
		return PrivateMatchResult{}, err
	}
	defer ec.Close()
	var res PrivateMatchResult
	st := c.open(ctx, &res.Traffic)
	defer st.close()
	r, err := ec.Run(st, req.hooks(func() { res.Params = time.Since(start) }))
	res.SessionID, res.Snapshot = st.sessionID(), st.snap
	if err != nil {
		return res, err
	}
	res.Result = r
	res.Elapsed = time.Since(start)
	st.countWire()
	return res, nil
}
