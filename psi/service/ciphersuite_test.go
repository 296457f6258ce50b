package service

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/store"
)

// suiteClient is ts.client offering suites.
func (ts *testServer) suiteClient(t testing.TB, apiKey string, suites []psi.Suite) *client.Client {
	t.Helper()
	tlsCfg, err := client.TLSConfig(ts.caFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{Addr: ts.addr, APIKey: apiKey, TLS: tlsCfg, Suites: suites})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// The server uses the first suite of its preference list that the client
// offers (SPEC.md §12.1), records it in the audit row, and refuses a client
// that offers none of its suites with Overlap-Limit: suite.
func TestServiceCiphersuites(t *testing.T) {
	ts := startServer(t, seedStore(t, 600), nil) // DefaultSuites: 2, then 1
	key := ts.addAdvertiser(t, "acme", store.Policy{Modes: store.ModesExact | store.ModesPrivate})
	list := emails(300, 700) // 300 of them are on the platform
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	n := 0
	for _, tc := range []struct {
		offer []psi.Suite
		want  psi.Suite
	}{{nil, psi.Suite2}, {[]psi.Suite{psi.Suite1}, psi.Suite1}, {[]psi.Suite{psi.Suite1, psi.Suite2}, psi.Suite2}} {
		c := ts.suiteClient(t, key, tc.offer)
		res, err := c.Match(ctx, client.MatchRequest{Kind: psi.KindEmail, Digests: list})
		n++
		if err != nil || res.Overlap != 300 {
			t.Fatalf("offer %v: %+v, %v", tc.offer, res.Result, err)
		}
		if rec := ts.lastSession(t, n); rec.Suite != tc.want || rec.Result != "ok" {
			t.Errorf("offer %v: audit row suite %v (%s), want %v", tc.offer, rec.Suite, rec.Result, tc.want)
		}
		pr, err := c.MatchPrivate(ctx, client.MatchRequest{Kind: psi.KindEmail, Digests: list})
		n++
		if err != nil {
			t.Fatalf("private, offer %v: %v", tc.offer, err)
		}
		_ = pr
		if rec := ts.lastSession(t, n); rec.Suite != tc.want || rec.Mode != "private" {
			t.Errorf("private, offer %v: audit row suite %v mode %s, want %v", tc.offer, rec.Suite, rec.Mode, tc.want)
		}
	}

	// A server of suite 1 only refuses a client of suite 2 only.
	ts1 := startServer(t, seedStore(t, 200), func(c *Config) { c.Suites = []psi.Suite{psi.Suite1} })
	c := ts1.suiteClient(t, ts1.addAdvertiser(t, "acme", store.Policy{}), []psi.Suite{psi.Suite2})
	_, err := c.Match(ctx, client.MatchRequest{Kind: psi.KindEmail, Digests: emails(0, 200)})
	if ref, ok := client.RefusalOf(err); !ok || ref.Limit != client.LimitSuite {
		t.Fatalf("suite 2 against a suite-1 server: %v, want a refusal of limit suite", err)
	}
	if rec := ts1.lastSession(t, 1); rec.Result != "refused_suite" || rec.Suite != 0 {
		t.Errorf("refusal's audit row: %s, suite %v", rec.Result, rec.Suite)
	}
	if _, err := New(Config{Store: seedStore(t, 0), Suites: []psi.Suite{psi.Suite2, psi.Suite2}}); err == nil {
		t.Error("a server with a repeated suite started")
	}
}

// An epoch is made in the server's preferred suite that the client offers,
// stored with it, and its sessions use it.
func TestServiceEpochCiphersuite(t *testing.T) {
	st := seedStore(t, 300)
	ts, _ := startEpochServer(t, st, 4)
	key := ts.addAdvertiser(t, "acme", epochModes)
	c := ts.client(t, key)
	su, err := setup(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if su.Key.Suite != psi.Suite2 {
		t.Fatalf("epoch in suite %v, want 2", su.Key.Suite)
	}
	eps, err := st.Epochs(t.Context(), 0)
	if err != nil || len(eps) != 1 || eps[0].Meta.Suite != psi.Suite2 {
		t.Fatalf("stored epochs %+v, %v", eps, err)
	}
	// A client that offers suite 1 only still runs the epoch's sessions:
	// they offer the epoch's suite.
	c1 := ts.suiteClient(t, key, []psi.Suite{psi.Suite1})
	if _, err := matchEpoch(t, c1, su.Key, emails(100, 400)); err != nil {
		t.Fatal(err)
	}
	if rec := ts.lastSession(t, 2); rec.Suite != psi.Suite2 || rec.Mode != "epoch-session" {
		t.Errorf("epoch session's audit row: suite %v mode %s", rec.Suite, rec.Mode)
	}
}

// The warm pool keeps sets of every suite in Config.PoolSuites, and a
// session takes one only in its own suite: by default the first of the
// suites served, so that a client offering only another one prepares its
// set cold (counted as neither hit nor miss, as a kind not pooled); with
// both pooled, clients of either suite are served warm.
func TestPoolSuites(t *testing.T) {
	t.Parallel()
	list := emails(300, 700) // 300 of them are on the platform
	run := func(ts *testServer, key string, offer psi.Suite, n int) {
		t.Helper()
		res, err := match(t, ts.suiteClient(t, key, []psi.Suite{offer}), list)
		if err != nil || res.Overlap != 300 {
			t.Fatalf("suite %v: %+v, %v", offer, res.Result, err)
		}
		if rec := ts.lastSession(t, n); rec.Suite != offer || rec.Result != ResultOK {
			t.Errorf("suite %v: audit row suite %v (%s)", offer, rec.Suite, rec.Result)
		}
	}
	pooled := func(c *Config) { c.PoolSize = 1; c.PoolKinds = []psi.Kind{psi.KindEmail} }

	// Default: suite 2 only.
	ts := startServer(t, seedStore(t, 600), pooled)
	key := ts.addAdvertiser(t, "acme", store.Policy{})
	waitPool(t, ts)
	if st := ts.PoolStats(); st.Ready[psi.KindEmail] != 1 {
		t.Fatalf("default pool: %+v, want 1 set ready", st)
	}
	run(ts, key, psi.Suite1, 1)
	if st := ts.PoolStats(); st.Hits != 0 || st.Misses != 0 || st.Ready[psi.KindEmail] != 1 {
		t.Errorf("a suite-1 session against a pool of suite 2: %+v, want the set of suite 2 left in the pool", st)
	}
	run(ts, key, psi.Suite2, 2)
	if st := ts.PoolStats(); st.Hits != 1 || st.Misses != 0 {
		t.Errorf("a suite-2 session: %+v, want one hit", st)
	}

	// Both suites pooled.
	ts2 := startServer(t, seedStore(t, 600), func(c *Config) {
		pooled(c)
		c.PoolSuites = []psi.Suite{psi.Suite2, psi.Suite1}
	})
	key2 := ts2.addAdvertiser(t, "acme", store.Policy{})
	waitPool(t, ts2)
	if st := ts2.PoolStats(); st.Ready[psi.KindEmail] != 2 {
		t.Fatalf("pool of both suites: %+v, want 2 sets ready", st)
	}
	m := httptestGet(t, ts2.AdminHandler(), "/metrics")
	for _, want := range []string{`overlap_pool_ready_sets{kind="email",suite="1"} 1`, `overlap_pool_ready_sets{kind="email",suite="2"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(m, "overlap_pool"))
		}
	}
	run(ts2, key2, psi.Suite1, 1)
	run(ts2, key2, psi.Suite2, 2)
	if st := ts2.PoolStats(); st.Hits != 2 || st.Misses != 0 {
		t.Errorf("sessions of both suites against a pool of both: %+v, want two hits", st)
	}

	// A pooled suite must be one served, once.
	for _, ps := range [][]psi.Suite{{psi.Suite1}, {psi.Suite2, psi.Suite2}} {
		if _, err := New(Config{Store: seedStore(t, 0), Suites: []psi.Suite{psi.Suite2}, PoolSize: 1, PoolSuites: ps}); err == nil {
			t.Errorf("a server of suite 2 started with pooled suites %v", ps)
		}
	}
}
