package service

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/store"
)

// seedBulk is seedStore for large sets: one subject holds every address,
// with one subject-wide grant.
func seedBulk(t testing.TB, n int) store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "platform.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	_, err = st.ImportIdentifiers(t.Context(), func(yield func(store.Identifier) bool) {
		for i := range n {
			v, d := email(i)
			if !yield(store.Identifier{Subject: "bulk", Kind: psi.KindEmail, Value: v, Digest: d, CollectedFor: store.Signup}) {
				return
			}
		}
	}, store.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AppendConsent(t.Context(), func(yield func(store.ConsentEvent) bool) {
		yield(store.ConsentEvent{Subject: "bulk", Purpose: store.AdMatching, Granted: true,
			At: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), Source: "test", TextVersion: "v1"})
	}, store.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestScale measures whole sessions over loopback TLS at 10^4/10^5 and
// 10^5/10^6 (client/server identifiers): wall time and bytes each way. It
// runs only with OVERLAP_SERVICE_SCALE=1 (minutes on 2 cores):
//
//	OVERLAP_SERVICE_SCALE=1 go test ./psi/service -run TestScale -v -timeout 30m
func TestScale(t *testing.T) {
	if os.Getenv("OVERLAP_SERVICE_SCALE") == "" {
		t.Skip("set OVERLAP_SERVICE_SCALE=1 to measure sessions at 10^4/10^5 and 10^5/10^6")
	}
	for _, sz := range []struct{ client, server int }{{10_000, 100_000}, {100_000, 1_000_000}} {
		t.Run(fmt.Sprintf("%d/%d", sz.client, sz.server), func(t *testing.T) {
			start := time.Now()
			st := seedBulk(t, sz.server)
			seeded := time.Since(start)
			ts := startServer(t, st, nil)
			cl := ts.client(t, ts.addAdvertiser(t, "acme", store.Policy{}))
			// Half of the list is the platform's.
			list := emails(sz.server-sz.client/2, sz.server+sz.client/2)
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
			defer cancel()
			res, err := cl.Match(ctx, client.MatchRequest{Kind: psi.KindEmail, Digests: list})
			if err != nil {
				t.Fatal(err)
			}
			if res.Overlap != sz.client/2 {
				t.Errorf("overlap %d, want %d", res.Overlap, sz.client/2)
			}
			tr := res.Traffic
			t.Logf("  phases: %.2fs to ServerParams (policy, snapshot, set encoding), %.2fs blinding and sending, %.2fs evaluation, unblinding and counting",
				res.Phases.Params.Seconds(), res.Phases.Send.Seconds(), res.Phases.Receive.Seconds())
			t.Logf("client %d, server %d (bucket %d): session %.2fs wall (store seeded in %.1fs, not counted)",
				sz.client, sz.server, res.ServerSize, res.Elapsed.Seconds(), seeded.Seconds())
			t.Logf("  frames: %d B client→server (%.2f B/elem), %d B server→client (%.2f B/client elem + %.2f B/server elem), %d messages",
				tr.FrameBytesSent, float64(tr.FrameBytesSent)/float64(sz.client), tr.FrameBytesReceived,
				32.0, float64(tr.FrameBytesReceived-int64(32*sz.client))/float64(res.ServerSize), tr.Messages)
			t.Logf("  wire (TCP payload: TLS, HTTP/2, envelopes): %d B client→server, %d B server→client",
				tr.WireBytesSent, tr.WireBytesReceived)
		})
	}
}

