package service

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/ident"
	pb "github.com/overlap-psi/overlap/psi/service/gen/overlap/v1"
	"github.com/overlap-psi/overlap/psi/store"
	"github.com/overlap-psi/overlap/psi/wire"
)

// postgresSchema creates a fresh schema in the database
// OVERLAP_TEST_POSTGRES names, dropped when the test ends, and returns a
// DSN whose search_path is that schema; it skips the test without one.
func postgresSchema(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("OVERLAP_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("postgres: OVERLAP_TEST_POSTGRES not set; run .ci/postgres.sh")
	}
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatal("OVERLAP_TEST_POSTGRES must be a postgres:// URL")
	}
	schema := "overlap_replicas_" + strings.ToLower(rand.Text())
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	defer conn.Close(t.Context())
	if _, err := conn.Exec(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("postgres: %v", err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("postgres: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("postgres: %v", err)
		}
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// replica is one running `overlap serve` of TestReplicas, with its admin
// address.
type replica struct {
	*overlapProcess
	name, admin string
	mu          sync.Mutex
	clients     map[string]*client.Client // by API key
}

// replicaArgs are the flags of every replica: one PostgreSQL database, a
// short lease, one CPU worker each.
func replicaArgs(dsn, certs string) []string {
	return []string{"serve", "--db", dsn, "--dev-cert", certs, "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--min-list", "1", "--lease", replicaLease.String(), "--workers", "1", "--budget", "1000000"}
}

const replicaLease = 2 * time.Second

// startReplica runs bin with args and waits until it serves matches and
// its admin endpoints.
func startReplica(t *testing.T, name, bin string, args []string, caFile string) *replica {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &replica{overlapProcess: &overlapProcess{cmd: cmd, caFile: caFile, stderr: &syncBuffer{}}, name: name, clients: map[string]*client.Client{}}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr, admin := make(chan string, 1), make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(r.stderr, line)
			if a, ok := strings.CutPrefix(line, "overlap: serving matches on "); ok {
				addr <- strings.Fields(a)[0]
			}
			if a, ok := strings.CutPrefix(line, "overlap: /healthz, /readyz and /metrics on http://"); ok {
				admin <- strings.Fields(a)[0]
			}
		}
	}()
	for _, c := range []struct {
		to *string
		ch chan string
	}{{&r.addr, addr}, {&r.admin, admin}} {
		select {
		case *c.to = <-c.ch:
		case <-time.After(30 * time.Second):
			t.Fatalf("replica %s did not start:\n%s", name, r.stderr)
		}
	}
	return r
}

