package client

import (
	"context"
	"time"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/ident"
)

// PrivateMatchResult is what a private-mode session tells the advertiser:
// the noised, thresholded release with its 95% interval (SPEC.md §10.6),
// never the exact count.
type PrivateMatchResult struct {
	Result    psi.PrivateResult
	SessionID string // the server's audit id of the session
	Snapshot  Snapshot
	Snapshots []Snapshot // a record session's snapshot of each kind (SPEC.md §13.3); nil otherwise
	Traffic   Traffic
	Elapsed   time.Duration
	// Params is when PrivateParams arrived, from the start of the call: the
	// time of TLS, the policy checks, the budget reservation and the
	// server's encoding of its set.
	Params time.Duration
}

// MatchPrivate runs one private-mode session (SPEC.md §10): the server
// counts and releases a differentially private count. The client's work
// and memory grow with the server's set: it raises each of the server's N
// elements to its key and holds the N results (32 bytes each) to shuffle
// them. Errors from the server are Connect errors; RefusalOf tells a
// policy refusal.
func (c *Client) MatchPrivate(ctx context.Context, req MatchRequest) (PrivateMatchResult, error) {
	start := time.Now()
	// MaxServerSize 0 takes psi.DefaultPrivateMaxServerSize.
	cfg := psi.PrivateClientConfig{Kind: req.Kind, CanonVersion: ident.Version, CanonFlags: req.CanonFlags,
		MaxServerSize: c.cfg.MaxServerSize, Workers: c.cfg.Workers, Suites: c.suites()}
	var pc *psi.PrivateClient
	var err error
	if req.Records != nil {
		pc, err = psi.NewPrivateRecordsClient(cfg, req.RecordsConfig, req.Records)
	} else {
		pc, err = psi.NewPrivateClient(cfg, req.Digests)
	}
	if err != nil {
		return PrivateMatchResult{}, err
	}
	defer pc.Close()
	var res PrivateMatchResult
	st := c.open(ctx, &res.Traffic)
	defer st.close()
	r, err := pc.Run(st, req.hooks(func() { res.Params = time.Since(start) }))
	res.SessionID, res.Snapshot, res.Snapshots = st.sessionID(), st.snap, st.snaps
	if err != nil {
		return res, err
	}
	res.Result = r
	res.Elapsed = time.Since(start)
	st.countWire()
	return res, nil
}
