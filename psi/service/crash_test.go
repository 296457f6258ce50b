package service

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/ident"
	pb "github.com/overlap-psi/overlap/psi/service/gen/overlap/v1"
	"github.com/overlap-psi/overlap/psi/service/gen/overlap/v1/overlapv1connect"
	"github.com/overlap-psi/overlap/psi/store"
	"github.com/overlap-psi/overlap/psi/wire"
)

// overlapProcess is a running `overlap serve`.
type overlapProcess struct {
	cmd    *exec.Cmd
	addr   string
	caFile string
	stderr *syncBuffer
}

// startOverlap runs bin serve on the SQLite store db and waits until it
// serves.
func startOverlap(t *testing.T, bin, db, certs string, extra ...string) *overlapProcess {
	t.Helper()
	args := append([]string{"serve", "--db", db, "--dev-cert", certs, "--addr", "127.0.0.1:0", "--admin-addr", "",
		"--min-list", "1", "--lease", "1s", "--workers", "1"}, extra...)
	cmd := exec.Command(bin, args...)
	out, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &overlapProcess{cmd: cmd, caFile: filepath.Join(certs, "cert.pem"), stderr: &syncBuffer{}}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(p.stderr, line)
			if a, ok := strings.CutPrefix(line, "overlap: serving matches on "); ok {
				addr <- strings.Fields(a)[0]
			}
		}
	}()
	select {
	case p.addr = <-addr:
	case <-time.After(30 * time.Second):
		t.Fatalf("overlap serve did not start:\n%s", p.stderr)
	}
	return p
}