// client returns the replica's client for apiKey.
func (r *replica) client(t *testing.T, apiKey string) *client.Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.clients[apiKey]; ok {
		return c
	}
	tlsCfg, err := client.TLSConfig(r.caFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{Addr: r.addr, APIKey: apiKey, TLS: tlsCfg, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	r.clients[apiKey] = c
	return c
}

// ready returns the status of the replica's /readyz.
func (r *replica) ready() int {
	resp, err := http.Get("http://" + r.admin + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// outcomes tallies, per advertiser, how each session the clients ran
// ended as they saw it: "ok" or "refused_<limit>", as in the audit log.
type outcomes struct {
	mu sync.Mutex
	m  map[int64]map[string]int
}

func (o *outcomes) add(adv int64, result string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m[adv] == nil {
		o.m[adv] = map[string]int{}
	}
	o.m[adv][result]++
}

// TestReplicas runs three real `overlap serve` processes over one
// PostgreSQL database, with advertisers matching concurrently on two of
// them, and kills the third with SIGKILL while it holds two sessions: one
// admitted, one past elements_sent. It checks that the replicas behave as
// one service: one session in flight per advertiser across replicas (a
// session held on one refuses the advertiser's session on another until
// the dead replica's lease ends), budgets that no pair of replicas
// overspends and that lose nothing to the kill (the admitted session is
// refunded, the other keeps its charge), every session once in the audit
// log with the outcome its client saw, the survivors serving throughout,
// the killed replica restarted with the same command and serving, and a
// replica stopped with SIGTERM finishing the session it was running
// (a rolling restart).
func TestReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs three overlap servers on PostgreSQL (about 20 s)")
	}
	dsn := postgresSchema(t)
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "overlap")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/overlap-psi/overlap/cmd/overlap").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	// The platform: 200 emails, each of its own subject, consented.
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = st.ImportIdentifiers(ctx, func(yield func(store.Identifier) bool) {
		for i := range 200 {
			v, d := email(i)
			if !yield(store.Identifier{Subject: fmt.Sprint("e", i), Kind: psi.KindEmail, Value: v, Digest: d, CollectedFor: store.Signup}) {
				return
			}
		}
	}, store.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.AppendConsent(ctx, func(yield func(store.ConsentEvent) bool) {
		for i := range 200 {
			if !yield(store.ConsentEvent{Subject: fmt.Sprint("e", i), Purpose: store.AdMatching, Granted: true,
				At: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), Source: "test", TextVersion: "v1"}) {
				return
			}
		}
	}, store.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	type adv struct {
		store.Advertiser
		key string
	}
	var advs []adv
	advertiser := func(name string, pol store.Policy) adv {
		key, err := client.NewAPIKey()
		if err != nil {
			t.Fatal(err)
		}
		a, err := st.AddAdvertiser(ctx, store.Advertiser{Name: name, KeyID: key.ID, KeyHash: key.Hash(), Policy: pol})
		if err != nil {
			t.Fatal(err)
		}
		advs = append(advs, adv{a, key.Reveal()})
		return advs[len(advs)-1]
	}
	load := advertiser("load", store.Policy{Modes: store.ModesExact})                  // matches throughout
	tight := advertiser("tight", store.Policy{Modes: store.ModesExact, Budget: 1000})  // 6 lists of 150
	private := advertiser("private", store.Policy{Modes: store.ModesPrivate})          // ε 2: 4 sessions of ε 1/2
	heldAdmitted := advertiser("held-admitted", store.Policy{Modes: store.ModesExact}) // held on the replica killed, admitted
	heldSent := advertiser("held-sent", store.Policy{Modes: store.ModesExact})         // held there past elements_sent
	drain := advertiser("drain", store.Policy{Modes: store.ModesExact})                // runs while its replica drains
	joiner := advertiser("after-restart", store.Policy{Modes: store.ModesExact})       // on the restarted replica
	const window = 30 * 24 * time.Hour

	certs := filepath.Join(dir, "certs")
	caFile := filepath.Join(certs, "cert.pem")
	args := replicaArgs(dsn, certs)
	a := startReplica(t, "a", bin, args, caFile) // writes the certificate the others reuse
	b := startReplica(t, "b", bin, args, caFile)
	c := startReplica(t, "c", bin, args, caFile)

	// Every open session with a live lease, sampled: never two of one
	// advertiser.
	var maxOpen sync.Map // advertiser id → most live sessions seen at once
	stopMonitor := make(chan struct{})
	var monitor sync.WaitGroup
	monitor.Go(func() {
		for {
			select {
			case <-stopMonitor:
				return
			case <-time.After(10 * time.Millisecond):
			}
			open, err := st.OpenSessions(ctx)
			if err != nil {
				continue
			}
			now := time.Now()
			n := map[int64]int{}
			for _, e := range open {
				if e.LeaseUntil.After(now) {
					n[e.Advertiser]++
				}
			}
			for id, k := range n {
				if old, ok := maxOpen.Load(id); !ok || old.(int) < k {
					maxOpen.Store(id, k)
				}
			}
		}
	})

	seen := &outcomes{m: map[int64]map[string]int{}}
	// try runs one session of ad on r, list emails 0..149 (overlap 150),
	// and records how it ended.
	try := func(ad adv, r *replica, mode wire.Mode) string {
		t.Helper()
		cl := r.client(t, ad.key)
		req := client.MatchRequest{Kind: psi.KindEmail, Digests: emails(0, 150)}
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var err error
		if mode == wire.ModePrivate {
			_, err = cl.MatchPrivate(sctx, req)
		} else {
			var res client.MatchResult
			res, err = cl.Match(sctx, req)
			if err == nil && res.Overlap != 150 {
				t.Errorf("%s on %s: overlap %d, want 150", ad.Name, r.name, res.Overlap)
			}
		}
		result := "ok"
		if err != nil {
			ref, ok := client.RefusalOf(err)
			if !ok {
				t.Errorf("%s on %s: %v", ad.Name, r.name, err)
				return "error"
			}
			result = "refused_" + ref.Limit
		}
		seen.add(ad.ID, result)
		return result
	}

	// Load on the survivors-to-be, a and b, from two clients per
	// advertiser at once, until stop.
	stop := make(chan struct{})
	var loaders sync.WaitGroup
	var okAfterKill sync.Map // replica name → sessions ok after the kill
	killed := make(chan struct{})
	for i, r := range []*replica{a, b} {
		loaders.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				if try(load, r, wire.ModeExact) == "ok" {
					select {
					case <-killed:
						n, _ := okAfterKill.LoadOrStore(r.name, new(int))
						*n.(*int)++ // one loader per replica
					default:
					}
				}
			}
		})
		for _, ad := range []struct {
			adv
			mode wire.Mode
			last string
		}{{tight, wire.ModeExact, "refused_" + client.LimitBudget}, {private, wire.ModePrivate, "refused_" + client.LimitPrivacyBudget}} {
			loaders.Go(func() {
				for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
					if try(ad.adv, []*replica{a, b}[i], ad.mode) == ad.last {
						return
					}
				}
				t.Errorf("%s never ran out of budget", ad.Name)
			})
		}
	}

	// On c: held-admitted has its parameters and sends nothing;
	// held-sent sent 5,000 blinded elements and c is blocked sending the
	// evaluated ones to a client that reads none.
	phaseOf := func(id int64) string {
		open, _ := st.OpenSessions(ctx)
		for _, e := range open {
			if e.Advertiser == id {
				return e.Phase
			}
		}
		return ""
	}
	waitPhase := func(id int64, phase string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); phaseOf(id) != phase; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("advertiser %d never reached phase %s", id, phase)
			}
		}
	}
	hello := func(n int) []byte {
		h, _ := (&wire.ClientHello{Mode: wire.ModeExact, Kind: psi.KindEmail, CanonVersion: ident.Version, ClientSize: uint32(n)}).MarshalBinary()
		return h
	}
	ha := c.stream(t, ctx, heldAdmitted.key)
	if err := ha.Send(&pb.MatchRequest{Frame: hello(100)}); err != nil {
		t.Fatal(err)
	}
	if _, err := ha.Receive(); err != nil {
		t.Fatal(err)
	}
	const nSent = 5000
	hs := c.stream(t, ctx, heldSent.key)
	if err := hs.Send(&pb.MatchRequest{Frame: hello(nSent)}); err != nil {
		t.Fatal(err)
	}
	if _, err := hs.Receive(); err != nil {
		t.Fatal(err)
	}
	elems := randomElements(nSent)
	for seq, off := uint32(0), 0; off < len(elems); seq, off = seq+1, off+32*psi.DefaultChunkSize {
		if err := hs.Send(&pb.MatchRequest{Frame: chunk(seq, elems[off:min(off+32*psi.DefaultChunkSize, len(elems))])}); err != nil {
			t.Fatal(err)
		}
	}
	hs.CloseRequest()
	waitPhase(heldSent.ID, store.PhaseElementsSent)

	// One session in flight per advertiser, across replicas: a and b
	// know nothing of c's sessions but what the store holds.
	for _, r := range []*replica{a, b} {
		if got := try(heldAdmitted, r, wire.ModeExact); got != "refused_"+client.LimitAdvertiserSessions {
			t.Errorf("held-admitted on %s while its session is open on c: %s; want refused_%s", r.name, got, client.LimitAdvertiserSessions)
		}
	}

	// SIGKILL c mid-session.
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.cmd.Wait()
	killedAt := time.Now()
	close(killed)
	// Until c's lease ends the slot is held, on every replica...
	if got := try(heldAdmitted, a, wire.ModeExact); got != "refused_"+client.LimitAdvertiserSessions && time.Since(killedAt) < replicaLease/2 {
		t.Errorf("held-admitted on a just after c was killed: %s; want refused_%s", got, client.LimitAdvertiserSessions)
	}
	// ... and once it ended the advertiser is served again, its crashed
	// session closed and refunded by that admission or a reconciliation.
	for try(heldAdmitted, b, wire.ModeExact) != "ok" {
		if time.Since(killedAt) > replicaLease+5*time.Second {
			t.Fatalf("held-admitted still refused %v after c was killed (lease %v)", time.Since(killedAt), replicaLease)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("held-admitted served again %v after the kill (lease %v)", time.Since(killedAt).Round(time.Millisecond), replicaLease)

	// The killed replica restarts with the same command and serves,
	// without any repair.
	c2 := startReplica(t, "c2", bin, args, caFile)
	for deadline := time.Now().Add(10 * time.Second); c2.ready() != http.StatusOK; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the restarted replica is not ready:\n%s", c2.stderr)
		}
	}
	if got := try(joiner, c2, wire.ModeExact); got != "ok" {
		t.Errorf("%s on the restarted replica: %s", joiner.Name, got)
	}
	// held-sent's lease was renewed when its phase moved to elements
	// sent, after held-admitted's last renewal, so it may end a little
	// later: until it ends the slot is held, then c2 serves it.
	for {
		got := try(heldSent, c2, wire.ModeExact)
		if got == "ok" {
			break
		}
		if got != "refused_"+client.LimitAdvertiserSessions || time.Since(killedAt) > replicaLease+5*time.Second {
			t.Fatalf("%s on the restarted replica %v after the kill: %s", heldSent.Name, time.Since(killedAt), got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	loaders.Wait()
	for _, r := range []*replica{a, b} {
		if n, _ := okAfterKill.Load(r.name); n == nil || *n.(*int) == 0 {
			t.Errorf("survivor %s served no session after the kill", r.name)
		}
	}

	// Rolling restart: SIGTERM b while it runs a session of drain; the
	// session finishes, b reports not ready meanwhile, and exits cleanly.
	paused, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	drained := make(chan error, 1)
	go func() {
		cl := b.client(t, drain.key)
		_, err := cl.Match(ctx, client.MatchRequest{Kind: psi.KindEmail, Digests: emails(0, 150), Progress: func(client.Progress) {
			once.Do(func() { close(paused); <-resume })
		}})
		drained <- err
	}()
	select {
	case <-paused:
	case <-time.After(20 * time.Second):
		t.Fatal("the drain session never started")
	}
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); b.ready() != http.StatusServiceUnavailable; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("b does not report draining on /readyz:\n%s", b.stderr)
		}
	}
	close(resume)
	if err := <-drained; err != nil {
		t.Errorf("the session of drain on b, stopped with SIGTERM meanwhile: %v", err)
	} else {
		seen.add(drain.ID, "ok")
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(b.stderr.String(), "overlap: stopped"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("b did not stop after SIGTERM:\n%s", b.stderr)
		}
	}
	if err := b.cmd.Wait(); err != nil {
		t.Errorf("b exited with %v after SIGTERM\n%s", err, b.stderr)
	}
	// The others still serve.
	for _, r := range []*replica{a, c2} {
		if got := try(drain, r, wire.ModeExact); got != "ok" {
			t.Errorf("drain on %s after b stopped: %s", r.name, got)
		}
	}

	// c's sessions are closed by a's or c2's reconciliation once their
	// lease ended; then the journal is empty.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		open, err := st.OpenSessions(ctx)
		if err == nil && len(open) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("journal not empty: %+v, %v", open, err)
		}
	}
	close(stopMonitor)
	monitor.Wait()

	// The audit log: every session once; per advertiser, the outcomes the
	// clients saw, plus the two sessions c was killed in; the spends add
	// up to the budgets used, within their limits.
	all, err := st.Sessions(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, r := range all {
		if ids[r.ID] {
			t.Errorf("session %s twice in the audit log", r.ID)
		}
		ids[r.ID] = true
	}
	seen.add(heldAdmitted.ID, ResultCrashed)
	seen.add(heldSent.ID, ResultCrashed)
	now := time.Now()
	for _, ad := range advs {
		audited := map[string]int{}
		var ids, eps int64
		for _, r := range all {
			if r.Advertiser != ad.ID {
				continue
			}
			audited[r.Result]++
			ids += r.BudgetSpent
			eps += r.EpsilonSpent
			if r.Result == ResultCrashed {
				want := map[int64]int64{heldAdmitted.ID: 0, heldSent.ID: nSent}[ad.ID]
				if r.BudgetSpent != want {
					t.Errorf("%s: crashed session spent %d identifiers, want %d", ad.Name, r.BudgetSpent, want)
				}
			}
		}
		if fmt.Sprint(audited) != fmt.Sprint(seen.m[ad.ID]) {
			t.Errorf("%s: audit log %v; the clients saw %v", ad.Name, audited, seen.m[ad.ID])
		}
		usedIDs, err1 := st.BudgetUsed(ctx, ad.ID, window, now)
		usedEps, err2 := st.EpsilonUsed(ctx, ad.ID, window, now)
		if usedIDs != ids || usedEps != eps || err1 != nil || err2 != nil {
			t.Errorf("%s: budgets used %d identifiers, %d micro-ε (%v, %v); the audit rows spent %d, %d", ad.Name, usedIDs, usedEps, err1, err2, ids, eps)
		}
		if n, _ := maxOpen.Load(ad.ID); n != nil && n.(int) > 1 {
			t.Errorf("%s: %d sessions in flight at once", ad.Name, n)
		}
	}
	// The limits were met exactly, not just respected: tight spent 6
	// lists of 150 of its 1000, private 4 sessions of ε 1/2 of its 2, each
	// across both replicas.
	if n := seen.m[tight.ID]["ok"]; n != 6 {
		t.Errorf("tight: %d sessions ok, want 6", n)
	}
	if n := seen.m[private.ID]["ok"]; n != 4 {
		t.Errorf("private: %d sessions ok, want 4", n)
	}
	if n := seen.m[load.ID]["refused_"+client.LimitAdvertiserSessions]; n == 0 {
		t.Logf("load: its two clients never overlapped (no advertiser_sessions refusal)")
	}
	t.Logf("outcomes: %v", seen.m)
}
