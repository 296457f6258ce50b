package store

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/dp"
)

// Private mode in the store: advertiser modes, the privacy budget, refunds
// and per-subject snapshots. The test bodies here run in the shared suites
// (runRegistrySuite, runStoreSuite), so both engines run them.

const (
	eps     = int64(dp.OneEpsilon) // 1 ε in micro-ε
	halfEps = eps / 2
)

func testModes(t *testing.T, s Store) {
	ctx := t.Context()
	// A new advertiser is served private mode only, whether it was added
	// with a zero policy or any other policy without modes.
	a := mustAdvertiser(t, s, "acme")
	b, err := s.AddAdvertiser(ctx, Advertiser{Name: "globex", CertName: "globex.example", Policy: Policy{Budget: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	for _, adv := range []Advertiser{a, b} {
		got, err := s.AdvertiserByName(ctx, adv.Name)
		if err != nil || adv.Policy.Modes != ModesPrivate || got.Policy.Modes != ModesPrivate {
			t.Errorf("new advertiser %s: added with modes %v, stored %v (%v); want private", adv.Name, adv.Policy.Modes, got.Policy.Modes, err)
		}
	}
	// Explicit modes and privacy fields are kept as given.
	both := Policy{Modes: ModesExact | ModesPrivate, PrivacyBudget: 3 * eps, PrivacyCost: eps / 4}
	c, err := s.AddAdvertiser(ctx, Advertiser{Name: "initech", CertName: "initech.example", Policy: both})
	if err != nil || c.Policy != both {
		t.Fatalf("AddAdvertiser(both modes) = %+v, %v", c.Policy, err)
	}
	if got, err := s.AdvertiserByCertName(ctx, "initech.example"); err != nil || got.Policy != both {
		t.Errorf("AdvertiserByCertName = %+v, %v; want %+v", got.Policy, err, both)
	}

	// SetAdvertiserPolicy replaces every override, modes included.
	for _, p := range []Policy{
		{Modes: ModesExact},
		{Modes: ModesExact | ModesPrivate, PrivacyBudget: 2 * eps, PrivacyCost: halfEps, Budget: 500},
		{Modes: ModesPrivate, PrivacyCost: 1}, // a cost with the server's default budget
		{Modes: ModesPrivate, MaxListSize: 50},
	} {
		got, err := s.SetAdvertiserPolicy(ctx, "acme", p)
		if err != nil || got.Policy != p {
			t.Errorf("SetAdvertiserPolicy(%+v) = %+v, %v", p, got.Policy, err)
		}
		if got, err := s.AdvertiserByKeyID(ctx, "id-acme"); err != nil || got.Policy != p {
			t.Errorf("after SetAdvertiserPolicy(%+v): read %+v, %v", p, got.Policy, err)
		}
	}
	kept := Policy{Modes: ModesPrivate, MaxListSize: 50}

	// Refused policies change nothing.
	for _, tc := range []struct {
		name string
		p    Policy
	}{
		// An advertiser must be served some mode, and only known ones.
		{"no mode", Policy{}},
		{"no mode with other fields", Policy{PrivacyBudget: eps}},
		{"mode 0", Policy{Modes: 1}},
		{"mode 3", Policy{Modes: 1 << 3}},
		{"exact and mode 3", Policy{Modes: ModesExact | 1<<3}},
		// Privacy amounts are non-negative, and a session must fit the
		// window's budget.
		{"negative privacy budget", Policy{Modes: ModesPrivate, PrivacyBudget: -1}},
		{"negative privacy cost", Policy{Modes: ModesPrivate, PrivacyCost: -1}},
		{"cost above budget", Policy{Modes: ModesPrivate, PrivacyBudget: eps, PrivacyCost: eps + 1}},
	} {
		if _, err := s.SetAdvertiserPolicy(ctx, "acme", tc.p); err == nil {
			t.Errorf("%s: SetAdvertiserPolicy(%+v) succeeded", tc.name, tc.p)
		}
		if tc.p.Modes != 0 {
			if _, err := s.AddAdvertiser(ctx, Advertiser{Name: "bad", CertName: "bad.example", Policy: tc.p}); err == nil {
				t.Errorf("%s: AddAdvertiser(%+v) succeeded", tc.name, tc.p)
			}
		}
	}
	if got, err := s.AdvertiserByName(ctx, "acme"); err != nil || got.Policy != kept {
		t.Errorf("after refused policies: %+v, %v; want %+v", got.Policy, err, kept)
	}
	if _, err := s.AdvertiserByName(ctx, "bad"); !errors.Is(err, ErrUnknownAdvertiser) {
		t.Errorf("a refused advertiser was added: %v", err)
	}
	// The database refuses a mode set the package would not write.
	if err := rawExec(t, s, "UPDATE advertisers SET modes = 0"); err == nil {
		t.Error("UPDATE advertisers SET modes = 0 succeeded")
	}
	list, err := s.Advertisers(ctx)
	if err != nil || len(list) != 3 || list[0].Policy != kept || list[2].Policy != both {
		t.Errorf("Advertisers = %+v, %v", list, err)
	}
}

func testPrivacyBudget(t *testing.T, s Store) {
	ctx := t.Context()
	a := mustAdvertiser(t, s, "acme")
	const window = 24 * time.Hour
	req := func(session string, ids, epsilon int64, at time.Time) BudgetRequest {
		return BudgetRequest{Advertiser: a.ID, Session: session, Identifiers: ids, Limit: 1000, Window: window, At: at,
			Epsilon: epsilon, EpsilonLimit: 2 * eps}
	}
	used := func(at time.Time) (ids, epsilon int64) {
		t.Helper()
		ids, err := s.BudgetUsed(ctx, a.ID, window, at)
		if err != nil {
			t.Fatal(err)
		}
		epsilon, err = s.EpsilonUsed(ctx, a.ID, window, at)
		if err != nil {
			t.Fatal(err)
		}
		return ids, epsilon
	}

	// Four sessions of ε 0.5 fit a budget of ε 2, each reporting what the
	// window holds with it.
	for i := range 4 {
		at := t0.Add(time.Duration(i) * time.Hour)
		st, err := s.ReserveBudget(ctx, req(fmt.Sprint("p", i), 100, halfEps, at))
		want := BudgetStatus{Used: int64(i+1) * 100, Limit: 1000, EpsilonUsed: int64(i+1) * halfEps, EpsilonLimit: 2 * eps}
		if err != nil || !reflect.DeepEqual(st, want) {
			t.Fatalf("reservation %d = %+v, %v; want %+v", i, st, err, want)
		}
	}
	spends := rawInt(t, s, "SELECT count(*) FROM budget_spend")
	if spends != 4 {
		t.Errorf("budget_spend has %d rows, want one per reservation (4)", spends)
	}

	// The fifth is refused: the privacy budget, in micro-ε, and when the
	// first spend leaves the window.
	late := t0.Add(4 * time.Hour)
	_, err := s.ReserveBudget(ctx, req("p4", 100, halfEps, late))
	var be *BudgetError
	if !errors.As(err, &be) || !errors.Is(err, ErrBudgetExhausted) {
		t.Fatalf("over the privacy budget: %v", err)
	}
	if want := (BudgetError{Budget: BudgetPrivacy, Used: 2 * eps, Limit: 2 * eps, Requested: halfEps, ResetsAt: t0.Add(window)}); *be != want {
		t.Errorf("BudgetError = %+v, want %+v", *be, want)
	}
	if got, want := err.Error(), "privacy budget exhausted: ε 2 of 2 used in the current window, a session of ε 0.5 does not fit until 2025-03-02T12:00:00Z"; got != want {
		t.Errorf("error = %q\nwant    %q", got, want)
	}

	// Refusals record nothing, of either budget.
	for _, tc := range []struct {
		name   string
		r      BudgetRequest
		budget string
		resets time.Time
		text   string
	}{
		// More ε than the whole budget never fits.
		{"whole privacy budget", req("p5", 1, 2*eps+1, late), BudgetPrivacy, time.Time{},
			"privacy budget exhausted: a session of ε 2.000001 is more than the whole budget of ε 2 per window"},
		// An identifier budget refusal names that budget, even with ε to spare.
		{"identifiers", func() BudgetRequest { r := req("p6", 601, 0, late); return r }(), BudgetIdentifiers, t0.Add(window),
			"identifier budget exhausted: 400 of 1000 used in the current window, a list of 601 does not fit until 2025-03-02T12:00:00Z"},
		// Neither fits: the error names the budget that frees up later, so
		// the session does fit at ResetsAt. The identifiers fit again when
		// the first spend leaves (t0+24h), the ε only when the second does.
		{"both, privacy later", func() BudgetRequest { r := req("p7", 601, eps, late); return r }(), BudgetPrivacy, t0.Add(window + time.Hour), ""},
		// ... and the identifiers later (here: never).
		{"both, identifiers never", req("p8", 1001, halfEps, late), BudgetIdentifiers, time.Time{}, ""},
	} {
		_, err := s.ReserveBudget(ctx, tc.r)
		if !errors.As(err, &be) || !errors.Is(err, ErrBudgetExhausted) || be.Budget != tc.budget || !be.ResetsAt.Equal(tc.resets) {
			t.Errorf("%s: err = %v (%+v); want the %s budget, resetting at %v", tc.name, err, be, tc.budget, tc.resets)
			continue
		}
		if tc.text != "" && err.Error() != tc.text {
			t.Errorf("%s: error = %q\nwant %q", tc.name, err, tc.text)
		}
	}
	if ids, epsilon := used(late); ids != 400 || epsilon != 2*eps {
		t.Errorf("after refusals: used %d identifiers and %d micro-ε, want 400 and %d", ids, epsilon, 2*eps)
	}
	if n := rawInt(t, s, "SELECT count(*) FROM budget_spend"); n != spends {
		t.Errorf("refusals recorded spends: %d rows, want %d", n, spends)
	}

	// An exact-mode session spends no ε, so an exhausted privacy budget
	// does not stop it.
	if st, err := s.ReserveBudget(ctx, req("x1", 100, 0, late)); err != nil || st.Used != 500 || st.EpsilonUsed != 2*eps {
		t.Errorf("exact-mode session with the privacy budget spent: %+v, %v", st, err)
	}
	// When the first spend leaves the window, one session of ε 0.5 fits.
	if st, err := s.ReserveBudget(ctx, req("p9", 100, halfEps, t0.Add(window))); err != nil || st.EpsilonUsed != 2*eps {
		t.Errorf("after the reset: %+v, %v", st, err)
	}

	// Invalid requests.
	for _, tc := range []struct {
		name string
		r    BudgetRequest
	}{
		{"ε without a limit", func() BudgetRequest { r := req("v1", 1, halfEps, late); r.EpsilonLimit = 0; return r }()},
		{"negative ε", req("v2", 1, -1, late)},
		{"negative ε limit", func() BudgetRequest { r := req("v3", 1, 0, late); r.EpsilonLimit = -1; return r }()},
	} {
		if _, err := s.ReserveBudget(ctx, tc.r); err == nil || errors.Is(err, ErrBudgetExhausted) {
			t.Errorf("%s: err = %v, want a validation error", tc.name, err)
		}
	}
}

// reserveConcurrently runs the requests at once and reports which
// succeeded; any error but ErrBudgetExhausted fails the test.
func reserveConcurrently(t *testing.T, s Store, reqs []BudgetRequest) []bool {
	ok := make([]bool, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Go(func() {
			_, err := s.ReserveBudget(t.Context(), r)
			switch {
			case err == nil:
				ok[i] = true
			case !errors.Is(err, ErrBudgetExhausted):
				t.Errorf("reservation %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	return ok
}

func testPrivacyBudgetConcurrent(t *testing.T, s Store) {
	a := mustAdvertiser(t, s, "acme")
	b := mustAdvertiser(t, s, "globex")
	// 20 sessions of ε 0.5 per advertiser against ε 2, interleaved across
	// two advertisers: exactly 4 fit for each, and the winners' spends are
	// what the store holds.
	var reqs []BudgetRequest
	for i := range 40 {
		adv := a.ID
		if i%2 == 1 {
			adv = b.ID
		}
		reqs = append(reqs, BudgetRequest{Advertiser: adv, Session: fmt.Sprint("s", i), Identifiers: 10, Limit: 1 << 20,
			Window: time.Hour, At: t0, Epsilon: halfEps, EpsilonLimit: 2 * eps})
	}
	ok := reserveConcurrently(t, s, reqs)
	for _, adv := range []int64{a.ID, b.ID} {
		granted := 0
		for i, r := range reqs {
			if r.Advertiser == adv && ok[i] {
				granted++
			}
		}
		epsilon, err := s.EpsilonUsed(t.Context(), adv, time.Hour, t0)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := s.BudgetUsed(t.Context(), adv, time.Hour, t0)
		if err != nil {
			t.Fatal(err)
		}
		if granted != 4 || epsilon != 2*eps || ids != 40 {
			t.Errorf("advertiser %d: %d granted, ε used %d, identifiers used %d; want 4, %d, 40", adv, granted, epsilon, ids, 2*eps)
		}
	}
}

func testRefunds(t *testing.T, s Store) {
	ctx := t.Context()
	a := mustAdvertiser(t, s, "acme")
	b := mustAdvertiser(t, s, "globex")
	const window = time.Hour
	req := func(adv int64, session string, ids int64) BudgetRequest {
		return BudgetRequest{Advertiser: adv, Session: session, Identifiers: ids, Limit: 100, Window: window, At: t0,
			Epsilon: halfEps, EpsilonLimit: 3 * halfEps}
	}
	wantUsed := func(what string, adv, ids, epsilon int64) {
		t.Helper()
		gotIDs, err1 := s.BudgetUsed(ctx, adv, window, t0)
		gotEps, err2 := s.EpsilonUsed(ctx, adv, window, t0)
		if err := errors.Join(err1, err2); err != nil || gotIDs != ids || gotEps != epsilon {
			t.Errorf("%s: used %d identifiers and %d micro-ε (%v); want %d and %d", what, gotIDs, gotEps, err, ids, epsilon)
		}
	}
	for _, r := range []BudgetRequest{req(a.ID, "s1", 10), req(a.ID, "s2", 20), req(b.ID, "shared", 5), req(a.ID, "shared", 7)} {
		if _, err := s.ReserveBudget(ctx, r); err != nil {
			t.Fatalf("ReserveBudget(%s): %v", r.Session, err)
		}
	}
	wantUsed("before refunds", a.ID, 37, 3*halfEps)
	// acme's privacy budget of ε 1.5 is spent: one more session of ε 0.5
	// does not fit.
	if _, err := s.ReserveBudget(ctx, req(a.ID, "s3", 1)); !errors.Is(err, ErrBudgetExhausted) {
		t.Fatalf("before refunds: %v, want the budget exhausted", err)
	}

	// A refunded session counts toward neither budget, and refunding it
	// again changes nothing.
	for i := range 2 {
		if err := s.RefundBudget(ctx, a.ID, "s1", t0.Add(time.Minute)); err != nil {
			t.Fatalf("refund %d of s1: %v", i+1, err)
		}
		wantUsed(fmt.Sprint("after refund ", i+1), a.ID, 27, 2*halfEps)
	}
	if err := s.RefundBudget(ctx, a.ID, "s2", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	wantUsed("after refunding s2", a.ID, 7, halfEps)
	// The reservation now fits, because refunds are left out there too.
	if st, err := s.ReserveBudget(ctx, req(a.ID, "s3", 1)); err != nil || st.Used != 8 || st.EpsilonUsed != eps {
		t.Errorf("after refunds: %+v, %v", st, err)
	}

	// Refunds that are refused.
	for _, tc := range []struct {
		name    string
		adv     int64
		session string
		noSpend bool
	}{
		{"unknown session", a.ID, "nope", true},
		{"another advertiser's session", b.ID, "s2", true},
		{"unknown advertiser", b.ID + 99, "s1", true},
		{"empty session", a.ID, "", false},
	} {
		err := s.RefundBudget(ctx, tc.adv, tc.session, t0)
		if err == nil || errors.Is(err, ErrNoBudgetSpend) != tc.noSpend {
			t.Errorf("%s: RefundBudget = %v (want ErrNoBudgetSpend: %t)", tc.name, err, tc.noSpend)
		}
	}
	if err := s.RefundBudget(ctx, a.ID, "s1", time.Time{}); err == nil {
		t.Error("a refund without a time succeeded")
	}
	// A session id refunds once: two advertisers' sessions of the same id
	// cannot both be refunded, and the second refund says so rather than
	// doing nothing.
	if err := s.RefundBudget(ctx, b.ID, "shared", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.RefundBudget(ctx, a.ID, "shared", t0); err == nil || errors.Is(err, ErrNoBudgetSpend) {
		t.Errorf("refunding a session id refunded for another advertiser: %v", err)
	}
	wantUsed("globex after its refund", b.ID, 0, 0)
	wantUsed("acme, whose shared session was not refunded", a.ID, 8, eps)

	// Rows stay: spends and refunds are append-only.
	if n := rawInt(t, s, "SELECT count(*) FROM budget_spend"); n != 5 {
		t.Errorf("budget_spend has %d rows, want 5", n)
	}
	if n := rawInt(t, s, "SELECT count(*) FROM budget_refunds"); n != 3 {
		t.Errorf("budget_refunds has %d rows, want 3", n)
	}
	for _, q := range []string{"UPDATE budget_refunds SET session_id = 'x'", "DELETE FROM budget_refunds"} {
		if err := rawExec(t, s, q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want the append-only trigger", q, err)
		}
	}
	if _, ok := s.(*Postgres); ok {
		if err := rawExec(t, s, "TRUNCATE budget_refunds"); err == nil {
			t.Error("TRUNCATE budget_refunds succeeded")
		}
	}
}

// valuesOf names digests by the test values they hash, for messages (the
// values are made up).
func valuesOf(ds [][32]byte, values []string) []string {
	var out []string
	for _, d := range ds {
		name := fmt.Sprintf("%x…", d[:4])
		for _, v := range values {
			if digestOf(v) == d {
				name = v
			}
		}
		out = append(out, name)
	}
	return out
}

// snapPerSubject is snap for SnapshotPerSubject.
func snapPerSubject(t testing.TB, s Store, kind psi.Kind, maxPerSubject int) ([][32]byte, SnapshotInfo) {
	t.Helper()
	var got [][32]byte
	info, err := s.SnapshotPerSubject(t.Context(), kind, maxPerSubject, func(d [32]byte) error {
		if n := len(got); n > 0 && bytes.Compare(got[n-1][:], d[:]) >= 0 {
			t.Errorf("snapshot not strictly ascending at %d", n)
		}
		got = append(got, d)
		return nil
	})
	if err != nil {
		t.Fatalf("SnapshotPerSubject(%v, %d): %v", kind, maxPerSubject, err)
	}
	if info.Size != int64(len(got)) || info.Digest != snapshotDigest(kind, got) || info.MaxPerSubject != maxPerSubject {
		t.Errorf("SnapshotPerSubject(%v, %d) = %+v; streamed %d digests, digest %x", kind, maxPerSubject, info, len(got), snapshotDigest(kind, got))
	}
	return got, info
}

func testSnapshotPerSubject(t *testing.T, s Store) {
	ctx := t.Context()
	// Imported in this order, so identifier ids follow it.
	mustImport(t, s,
		// u1: two emails granted one at a time, the later-imported one
		// first; a phone given for two-factor authentication.
		ident("u1", psi.KindEmail, "ana@example.com", Signup),
		ident("u1", psi.KindEmail, "ana.work@example.com", Profile),
		ident("u1", psi.KindPhone, "+14155550100", TwoFactor),
		// u2: two emails under one subject-wide grant: the tie goes to the
		// identifier imported first.
		ident("u2", psi.KindEmail, "bo@example.com", Signup),
		ident("u2", psi.KindEmail, "bo.work@example.com", Profile),
		// u3: two emails granted at the same time: the tie goes to the
		// event recorded first.
		ident("u3", psi.KindEmail, "cy@example.com", Signup),
		ident("u3", psi.KindEmail, "cy.work@example.com", Signup),
		// u4: the earliest-granted phone is a two-factor one; it never
		// counts, and does not use up the cap.
		ident("u4", psi.KindPhone, "+14155550140", TwoFactor),
		ident("u4", psi.KindPhone, "+14155550141", Profile),
		// u5: the earliest-granted email was withdrawn since.
		ident("u5", psi.KindEmail, "di@example.com", Signup),
		ident("u5", psi.KindEmail, "di.work@example.com", Signup),
		// u6 and u7 share an email; u6's earliest grant is for it.
		ident("u6", psi.KindEmail, "shared@example.com", Signup),
		ident("u6", psi.KindEmail, "ed@example.com", Signup),
		ident("u7", psi.KindEmail, "shared@example.com", Profile),
	)
	mustAppend(t, s,
		scoped("u1", psi.KindEmail, "ana.work@example.com", true, t0),
		scoped("u1", psi.KindEmail, "ana@example.com", true, t0.Add(time.Hour)),
		wide("u1", true, t0.Add(-time.Hour)), // older than both: covers the phone only
		wide("u2", true, t0),
		scoped("u3", psi.KindEmail, "cy.work@example.com", true, t0),
		scoped("u3", psi.KindEmail, "cy@example.com", true, t0),
		scoped("u4", psi.KindPhone, "+14155550140", true, t0),
		scoped("u4", psi.KindPhone, "+14155550141", true, t0.Add(time.Hour)),
		scoped("u5", psi.KindEmail, "di@example.com", true, t0),
		scoped("u5", psi.KindEmail, "di.work@example.com", true, t0.Add(time.Hour)),
		scoped("u5", psi.KindEmail, "di@example.com", false, t0.Add(2*time.Hour)),
		scoped("u6", psi.KindEmail, "shared@example.com", true, t0),
		scoped("u6", psi.KindEmail, "ed@example.com", true, t0.Add(time.Hour)),
		wide("u7", true, t0),
	)
	allEmails := []string{"ana@example.com", "ana.work@example.com", "bo@example.com", "bo.work@example.com",
		"cy@example.com", "cy.work@example.com", "di.work@example.com", "shared@example.com", "ed@example.com"}
	allValues := append(slices.Clone(allEmails), "di@example.com", "+14155550100", "+14155550140", "+14155550141")
	for _, tc := range []struct {
		kind  psi.Kind
		max   int
		wants []string
	}{
		// One per subject: the earliest grant, then the first event, then
		// the first identifier. The shared email appears once.
		{psi.KindEmail, 1, []string{"ana.work@example.com", "bo@example.com", "cy.work@example.com", "di.work@example.com", "shared@example.com"}},
		// Two per subject: everyone's consented emails.
		{psi.KindEmail, 2, allEmails},
		{psi.KindEmail, MaxSnapshotPerSubject, allEmails},
		// The two-factor phones never appear, whatever the cap.
		{psi.KindPhone, 1, []string{"+14155550141"}},
		{psi.KindPhone, 2, []string{"+14155550141"}},
		{psi.KindPhone, MaxSnapshotPerSubject, []string{"+14155550141"}},
		{psi.KindID, 1, nil},
	} {
		got, info := snapPerSubject(t, s, tc.kind, tc.max)
		if want := sortedDigests(tc.wants...); !slices.Equal(got, want) {
			t.Errorf("SnapshotPerSubject(%v, %d) = %q, want %q", tc.kind, tc.max, valuesOf(got, allValues), valuesOf(want, allValues))
		}
		if info.Size != int64(len(tc.wants)) {
			t.Errorf("SnapshotPerSubject(%v, %d).Size = %d, want %d", tc.kind, tc.max, info.Size, len(tc.wants))
		}
	}
	// With a cap no subject reaches, the capped snapshot is the snapshot.
	_, capped := snapPerSubject(t, s, psi.KindEmail, 3)
	_, plain := snap(t, s, psi.KindEmail)
	if capped.Digest != plain.Digest || capped.Size != plain.Size || plain.MaxPerSubject != 0 {
		t.Errorf("cap 3: %+v; uncapped %+v", capped, plain)
	}

	// A withdrawal frees the cap for the subject's next identifier.
	mustAppend(t, s, scoped("u1", psi.KindEmail, "ana.work@example.com", false, t0.Add(3*time.Hour)))
	got, _ := snapPerSubject(t, s, psi.KindEmail, 1)
	if want := sortedDigests("ana@example.com", "bo@example.com", "cy.work@example.com", "di.work@example.com", "shared@example.com"); !slices.Equal(got, want) {
		t.Errorf("after u1's withdrawal: %q, want %q", valuesOf(got, allValues), valuesOf(want, allValues))
	}

	// The cap is recorded with the snapshot.
	list, err := s.Snapshots(ctx, psi.KindEmail, 3)
	if err != nil || len(list) != 3 {
		t.Fatalf("Snapshots = %v, %v", list, err)
	}
	if list[0].MaxPerSubject != 1 || list[1].MaxPerSubject != 0 || list[1] != plain || list[2] != capped {
		t.Errorf("Snapshots = %+v; want caps 1, 0 (%+v), 3 (%+v)", list, plain, capped)
	}

	// Bad arguments record nothing.
	before := tableCounts(t, s)
	for _, tc := range []struct {
		kind psi.Kind
		max  int
	}{
		// The cap is 1..2^16.
		{psi.KindEmail, 0},
		{psi.KindEmail, -1},
		{psi.KindEmail, MaxSnapshotPerSubject + 1},
		// The kind must be valid.
		{0, 1},
		{9, 1},
	} {
		if _, err := s.SnapshotPerSubject(ctx, tc.kind, tc.max, func([32]byte) error { return nil }); err == nil {
			t.Errorf("SnapshotPerSubject(%v, %d) succeeded", tc.kind, tc.max)
		}
	}
	stop := errors.New("stop")
	if _, err := s.SnapshotPerSubject(ctx, psi.KindEmail, 1, func([32]byte) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("SnapshotPerSubject with failing fn: %v", err)
	}
	if after := tableCounts(t, s); !mapsEqual(before, after) {
		t.Errorf("refused snapshots were recorded: %v -> %v", before, after)
	}
}

// testTieByImportOrder: identifiers under one subject-wide grant tie, and
// the tie goes to the one imported first, on both engines, also when the
// subjects existed before in another order and one import brings many.
func testTieByImportOrder(t *testing.T, s Store) {
	const n = 1000
	var events []ConsentEvent
	var crm []Identifier // subjects exist first, in reverse order
	for i := n - 1; i >= 0; i-- {
		crm = append(crm, ident(fmt.Sprintf("t%04d", i), psi.KindID, fmt.Sprintf("crm-%04d", i), Signup))
		events = append(events, wide(fmt.Sprintf("t%04d", i), true, t0))
	}
	mustImport(t, s, crm...)
	mustAppend(t, s, events...)
	var ids []Identifier
	var first []string
	for i := range n {
		subject := fmt.Sprintf("t%04d", i)
		a, b := fmt.Sprintf("%s.a@example.com", subject), fmt.Sprintf("%s.b@example.com", subject)
		if i%2 == 1 {
			a, b = b, a
		}
		ids = append(ids, ident(subject, psi.KindEmail, a, Signup), ident(subject, psi.KindEmail, b, Signup))
		first = append(first, a)
	}
	// Imported from the last subject to the first.
	slices.Reverse(ids)
	for i := range n {
		ids[2*i], ids[2*i+1] = ids[2*i+1], ids[2*i]
	}
	mustImport(t, s, ids...)
	got, _ := snapPerSubject(t, s, psi.KindEmail, 1)
	if want := sortedDigests(first...); !slices.Equal(got, want) {
		t.Errorf("capped snapshot keeps %d digests; want the %d first imported", len(got), len(want))
	}
}

func TestModeSet(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want ModeSet
		str  string
	}{
		{"exact", ModesExact, "exact"},
		{"private", ModesPrivate, "private"},
		{"exact,private", ModesExact | ModesPrivate, "exact,private"},
		{"private,exact", ModesExact | ModesPrivate, "exact,private"},
		{"both", ModesExact | ModesPrivate, "exact,private"},
	} {
		got, err := ParseModeSet(tc.in)
		if err != nil || got != tc.want || got.String() != tc.str || !got.Valid() {
			t.Errorf("ParseModeSet(%q) = %v (%d), %v; want %s", tc.in, got, got, err, tc.str)
		}
		if back, err := ParseModeSet(got.String()); err != nil || back != got {
			t.Errorf("ParseModeSet(%q) = %v, %v; String does not round-trip", got.String(), back, err)
		}
	}
	for _, in := range []string{
		// Empty or unknown names.
		"", "none", "Exact", "PRIVATE", "all", "exact,both", "mode2", "1",
		// Bad separators and spacing.
		"exact,", ",private", "exact,,private", "exact;private", "exact private", " exact", "exact, private",
		// A mode named twice.
		"exact,exact", "private,exact,private",
	} {
		if got, err := ParseModeSet(in); err == nil {
			t.Errorf("ParseModeSet(%q) = %v, want an error", in, got)
		} else if !strings.HasPrefix(err.Error(), "store: ") {
			t.Errorf("ParseModeSet(%q): error %q has no package prefix", in, err)
		}
	}
	// Has takes the wire code (SPEC.md §2: exact 1, private 2).
	for _, tc := range []struct {
		m              ModeSet
		exact, private bool
	}{
		{ModesExact, true, false},
		{ModesPrivate, false, true},
		{ModesExact | ModesPrivate, true, true},
		{0, false, false},
	} {
		if tc.m.Has(1) != tc.exact || tc.m.Has(2) != tc.private || tc.m.Has(0) || tc.m.Has(200) {
			t.Errorf("%v.Has: exact %t, private %t", tc.m, tc.m.Has(1), tc.m.Has(2))
		}
	}
	// Sets this version would not store.
	for _, m := range []ModeSet{0, 1, 1 << 3, ModesExact | 1<<7} {
		if m.Valid() {
			t.Errorf("%v (%d) is valid", m, m)
		}
	}
	if got := (ModesPrivate | 1<<3).String(); got != "private,mode3" {
		t.Errorf("String of an unknown mode = %q", got)
	}
}
