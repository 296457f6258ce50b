package service

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/store"
)

// logLines decodes the JSON log lines of ts with msg.
func logLines(t *testing.T, logs string, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestClientCancelIsInfo: a client that goes away mid-session, after it
// sent elements, is a canceled session logged at INFO, with no ERROR line
// and no internal_error.
func TestClientCancelIsInfo(t *testing.T) {
	t.Parallel()
	ts := startServer(t, seedStore(t, 200), nil)
	cl := ts.client(t, ts.addAdvertiser(t, "acme", store.Policy{}))
	r, _ := openSession(t, cl, t.Context(), 100)
	if err := r.send(chunk(0, randomElements(50))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the server has taken the chunk
	r.abort()
	rec := ts.lastSession(t, 1)
	if rec.Result != ResultCanceled || rec.BudgetSpent != 0 {
		t.Errorf("audit row %s %q, spent %d; want canceled, refunded (no evaluated element was sent)", rec.Result, rec.Detail, rec.BudgetSpent)
	}
	logs := ts.logs.String()
	if strings.Contains(logs, `"level":"ERROR"`) || strings.Contains(logs, ResultInternal) {
		t.Errorf("a client that went away was logged as an error:\n%s", logs)
	}
	ended := logLines(t, logs, "session ended")
	if len(ended) != 1 || ended[0]["level"] != "INFO" || ended[0]["result"] != ResultCanceled {
		t.Errorf("session ended lines %v", ended)
	}
}

// TestAbandonedSessionsThrottled: an advertiser that opens sessions and
// leaves them after the hello is refunded each time but, past its free
// allowance, refused with a growing delay; the audit rows and the metric
// count every one.
func TestAbandonedSessionsThrottled(t *testing.T) {
	t.Parallel()
	ts := startServer(t, seedStore(t, 200), func(c *Config) { c.AbandonFree = 2; c.AbandonDelay = time.Minute })
	key := ts.addAdvertiser(t, "flaky", store.Policy{})
	cl := ts.client(t, key)
	for i := range 3 {
		r, _ := openSession(t, cl, t.Context(), 100)
		r.abort()
		if rec := ts.lastSession(t, i+1); rec.Result != ResultAbandoned || rec.BudgetSpent != 0 {
			t.Fatalf("session %d: audit row %s %q, spent %d; want abandoned and refunded", i, rec.Result, rec.Detail, rec.BudgetSpent)
		}
	}
	before := time.Now()
	_, err := match(t, cl, emails(0, 100))
	r, ok := client.RefusalOf(err)
	if connect.CodeOf(err) != connect.CodeResourceExhausted || !ok || r.Limit != client.LimitAbandoned {
		t.Fatalf("after 3 abandoned sessions: %v, refusal %+v", err, r)
	}
	if wait := r.ResetsAt.Sub(before); wait < 50*time.Second || wait > 61*time.Second {
		t.Errorf("throttled until %v, %v from now; want about a minute", r.ResetsAt, wait)
	}
	if rec := ts.lastSession(t, 4); rec.Result != "refused_"+client.LimitAbandoned {
		t.Errorf("refusal audited as %s", rec.Result)
	}
	// The budget holds nothing for the abandoned sessions.
	a, _ := ts.st.AdvertiserByName(t.Context(), "flaky")
	if used, err := ts.st.BudgetUsed(t.Context(), a.ID, time.Hour, time.Now()); used != 0 || err != nil {
		t.Errorf("identifiers spent %d, %v", used, err)
	}
	m := httptestGet(t, ts.AdminHandler(), "/metrics")
	if !strings.Contains(m, "overlap_sessions_abandoned_total 3") || !strings.Contains(m, "overlap_sessions_throttled_total 1") {
		t.Errorf("metrics lack the abandoned and throttled counts")
	}
	// Another advertiser is not slowed down.
	if res, err := match(t, ts.client(t, ts.addAdvertiser(t, "steady", store.Policy{})), emails(0, 100)); err != nil || res.Overlap != 100 {
		t.Errorf("another advertiser: %v, %v", res.Overlap, err)
	}
}

func TestAbandonWait(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want time.Duration
	}{{0, 0}, {3, 0}, {4, 30 * time.Second}, {5, time.Minute}, {6, 2 * time.Minute}, {12, time.Hour}, {1000, time.Hour}} {
		if got := abandonWait(c.n, 3, 30*time.Second); got != c.want {
			t.Errorf("abandonWait(%d) = %v, want %v", c.n, got, c.want)
		}
	}
}

// busyStore fails its first fails calls of BeginSession and EndSession
// with a serialization failure, as a busy PostgreSQL does.
type busyStore struct {
	store.Store
	fails atomic.Int64
}

func (b *busyStore) busy() error {
	if b.fails.Add(-1) >= 0 {
		return fmt.Errorf("store: begin session: %w", &pgconn.PgError{Code: "40001", Message: "could not serialize access"})
	}
	return nil
}

func (b *busyStore) BeginSession(ctx context.Context, r store.BudgetRequest, e store.JournalEntry) (store.BudgetStatus, error) {
	if err := b.busy(); err != nil {
		return store.BudgetStatus{}, err
	}
	return b.Store.BeginSession(ctx, r, e)
}

func (b *busyStore) EndSession(ctx context.Context, rec store.SessionRecord, refund bool) error {
	if err := b.busy(); err != nil {
		return err
	}
	return b.Store.EndSession(ctx, rec, refund)
}

// TestBusyStoreRetried: a session that meets a busy store retries within
// its deadline and succeeds; one whose store stays busy fails with
// Unavailable, and its audit row is written either way.
func TestBusyStoreRetried(t *testing.T) {
	t.Parallel()
	bs := &busyStore{Store: seedStore(t, 200)}
	ts := startServer(t, bs, func(c *Config) { c.IdleTimeout = 2 * time.Second })
	cl := ts.client(t, ts.addAdvertiser(t, "acme", store.Policy{}))
	bs.fails.Store(3)
	res, err := match(t, cl, emails(0, 100))
	if err != nil || res.Overlap != 100 {
		t.Fatalf("with a briefly busy store: %v, %v", res.Overlap, err)
	}
	if rec := ts.lastSession(t, 1); rec.Result != ResultOK || rec.BudgetSpent != 100 {
		t.Errorf("audit row %+v", rec)
	}
	// Busy for longer than the session's deadline (the idle timeout) but
	// not for the closing write's.
	bs.fails.Store(40)
	_, err = match(t, cl, emails(0, 100))
	if connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), "busy") {
		t.Errorf("with a store busy past the deadline: %v (%v)", err, connect.CodeOf(err))
	}
	rec := ts.lastSession(t, 2)
	if rec.Result != ResultUnavailable || rec.BudgetSpent != 0 {
		t.Errorf("audit row %s %q, spent %d", rec.Result, rec.Detail, rec.BudgetSpent)
	}
	if m := httptestGet(t, ts.AdminHandler(), "/metrics"); !strings.Contains(m, "overlap_store_busy_retries_total") {
		t.Error("no busy retry metric")
	}
}