// TestScaleWarm measures a session served from the warm pool with a real
// SQLite store of 10^6 identifiers and a list of 10^4, first with the
// ledger unchanged since the pool filled (the session reads the ledger
// generation only), then after a consent event that leaves the set as it
// was (the session reads the whole snapshot to compare digests). It runs
// only with OVERLAP_SERVICE_SCALE=1:
//
//	OVERLAP_SERVICE_SCALE=1 go test ./psi/service -run TestScaleWarm -v -timeout 30m
func TestScaleWarm(t *testing.T) {
	if os.Getenv("OVERLAP_SERVICE_SCALE") == "" {
		t.Skip("set OVERLAP_SERVICE_SCALE=1 to measure warm sessions at 10^4/10^6")
	}
	const nClient, server = 10_000, 1_000_000
	st := seedBulk(t, server)
	ts := startServer(t, st, func(c *Config) { c.PoolSize = 1; c.PoolKinds = []psi.Kind{psi.KindEmail} })
	cl := ts.client(t, ts.addAdvertiser(t, "acme", store.Policy{}))
	list := emails(server-nClient/2, server+nClient/2)
	session := func(what string) {
		t.Helper()
		waitPool(t, ts)
		hits := ts.PoolStats().Hits
		res, err := cl.Match(t.Context(), client.MatchRequest{Kind: psi.KindEmail, Digests: list})
		if err != nil {
			t.Fatal(err)
		}
		if res.Overlap != nClient/2 || ts.PoolStats().Hits != hits+1 {
			t.Fatalf("%s: overlap %d (want %d), pool stats %+v", what, res.Overlap, nClient/2, ts.PoolStats())
		}
		t.Logf("%s: session %.2fs wall, %.2fs to ServerParams (policy, snapshot check, pooled set)",
			what, res.Elapsed.Seconds(), res.Phases.Params.Seconds())
	}
	session("warm, ledger unchanged")
	if _, err := st.AppendConsent(t.Context(), func(yield func(store.ConsentEvent) bool) {
		yield(store.ConsentEvent{Subject: "bulk", Purpose: store.AdMatching, Granted: true,
			At: time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC), Source: "test", TextVersion: "v1"})
	}, store.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	session("warm, ledger changed, set the same")
}

// TestScaleStore measures a warm exact-mode session of 10^5 emails against
// an existing store that OVERLAP_SCALE_STORE names, built by "overlap ids
// generate --subjects N" and the two import commands: the time to fill the
// warm pool (one prepared set of the email kind: snapshot and encoding),
// the session, and the peak memory of the process (server and client: the
// client's share is its list of 10^5). The list is the generator's first
// 10^5 addresses, so the expected overlap follows the generator's rule
// (cmd/overlap/generate.go): subject i's email is matchable unless i is a
// multiple of 11 (no consent), 7 (withdrawn) or 13 (email withdrawn).
//
//	OVERLAP_SCALE_STORE=postgres://... go test ./psi/service -run TestScaleStore -v -timeout 3h
func TestScaleStore(t *testing.T) {
	dsn := os.Getenv("OVERLAP_SCALE_STORE")
	if dsn == "" {
		t.Skip("set OVERLAP_SCALE_STORE=DSN of a generated store to measure a warm session against it")
	}
	const nClient = 100_000
	domains := []string{"example.com", "mail.example.net", "example.org", "post.example.co.uk"}
	list := make([][32]byte, nClient)
	want := 0
	for i := range nClient {
		list[i] = sha256.Sum256([]byte(fmt.Sprintf("user%d@%s", i, domains[i%len(domains)])))
		if i%11 != 0 && i%7 != 0 && i%13 != 0 {
			want++
		}
	}
	st, err := store.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var peak atomic.Uint64
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
			}
		}
	}()
	start := time.Now()
	ts := startServer(t, st, func(c *Config) {
		c.PoolSize = 1
		c.PoolKinds = []psi.Kind{psi.KindEmail}
		c.IdleTimeout = 30 * time.Minute
	})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Hour)
	defer cancel()
	if err := ts.WaitPool(ctx); err != nil {
		t.Fatal(err)
	}
	fill := time.Since(start)
	t.Logf("pool filled in %.1fs (snapshot and encoding of the email set); peak Go heap in use so far %d MiB", fill.Seconds(), peak.Load()>>20)
	cl := ts.client(t, ts.addAdvertiser(t, "acme", store.Policy{}))
	res, err := cl.Match(ctx, client.MatchRequest{Kind: psi.KindEmail, Digests: list})
	if err != nil {
		t.Fatal(err)
	}
	if res.Overlap != want {
		t.Errorf("overlap %d, want %d", res.Overlap, want)
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	t.Logf("warm session: client %d, server %d (bucket), overlap %d: %.2fs wall, %.2fs to ServerParams; pool stats %+v",
		nClient, res.ServerSize, res.Overlap, res.Elapsed.Seconds(), res.Phases.Params.Seconds(), ts.PoolStats())
	t.Logf("peak Go heap in use %d MiB; peak RSS of the process %d MiB", peak.Load()>>20, ru.Maxrss>>10)
}
