package service

import (
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/ident"
	"github.com/overlap-psi/overlap/psi/idfile"
	"github.com/overlap-psi/overlap/psi/store"
)

var sampleDir = filepath.Join("..", "..", "testdata", "sample")

// seedSample imports the sample platform into st and returns its canonical
// identifier values.
func seedSample(t *testing.T, st store.Store) []string {
	t.Helper()
	opts := ident.Options{DefaultRegion: "US"}
	f, err := os.Open(filepath.Join(sampleDir, "platform_identifiers.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var values []string
	var readErr error
	_, err = st.ImportIdentifiers(t.Context(), func(yield func(store.Identifier) bool) {
		_, readErr = idfile.ReadRows(f, idfile.FormatCSV, opts, func(r idfile.Row) error {
			values = append(values, r.Identifier.Canonical)
			if !yield(store.Identifier{Subject: r.Subject, Kind: r.Kind, Value: r.Identifier.Canonical,
				Digest: r.Identifier.Digest, CollectedFor: store.Purpose(r.CollectedFor)}) {
				return errors.New("stopped")
			}
			return nil
		}, nil)
	}, store.ImportOptions{})
	if err = errors.Join(err, readErr); err != nil {
		t.Fatal(err)
	}
	g, err := os.Open(filepath.Join(sampleDir, "platform_consent.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	_, err = st.AppendConsent(t.Context(), func(yield func(store.ConsentEvent) bool) {
		_, readErr = idfile.ReadConsent(g, idfile.FormatCSV, opts, func(r idfile.ConsentRow) error {
			if !yield(store.ConsentEvent{Subject: r.Subject, Kind: r.Kind, Value: r.Identifier.Canonical,
				Purpose: r.Purpose, Granted: r.Granted, At: r.At, Source: r.Source, TextVersion: r.TextVersion}) {
				return errors.New("stopped")
			}
			return nil
		}, nil)
	}, store.ImportOptions{})
	if err = errors.Join(err, readErr); err != nil {
		t.Fatal(err)
	}
	return values
}

// TestLogsHoldNoSecrets runs the sample data end to end (two matches, a
// refusal and a malformed session) and checks that neither the server's log
// lines nor the audit table contain a sample identifier, the digest of
// one, an element or key material.
func TestLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	st := seedStore(t, 0)
	platform := seedSample(t, st)
	ts := startServer(t, st, nil)
	key := ts.addAdvertiser(t, "acme", store.Policy{Modes: store.ModesExact | store.ModesPrivate})
	cl := ts.client(t, key)

	var forbidden []string // values that must not appear
	addValue := func(v string) {
		d := sha256.Sum256([]byte(v))
		forbidden = append(forbidden, v, hex.EncodeToString(d[:]), strings.ToUpper(hex.EncodeToString(d[:])))
	}
	for _, v := range platform {
		addValue(v)
	}
	// Every raw cell of the advertiser's file that looks like an identifier.
	raw, err := os.ReadFile(filepath.Join(sampleDir, "advertiser_customers.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(string(raw))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows[1:] {
		for _, cell := range row[1:] {
			if cell = strings.TrimSpace(cell); len(cell) >= 6 {
				addValue(cell)
			}
		}
	}
	for _, c := range []struct {
		kind   psi.Kind
		column string
		want   int
	}{{psi.KindEmail, "email", 1128}, {psi.KindPhone, "phone", 303}} {
		list, err := idfile.ReadList(strings.NewReader(string(raw)), idfile.ListOptions{Format: idfile.FormatCSV, Kind: c.kind,
			Column: c.column, Ident: ident.Options{DefaultRegion: "US"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range list.Digests {
			forbidden = append(forbidden, hex.EncodeToString(d[:]))
		}
		res, err := cl.Match(t.Context(), client.MatchRequest{Kind: c.kind, Digests: list.Digests})
		if err != nil || res.Overlap != c.want {
			t.Fatalf("%v: overlap %d, %v; want %d", c.kind, res.Overlap, err, c.want)
		}
		// And in private mode, where the server computes the count.
		pres, err := cl.MatchPrivate(t.Context(), client.MatchRequest{Kind: c.kind, Digests: list.Digests})
		if err != nil || pres.Result.Count < c.want-60 || pres.Result.Count > c.want+60 {
			t.Fatalf("%v: private release %v, %v; true overlap %d", c.kind, pres.Result, err, c.want)
		}
	}
	// A refused and a malformed session log their reasons too.
	if _, err := match(t, cl, emails(0, 10)); err == nil {
		t.Fatal("a list of 10 was matched")
	}
	r, _ := openSession(t, cl, t.Context(), 100)
	bad := randomElements(100)
	copy(bad[32*5:], make([]byte, 32))
	r.send(chunk(0, bad))
	if err := r.finish(); err == nil {
		t.Fatal("the identity element was accepted")
	}
	ts.lastSession(t, 6)

	// Key material: the API key, its secret, its hash.
	k, _ := client.ParseAPIKey(key)
	h := k.Hash()
	forbidden = append(forbidden, key, strings.TrimPrefix(key, "ovl_"+k.ID+"_"), hex.EncodeToString(h[:]))

	ctxShutdown(t, ts)
	logs := ts.logs.String()
	var audit strings.Builder
	for _, rec := range ts.sessions(t) {
		fmt.Fprintf(&audit, "%+v %s\n", rec, rec.Detail)
	}
	if !strings.Contains(logs, `"result":"ok"`) || !strings.Contains(logs, "refused_min_list_size") || !strings.Contains(logs, "identity") {
		t.Fatalf("the log lacks the sessions:\n%s", logs)
	}
	for _, f := range forbidden {
		if strings.Contains(logs, f) {
			t.Errorf("the log contains %q", f)
		}
		if strings.Contains(audit.String(), f) {
			t.Errorf("the audit table contains %q", f)
		}
	}
	t.Logf("checked %d forbidden strings against %d bytes of logs and %d of audit rows", len(forbidden), len(logs), audit.Len())
}