// stream opens a Match stream with apiKey over a connection whose receive
// window is one HTTP/2 minimum (64 KiB), so that a server sending more
// than that to a client that does not read blocks.
func (p *overlapProcess) stream(t *testing.T, ctx context.Context, apiKey string) *connect.BidiStreamForClient[pb.MatchRequest, pb.MatchResponse] {
	t.Helper()
	tlsCfg, err := client.TLSConfig(p.caFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	var protocols http.Protocols
	protocols.SetHTTP2(true)
	tr := &http.Transport{TLSClientConfig: tlsCfg, Protocols: &protocols,
		HTTP2: &http.HTTP2Config{MaxReceiveBufferPerStream: 64 << 10, MaxReceiveBufferPerConnection: 64 << 10}}
	t.Cleanup(tr.CloseIdleConnections)
	st := overlapv1connect.NewMatchServiceClient(&http.Client{Transport: tr}, "https://"+p.addr).Match(ctx)
	st.RequestHeader().Set("Authorization", "Bearer "+apiKey)
	return st
}

func phone(i int) (string, [32]byte) {
	v := fmt.Sprintf("+1555%07d", i)
	return v, sha256.Sum256([]byte(v))
}

// TestSIGKILL kills a real `overlap serve` with SIGKILL while four sessions
// are open, one in each mode at each phase, restarts it, and checks that
// the restarted server closes each as crashed: refunded when the server
// had sent nothing derived from its set, charged otherwise (SPEC.md §8.6,
// §10.8.2).
func TestSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the overlap binary (about 20 s)")
	}
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "overlap")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/overlap-psi/overlap/cmd/overlap").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// The platform: 200 emails; 20,000 phone numbers, so that encoding the
	// phone set for a private session takes a while on one worker.
	db := filepath.Join(dir, "platform.db")
	st, err := store.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const phones = 20_000
	_, err = st.ImportIdentifiers(t.Context(), func(yield func(store.Identifier) bool) {
		for i := range 200 {
			v, d := email(i)
			if !yield(store.Identifier{Subject: fmt.Sprint("e", i), Kind: psi.KindEmail, Value: v, Digest: d, CollectedFor: store.Signup}) {
				return
			}
		}
		for i := range phones {
			v, d := phone(i)
			if !yield(store.Identifier{Subject: fmt.Sprint("p", i), Kind: psi.KindPhone, Value: v, Digest: d, CollectedFor: store.Signup}) {
				return
			}
		}
	}, store.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.AppendConsent(t.Context(), func(yield func(store.ConsentEvent) bool) {
		at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := range 200 {
			if !yield(store.ConsentEvent{Subject: fmt.Sprint("e", i), Purpose: store.AdMatching, Granted: true, At: at, Source: "test", TextVersion: "v1"}) {
				return
			}
		}
		for i := range phones {
			if !yield(store.ConsentEvent{Subject: fmt.Sprint("p", i), Purpose: store.AdMatching, Granted: true, At: at, Source: "test", TextVersion: "v1"}) {
				return
			}
		}
	}, store.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	advertiser := func(name string, modes store.ModeSet) (store.Advertiser, string) {
		key, err := client.NewAPIKey()
		if err != nil {
			t.Fatal(err)
		}
		a, err := st.AddAdvertiser(t.Context(), store.Advertiser{Name: name, KeyID: key.ID, KeyHash: key.Hash(), Policy: store.Policy{Modes: modes}})
		if err != nil {
			t.Fatal(err)
		}
		return a, key.Reveal()
	}
	exactAdmitted, keyEA := advertiser("exact-admitted", store.ModesExact)
	exactSent, keyES := advertiser("exact-sent", store.ModesExact)
	privateAdmitted, keyPA := advertiser("private-admitted", store.ModesPrivate)
	privateSent, keyPS := advertiser("private-sent", store.ModesPrivate)

	certs := filepath.Join(dir, "certs")
	srv := startOverlap(t, bin, db, certs)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	send := func(s *connect.BidiStreamForClient[pb.MatchRequest, pb.MatchResponse], frame []byte) {
		t.Helper()
		if err := s.Send(&pb.MatchRequest{Frame: frame}); err != nil {
			t.Fatal(err)
		}
	}
	helloOf := func(mode wire.Mode, kind psi.Kind, n int) []byte {
		b, _ := (&wire.ClientHello{Mode: mode, Kind: kind, CanonVersion: ident.Version, ClientSize: uint32(n)}).MarshalBinary()
		return b
	}
	phaseOf := func() map[int64]string {
		open, err := st.OpenSessions(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		out := map[int64]string{}
		for _, e := range open {
			out[e.Advertiser] = e.Phase
		}
		return out
	}
	waitPhase := func(adv int64, phase string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for phaseOf()[adv] != phase {
			if time.Now().After(deadline) {
				t.Fatalf("advertiser %d never reached phase %s; journal %v\n%s", adv, phase, phaseOf(), srv.stderr)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	// Exact, admitted: ServerParams received, no blinded element sent.
	ea := srv.stream(t, ctx, keyEA)
	send(ea, helloOf(wire.ModeExact, psi.KindEmail, 100))
	if _, err := ea.Receive(); err != nil {
		t.Fatal(err)
	}
	// Exact, elements sent: the whole blinded list sent, and the server
	// blocked sending 5,000 evaluated elements to a client that reads none.
	const nSent = 5000
	es := srv.stream(t, ctx, keyES)
	send(es, helloOf(wire.ModeExact, psi.KindEmail, nSent))
	if _, err := es.Receive(); err != nil {
		t.Fatal(err)
	}
	elems := randomElements(nSent)
	for seq, off := uint32(0), 0; off < len(elems); seq, off = seq+1, off+32*psi.DefaultChunkSize {
		send(es, chunk(seq, elems[off:min(off+32*psi.DefaultChunkSize, len(elems))]))
	}
	es.CloseRequest()
	waitPhase(exactSent.ID, store.PhaseElementsSent)
	// Private, elements sent: PrivateParams received, the server's
	// elements under way, the client key never sent.
	ps := srv.stream(t, ctx, keyPS)
	send(ps, helloOf(wire.ModePrivate, psi.KindEmail, 100))
	if _, err := ps.Receive(); err != nil {
		t.Fatal(err)
	}
	waitPhase(privateSent.ID, store.PhaseElementsSent)
	// Private, admitted: the budget reserved and the server still encoding
	// its 20,000 phone numbers; nothing sent yet.
	pa := srv.stream(t, ctx, keyPA)
	send(pa, helloOf(wire.ModePrivate, psi.KindPhone, 100))
	waitPhase(privateAdmitted.ID, store.PhaseAdmitted)

	if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	srv.cmd.Wait()
	want := map[int64]string{exactAdmitted.ID: store.PhaseAdmitted, exactSent.ID: store.PhaseElementsSent,
		privateAdmitted.ID: store.PhaseAdmitted, privateSent.ID: store.PhaseElementsSent}
	if got := phaseOf(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("journal at the kill %v, want %v", got, want)
	}
	if recs, _ := st.Sessions(t.Context(), 0, 0); len(recs) != 0 {
		t.Fatalf("audit rows before the restart: %+v", recs)
	}

	// The restarted server reconciles the four once their leases end.
	srv2 := startOverlap(t, bin, db, certs)
	deadline := time.Now().Add(30 * time.Second)
	var recs []store.SessionRecord
	for {
		recs, err = st.Sessions(t.Context(), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) >= 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	byAdv := map[int64]store.SessionRecord{}
	for _, r := range recs {
		byAdv[r.Advertiser] = r
	}
	now := time.Now()
	for _, c := range []struct {
		adv      store.Advertiser
		ids, eps int64
	}{
		{exactAdmitted, 0, 0},
		{exactSent, nSent, 0},
		{privateAdmitted, 0, 0},
		{privateSent, 100, 500_000},
	} {
		r, ok := byAdv[c.adv.ID]
		if !ok || r.Result != ResultCrashed || r.BudgetSpent != c.ids || r.EpsilonSpent != c.eps {
			t.Errorf("%s: audit row %+v; want crashed spending %d identifiers, %d micro-ε", c.adv.Name, r, c.ids, c.eps)
		}
		ids, err1 := st.BudgetUsed(t.Context(), c.adv.ID, time.Hour, now)
		eps, err2 := st.EpsilonUsed(t.Context(), c.adv.ID, time.Hour, now)
		if ids != c.ids || eps != c.eps || err1 != nil || err2 != nil {
			t.Errorf("%s: budgets used %d identifiers, %d micro-ε (%v, %v); want %d, %d", c.adv.Name, ids, eps, err1, err2, c.ids, c.eps)
		}
	}
	if open, _ := st.OpenSessions(t.Context()); len(open) != 0 {
		t.Errorf("journal after the restart: %+v", open)
	}
	// The log line follows the reconciling transaction: wait for it.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(srv2.stderr.String(), "crashed session reconciled"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("the restarted server logged no reconciliation:\n%s", srv2.stderr)
			break
		}
	}

	// And it serves.
	tlsCfg, err := client.TLSConfig(srv2.caFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(client.Config{Addr: srv2.addr, APIKey: keyEA, TLS: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	res, err := cl.Match(ctx, client.MatchRequest{Kind: psi.KindEmail, Digests: emails(100, 300)})
	if err != nil || res.Overlap != 100 {
		t.Errorf("after the restart: overlap %d, %v", res.Overlap, err)
	}
}
