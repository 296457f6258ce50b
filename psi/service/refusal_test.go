package service

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/store"
)

// TestRefusals checks every policy refusal: the error code, the limit it
// names, that nothing was evaluated, and the audit row.
func TestRefusals(t *testing.T) {
	t.Parallel()
	ts := startServer(t, seedStore(t, 300), func(c *Config) { c.MaxSessions = 2 })
	ctx := t.Context()
	acme := ts.addAdvertiser(t, "acme", store.Policy{})
	small := ts.addAdvertiser(t, "small", store.Policy{MaxListSize: 200, Budget: 500})
	gone := ts.addAdvertiser(t, "gone", store.Policy{})
	if _, err := ts.st.RevokeAdvertiser(ctx, "gone", time.Now()); err != nil {
		t.Fatal(err)
	}
	wrong, _ := client.NewAPIKey()
	wrongSecret := acme[:len(acme)-4] + "aaaa"

	expect := func(t *testing.T, err error, code connect.Code, limit string) {
		t.Helper()
		if connect.CodeOf(err) != code {
			t.Fatalf("err = %v (%v), want code %v", err, connect.CodeOf(err), code)
		}
		r, ok := client.RefusalOf(err)
		if limit != "" && (!ok || r.Limit != limit) {
			t.Fatalf("err = %v, refusal %+v; want limit %s", err, r, limit)
		}
	}

	t.Run("TooSmall", func(t *testing.T) {
		_, err := match(t, ts.client(t, acme), emails(0, 99))
		expect(t, err, connect.CodeFailedPrecondition, client.LimitMinListSize)
		if !strings.Contains(err.Error(), "below the minimum of 100") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("TooLarge", func(t *testing.T) {
		_, err := match(t, ts.client(t, small), emails(0, 201))
		expect(t, err, connect.CodeFailedPrecondition, client.LimitMaxListSize)
	})
	t.Run("BudgetExhausted", func(t *testing.T) {
		c := ts.client(t, small)
		if _, err := match(t, c, emails(0, 200)); err != nil {
			t.Fatal(err)
		}
		if _, err := match(t, c, emails(0, 200)); err != nil {
			t.Fatal(err)
		}
		before := time.Now()
		_, err := match(t, c, emails(0, 150))
		expect(t, err, connect.CodeResourceExhausted, client.LimitBudget)
		r, _ := client.RefusalOf(err)
		window := DefaultPolicy().BudgetWindow
		if r.ResetsAt.Before(before.Add(window-time.Minute)) || r.ResetsAt.After(time.Now().Add(window+time.Second)) {
			t.Errorf("resets at %v, want about now + 30 days", r.ResetsAt)
		}
		// A refusal spends nothing; 100 still fit.
		if _, err := match(t, c, emails(0, 100)); err != nil {
			t.Errorf("the remaining budget: %v", err)
		}
	})
	t.Run("Revoked", func(t *testing.T) {
		_, err := match(t, ts.client(t, gone), emails(0, 100))
		expect(t, err, connect.CodePermissionDenied, "")
	})
	t.Run("WrongKey", func(t *testing.T) {
		_, err := match(t, ts.client(t, wrong.Reveal()), emails(0, 100))
		expect(t, err, connect.CodeUnauthenticated, "")
		_, err = match(t, ts.client(t, wrongSecret), emails(0, 100))
		expect(t, err, connect.CodeUnauthenticated, "")
	})
	t.Run("NoKey", func(t *testing.T) {
		_, err := match(t, ts.client(t, ""), emails(0, 100))
		expect(t, err, connect.CodeUnauthenticated, "")
		if !strings.Contains(err.Error(), "no credentials") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("SecondSessionInFlight", func(t *testing.T) {
		c := ts.client(t, acme)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		r, _ := openSession(t, c, ctx, 100) // held open
		_, err := match(t, c, emails(0, 100))
		expect(t, err, connect.CodeResourceExhausted, client.LimitAdvertiserSessions)
		n := len(ts.sessions(t))
		r.abort()
		ts.lastSession(t, n+1)
	})
	t.Run("GlobalLimit", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		r1, _ := openSession(t, ts.client(t, acme), ctx, 100)
		r2, _ := openSession(t, ts.client(t, ts.addAdvertiser(t, "second", store.Policy{})), ctx, 100)
		other := ts.addAdvertiser(t, "other", store.Policy{})
		_, err := match(t, ts.client(t, other), emails(0, 100))
		expect(t, err, connect.CodeResourceExhausted, client.LimitServerSessions)
		n := len(ts.sessions(t))
		r1.abort()
		r2.abort()
		ts.lastSession(t, n+2)
	})

	// Every refusal by an authenticated advertiser is audited; nothing was
	// evaluated for any of them.
	time.Sleep(200 * time.Millisecond)
	results := map[string]int{}
	for _, r := range ts.sessions(t) {
		results[r.Result]++
		if r.Result != ResultOK && r.Result != ResultAbandoned && r.ServerSize != 0 {
			t.Errorf("refused session %s got a set: %+v", r.Result, r)
		}
	}
	for _, want := range []string{"refused_min_list_size", "refused_max_list_size", "refused_budget",
		"refused_advertiser_sessions", "refused_server_sessions", ResultPermissionDenied} {
		if results[want] != 1 {
			t.Errorf("audit rows %v: want one %s", results, want)
		}
	}
	if results[ResultOK] != 3 || results[ResultAbandoned] != 3 {
		t.Errorf("audit rows %v: want 3 ok and 3 abandoned", results)
	}
	m := httptestGet(t, ts.AdminHandler(), "/metrics")
	for _, want := range []string{`overlap_budget_refusals_total 1`, `overlap_sessions_total{result="unauthenticated"} 3`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(m, "overlap_"))
		}
	}
}

func TestPolicyValidation(t *testing.T) {
	st := seedStore(t, 0)
	for _, p := range []Policy{
		{MinListSize: 0, MaxListSize: 10, Budget: 1, BudgetWindow: time.Hour},
		{MinListSize: 10, MaxListSize: 5, Budget: 1, BudgetWindow: time.Hour},
		{MinListSize: 1, MaxListSize: 1 << 29, Budget: 1, BudgetWindow: time.Hour},
		{MinListSize: 1, MaxListSize: 10, Budget: 0, BudgetWindow: time.Hour},
	} {
		if _, err := New(Config{Store: st, Policy: p}); err == nil {
			t.Errorf("New accepted policy %+v", p)
		}
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New accepted no store")
	}
	var _ = errors.New
	var _ = psi.KindEmail
}

// TestHelloRefusals: a hello for a mode, kind or canonicalization the server
// does not serve is refused before any work, naming the limit.
func TestHelloRefusals(t *testing.T) {
	t.Parallel()
	ts := startServer(t, seedStore(t, 200), nil)
	cl := ts.client(t, ts.addAdvertiser(t, "acme", store.Policy{}))
	for _, tc := range []struct {
		name  string
		edit  func(b []byte)
		code  connect.Code
		limit string
	}{
		// acme is served exact mode only.
		{"PrivateMode", func(b []byte) { b[2] = 2 }, connect.CodeFailedPrecondition, client.LimitMode},
		{"EpochModeNotServed", func(b []byte) { b[2] = 3 }, connect.CodeFailedPrecondition, client.LimitMode},
		{"UnknownMode", func(b []byte) { b[2] = 5 }, connect.CodeUnimplemented, client.LimitMode},
		{"UnknownKind", func(b []byte) { b[3] = 9 }, connect.CodeInvalidArgument, client.LimitKind},
		{"CanonVersion", func(b []byte) { b[5] = 2 }, connect.CodeFailedPrecondition, client.LimitCanonicalization},
		{"CanonFlags", func(b []byte) { b[7] = 1 }, connect.CodeFailedPrecondition, client.LimitCanonicalization},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := raw(cl, t.Context())
			defer r.abort()
			h := hello(100)
			tc.edit(h)
			r.send(h)
			err := r.finish()
			if connect.CodeOf(err) != tc.code {
				t.Fatalf("err = %v, want %v", err, tc.code)
			}
			if ref, ok := client.RefusalOf(err); !ok || ref.Limit != tc.limit {
				t.Errorf("refusal %+v, want %s", ref, tc.limit)
			}
		})
	}
	for _, r := range ts.sessions(t) {
		if r.SnapshotVersion != 0 || r.BudgetSpent != 0 {
			t.Errorf("a refused hello reached the store: %+v", r)
		}
	}
}