// TestSQLiteWriterHeld holds the write lock of the server's SQLite file
// from another connection (as a long import does) while a session runs:
// for 2 s, which the store's busy timeout (10 s) absorbs, and for 12 s,
// past it, which the session's retries absorb within its idle timeout.
// The session succeeds and its audit row is written.
func TestSQLiteWriterHeld(t *testing.T) {
	t.Parallel()
	for _, hold := range []time.Duration{2 * time.Second, 12 * time.Second} {
		t.Run(hold.String(), func(t *testing.T) {
			if hold > 5*time.Second && testing.Short() {
				t.Skip("holds the lock past the busy timeout")
			}
			t.Parallel()
			path := filepath.Join(t.TempDir(), "platform.db")
			st, err := store.Open(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			ts := startServer(t, st, func(c *Config) { c.IdleTimeout = 30 * time.Second })
			cl := ts.client(t, ts.addAdvertiser(t, "acme", store.Policy{}))
			importer, err := sql.Open("sqlite", "file:"+path+"?_txlock=immediate&_pragma=busy_timeout(10000)") // waits for the server's own brief writes at start
			if err != nil {
				t.Fatal(err)
			}
			defer importer.Close()
			tx, err := importer.BeginTx(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				time.Sleep(hold)
				tx.Rollback()
			}()
			start := time.Now()
			_, err = match(t, cl, emails(0, 100))
			if err != nil {
				t.Fatalf("a session during an import: %v", err)
			}
			if d := time.Since(start); d < hold/2 {
				t.Errorf("the session took %v: did the lock hold?", d)
			}
			if rec := ts.lastSession(t, 1); rec.Result != ResultOK {
				t.Errorf("audit row %+v", rec)
			}
			// Whether the store's own busy wait or a retry absorbed the
			// lock depends on when the session reached the store; the
			// retries themselves are tested with busyStore.
			for line := range strings.SplitSeq(httptestGet(t, ts.AdminHandler(), "/metrics"), "\n") {
				if strings.HasPrefix(line, "overlap_store_busy_retries_total ") {
					t.Log(line)
				}
			}
		})
	}
}

// TestReconcileAtStart: a session left in the journal by a server that
// stopped is closed by the next server once its lease has ended, refunded
// in phase admitted.
func TestReconcileAtStart(t *testing.T) {
	t.Parallel()
	st := seedStore(t, 10)
	a, err := st.AddAdvertiser(t.Context(), store.Advertiser{Name: "acme", CertName: "acme.example", Policy: store.Policy{Modes: store.ModesPrivate}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := st.BeginSession(t.Context(),
		store.BudgetRequest{Advertiser: a.ID, Session: "dead", Identifiers: 100, Limit: 1000, Window: time.Hour, At: now, Epsilon: 500_000, EpsilonLimit: 2_000_000},
		store.JournalEntry{ID: "dead", Advertiser: a.ID, Kind: psi.KindEmail, Mode: "private", ListSize: 100, Owner: "gone", StartedAt: now, LeaseUntil: now.Add(200 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, st, func(c *Config) { c.Lease = 100 * time.Millisecond })
	rec := ts.lastSession(t, 1)
	if rec.ID != "dead" || rec.Result != ResultCrashed || rec.EpsilonSpent != 0 || rec.BudgetSpent != 0 {
		t.Errorf("reconciled row %+v", rec)
	}
	if eps, err := st.EpsilonUsed(t.Context(), a.ID, time.Hour, time.Now()); eps != 0 || err != nil {
		t.Errorf("ε used %d, %v after reconcile", eps, err)
	}
	if lines := logLines(t, ts.logs.String(), "crashed session reconciled"); len(lines) != 1 || lines[0]["refunded"] != true {
		t.Errorf("reconcile log lines %v", lines)
	}
}

// TestTLSHandshakeErrorsRateLimited: a flood of failed handshakes logs a
// few lines per interval and then the count of those it suppressed.
func TestTLSHandshakeErrorsRateLimited(t *testing.T) {
	var buf bytes.Buffer
	m := newMetrics()
	w := newHTTPErrorLog(slog.New(slog.NewJSONHandler(&buf, nil)), m, time.Minute, 5)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w.now = func() time.Time { return now }
	for range 100 {
		fmt.Fprintf(w, "http: TLS handshake error from 127.0.0.1:4242: EOF\n")
	}
	fmt.Fprintf(w, "http: something else\n")
	now = now.Add(time.Minute)
	fmt.Fprintf(w, "http: TLS handshake error from 127.0.0.1:4243: EOF\n")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 7 {
		t.Fatalf("%d lines logged for 101 handshake errors and one other:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[5], "something else") || !strings.Contains(lines[6], `"suppressed_since_last":95`) {
		t.Errorf("lines:\n%s", buf.String())
	}
	var dm = map[string]any{}
	if err := json.Unmarshal([]byte(lines[0]), &dm); err != nil || dm["level"] != "WARN" {
		t.Errorf("first line %s", lines[0])
	}
}

// TestTLSHandshakeFlood: a server that meets 30 failed handshakes logs a
// handful of them and counts them all.
func TestTLSHandshakeFlood(t *testing.T) {
	t.Parallel()
	ts := startServer(t, seedStore(t, 0), nil)
	for range 30 {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) // not TLS
		io.Copy(io.Discard, c)
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(httptestGet(t, ts.AdminHandler(), "/metrics"), "overlap_tls_handshake_errors_total 30\n") {
		if time.Now().After(deadline) {
			t.Fatal("the 30 failed handshakes were not counted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := strings.Count(ts.logs.String(), "TLS handshake error"); n != 5 {
		t.Errorf("%d handshake errors logged, want 5 (the burst)", n)
	}
}
