//go:build !advertiser

package main

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/dp"
	"github.com/overlap-psi/overlap/psi/ident"
	"github.com/overlap-psi/overlap/psi/idfile"
	"github.com/overlap-psi/overlap/psi/idfile/idfiletest"
	"github.com/overlap-psi/overlap/psi/service"
	"github.com/overlap-psi/overlap/psi/store"
	"github.com/overlap-psi/overlap/psi/wire"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run a whole match on the sample data in testdata/sample: SQLite store, real server and client over TLS on loopback",
		Description: "Seeds a fresh SQLite consent store with the sample platform (3,000 users, some\n" +
			"phones given only for two-factor authentication, some consents withdrawn), then\n" +
			"starts the match server on a loopback port (TLS 1.3 with a development\n" +
			"certificate), registers an advertiser served both modes, matches the sample\n" +
			"advertiser list through the real client in exact mode for emails and for phone\n" +
			"numbers, checking each count against the plain overlap computed in\n" +
			"testdata/sample, then matches the emails in private mode, where the platform\n" +
			"counts and releases a noised count, and shows what each side learned. Last, it\n" +
			"matches the same file as a customer file, email and phone together, counting\n" +
			"customers (SPEC.md §13) in exact and in private mode, and checks the counts\n" +
			"against a plain computation over the sample files.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data", Usage: "folder with the sample data", Value: filepath.Join("testdata", "sample")},
			&cli.StringFlag{Name: "db", Usage: "SQLite file for the demo store (default: a temporary file, removed afterwards)"},
		},
		Action: demo,
	}
}

type expected struct {
	EmailDistinct int `json:"email_distinct"`
	EmailOverlap  int `json:"email_overlap"`
	EmailNaive    int `json:"email_overlap_ignoring_consent"`
	PhoneDistinct int `json:"phone_distinct"`
	PhoneOverlap  int `json:"phone_overlap"`
	PhoneNaive    int `json:"phone_overlap_ignoring_consent"`
}

func demo(c *cli.Context) error {
	out := c.App.Writer
	data := c.String("data")
	var want expected
	b, err := os.ReadFile(filepath.Join(data, "expected.json"))
	if err != nil {
		return withHint(err, "run the demo from the repository root, or pass --data pointing at testdata/sample")
	}
	if err := json.Unmarshal(b, &want); err != nil {
		return fmt.Errorf("reading %s: %w", filepath.Join(data, "expected.json"), err)
	}

	dbPath := c.String("db")
	if dbPath == "" {
		dir, err := os.MkdirTemp("", "overlap-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		dbPath = filepath.Join(dir, "demo.db")
	}
	st, err := store.OpenSQLite(dbPath)
	if err != nil {
		return err
	}
	defer st.Close()

	fmt.Fprintf(out, "Platform: seeding the consent store (SQLite, %s)\n", dbPath)
	if err := seedDemo(c, st, data); err != nil {
		return err
	}
	stats, err := st.Stats(c.Context)
	if err != nil {
		return err
	}
	printStats(out, stats)

	tmp, err := os.MkdirTemp("", "overlap-demo-tls-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	platform, err := startDemoPlatform(c, st, tmp)
	if err != nil {
		return err
	}
	defer platform.stop()

	for _, k := range []struct {
		kind           psi.Kind
		column         string
		want, naive, n int
	}{
		{psi.KindEmail, "email", want.EmailOverlap, want.EmailNaive, want.EmailDistinct},
		{psi.KindPhone, "phone", want.PhoneOverlap, want.PhoneNaive, want.PhoneDistinct},
	} {
		fmt.Fprintf(out, "\nMatching the advertiser's %s column (exact mode: the advertiser counts)\n", k.column)
		got, err := demoMatch(c, st, platform, data, k.kind, k.column)
		if err != nil {
			return err
		}
		if got.Overlap != k.want || got.ClientSize != k.n {
			return fmt.Errorf("demo: %s overlap %d of %d, but the plain computation says %d of %d", k.column, got.Overlap, got.ClientSize, k.want, k.n)
		}
		fmt.Fprintf(out, "  check: the plain overlap of the two lists, with consent and purpose respected, is %d: agrees\n", k.want)
		fmt.Fprintf(out, "  ignoring consent and purpose, a platform would have matched %d; %d were kept out\n", k.naive, k.naive-k.want)
	}
	if err := demoPrivate(c, st, platform, data, want.EmailOverlap, want.EmailDistinct); err != nil {
		return err
	}
	return demoRecords(c, st, platform, data, want.EmailOverlap+want.PhoneOverlap)
}

func seedDemo(c *cli.Context, st store.Store, data string) error {
	out := c.App.Writer
	opts := ident.Options{DefaultRegion: "US"}
	f, err := os.Open(filepath.Join(data, "platform_identifiers.csv"))
	if err != nil {
		return err
	}
	defer f.Close()
	var readErr error
	res, err := st.ImportIdentifiers(c.Context, func(yield func(store.Identifier) bool) {
		_, readErr = idfile.ReadRows(f, idfile.FormatCSV, opts, func(r idfile.Row) error {
			if !yield(store.Identifier{Subject: r.Subject, Kind: r.Kind, Value: r.Identifier.Canonical,
				Digest: r.Identifier.Digest, CollectedFor: store.Purpose(r.CollectedFor)}) {
				return errStopped
			}
			return nil
		}, func(r idfile.Reject) { readErr = fmt.Errorf("sample identifiers line %d: %s", r.Line, r.Reason) })
	}, store.ImportOptions{})
	if err = errors.Join(readErr, err); err != nil {
		return err
	}
	fmt.Fprintf(out, "  %d identifiers imported\n", res.Inserted)

	g, err := os.Open(filepath.Join(data, "platform_consent.csv"))
	if err != nil {
		return err
	}
	defer g.Close()
	ev, err := st.AppendConsent(c.Context, func(yield func(store.ConsentEvent) bool) {
		_, readErr = idfile.ReadConsent(g, idfile.FormatCSV, opts, func(r idfile.ConsentRow) error {
			if !yield(store.ConsentEvent{Subject: r.Subject, Kind: r.Kind, Value: r.Identifier.Canonical,
				Purpose: r.Purpose, Granted: r.Granted, At: r.At, Source: r.Source, TextVersion: r.TextVersion}) {
				return errStopped
			}
			return nil
		}, func(r idfile.Reject) { readErr = fmt.Errorf("sample consent line %d: %s", r.Line, r.Reason) })
	}, store.ImportOptions{})
	if err = errors.Join(readErr, err); err != nil {
		return err
	}
	fmt.Fprintf(out, "  %d consent events appended\n", ev.Inserted)
	return nil
}

// demoPlatform is the platform's side of the demo: a real match server on
// a loopback port, over TLS with a development certificate, and a
// registered advertiser.
type demoPlatform struct {
	srv        *service.Server
	addr       string
	advertiser store.Advertiser
	client     *client.Client
	done       chan error
}

func startDemoPlatform(c *cli.Context, st store.Store, dir string) (*demoPlatform, error) {
	out := c.App.Writer
	dc, err := service.WriteDevCert(filepath.Join(dir, "certs"))
	if err != nil {
		return nil, err
	}
	key, err := client.NewAPIKey()
	if err != nil {
		return nil, err
	}
	adv, err := st.AddAdvertiser(c.Context, store.Advertiser{Name: "demo-advertiser", KeyID: key.ID, KeyHash: key.Hash(),
		Policy: store.Policy{Modes: store.ModesExact | store.ModesPrivate}})
	if err != nil {
		return nil, err
	}
	srv, err := service.New(service.Config{Store: st, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		return nil, err
	}
	tlsCfg, err := service.ServerTLS(dc.CertFile, dc.KeyFile, "")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &demoPlatform{srv: srv, addr: ln.Addr().String(), advertiser: adv, done: make(chan error, 1)}
	go func() { p.done <- srv.Serve(ln, tlsCfg) }()
	ctls, err := client.TLSConfig(dc.CertFile, "", "")
	if err != nil {
		p.stop()
		return nil, err
	}
	if p.client, err = client.New(client.Config{Addr: p.addr, APIKey: key.Reveal(), TLS: ctls}); err != nil {
		p.stop()
		return nil, err
	}
	fmt.Fprintf(out, "\nPlatform: serving matches on %s (TLS 1.3, HTTP/2, development certificate); advertiser %q registered with an API key, modes %s\n",
		p.addr, adv.Name, modesOf(adv.Policy))
	return p, nil
}

func (p *demoPlatform) stop() {
	if p.client != nil {
		p.client.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.srv.Shutdown(ctx)
	<-p.done
}

// demoMatch runs one session over the network: the advertiser's list
// through the real client, the platform's side in the real server, which
// builds its set from a fresh snapshot of the store.
func demoMatch(c *cli.Context, st store.Store, p *demoPlatform, data string, kind psi.Kind, column string) (client.MatchResult, error) {
	out := c.App.Writer
	list, reasons, err := readDemoList(data, kind, column)
	if err != nil {
		return client.MatchResult{}, err
	}
	res, err := p.client.Match(c.Context, client.MatchRequest{Kind: kind, Digests: list.Digests})
	if err != nil {
		return client.MatchResult{}, matchError(c.Context, err, p.addr, p.client, wire.ModeExact)
	}
	// The platform's side: its snapshot and its audit row of the session.
	snap, err := demoSnapshot(c, st, kind, res.Snapshot)
	if err != nil {
		return client.MatchResult{}, err
	}
	rec, err := demoAudit(c, st, res.SessionID)
	if err != nil {
		return client.MatchResult{}, err
	}
	fmt.Fprintf(out, "  advertiser list: %d rows, %d distinct identifiers, %d duplicates; not used: %s\n",
		list.Rows, list.Accepted, list.Duplicates, reasons)
	fmt.Fprintf(out, "  platform: consent snapshot v%d (%d matchable, digest %s…), padded to a set of %d\n",
		snap.Version, snap.Size, hex.EncodeToString(snap.Digest[:8]), res.ServerSize)
	fmt.Fprintf(out, "  advertiser learned: overlap %d of %d (%.1f%%); platform set size bucket %d; consent snapshot v%d\n",
		res.Overlap, res.ClientSize, 100*float64(res.Overlap)/float64(res.ClientSize), res.ServerSize, res.Snapshot.Version)
	fmt.Fprintf(out, "  platform learned:   the list has %d identifiers (audit row: session %s…, %s, %s, suite %v)\n",
		rec.ListSize, rec.ID[:8], rec.Result, rec.AdvertiserName, rec.Suite)
	fmt.Fprintf(out, "  wire: %d bytes advertiser→platform, %d bytes platform→advertiser (TLS), %d messages, %.2fs\n",
		res.Traffic.WireBytesSent, res.Traffic.WireBytesReceived, res.Traffic.Messages, res.Elapsed.Seconds())
	return res, nil
}

// demoPrivate runs one private-mode session of the email column (SPEC.md
// §10): the platform counts and releases a noised count. The check against
// the plain overlap reports, and never fails on, the 1 time in 20 that the
// 95% interval misses it.
func demoPrivate(c *cli.Context, st store.Store, p *demoPlatform, data string, plain, distinct int) error {
	out := c.App.Writer
	kind := psi.KindEmail
	fmt.Fprintf(out, "\nMatching the advertiser's email column (private mode: the platform counts and releases a noised count)\n")
	list, _, err := readDemoList(data, kind, "email")
	if err != nil {
		return err
	}
	res, err := p.client.MatchPrivate(c.Context, client.MatchRequest{Kind: kind, Digests: list.Digests})
	if err != nil {
		return matchError(c.Context, err, p.addr, p.client, wire.ModePrivate)
	}
	r := res.Result
	if r.ClientSize != distinct {
		return fmt.Errorf("demo: the private session counted a list of %d, but the plain computation says %d", r.ClientSize, distinct)
	}
	snap, err := demoSnapshot(c, st, kind, res.Snapshot)
	if err != nil {
		return err
	}
	rec, err := demoAudit(c, st, res.SessionID)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  platform: consent snapshot v%d (%d matchable, digest %s…), with its ringers a set of %d elements\n",
		snap.Version, snap.Size, hex.EncodeToString(snap.Digest[:8]), r.ServerSize)
	fmt.Fprintf(out, "  advertiser learned: %s; %s; platform set of %d elements\n", demoRelease(r), mechanismText(r.Mechanism), r.ServerSize)
	fmt.Fprintf(out, "  platform learned:   the list has %d identifiers and the exact overlap (kept in memory only; not logged, not in the audit row)\n",
		rec.ListSize)
	fmt.Fprintf(out, "  audit row: session %s…, %s, %s, suite %v, ε %s spent\n", rec.ID[:8], rec.Result, rec.AdvertiserName, rec.Suite, dp.Epsilon(rec.EpsilonSpent).String())
	if plain >= r.Low && plain <= r.High {
		fmt.Fprintf(out, "  check: the plain overlap is %d; the released interval %d–%d contains it\n", plain, r.Low, r.High)
	} else {
		fmt.Fprintf(out, "  check: the plain overlap is %d; the released interval %d–%d does not contain it (a 95%% interval misses 1 time in 20)\n",
			plain, r.Low, r.High)
	}
	pol := service.DefaultPolicy().For(p.advertiser.Policy) // the demo's server runs the default policy
	budget := pol.PrivacyBudget
	spent, err := st.EpsilonUsed(c.Context, p.advertiser.ID, pol.BudgetWindow, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  privacy budget: ε %s of %s spent in the window\n", dp.Epsilon(spent).String(), dp.Epsilon(budget).String())
	fmt.Fprintf(out, "  wire: %d bytes advertiser→platform, %d bytes platform→advertiser (TLS), %d messages, %.2fs\n",
		res.Traffic.WireBytesSent, res.Traffic.WireBytesReceived, res.Traffic.Messages, res.Elapsed.Seconds())
	return nil
}

// demoRelease reads "about 1131 of 2100 (53.9%), 95% interval 1125–1137".
func demoRelease(r psi.PrivateResult) string {
	if r.Below {
		return fmt.Sprintf("under %d of %d (95%% interval %d–%d)", r.Threshold, r.ClientSize, r.Low, r.High)
	}
	return fmt.Sprintf("about %d of %d (%.1f%%), 95%% interval %d–%d",
		r.Count, r.ClientSize, 100*float64(r.Count)/float64(r.ClientSize), r.Low, r.High)
}

// readDemoList reads one column of the sample advertiser list.
func readDemoList(data string, kind psi.Kind, column string) (idfile.ListResult, string, error) {
	path := filepath.Join(data, "advertiser_customers.csv")
	f, err := os.Open(path)
	if err != nil {
		return idfile.ListResult{}, "", err
	}
	defer f.Close()
	rejects := reasonCount{}
	list, err := idfile.ReadList(f, idfile.ListOptions{Format: idfile.FormatCSV, Kind: kind, Column: column,
		Ident: ident.Options{DefaultRegion: "US"}}, rejects.add)
	return list, rejects.String(), err
}

// reasonCount counts rejected rows by reason; reasons never contain the
// rows' values.
type reasonCount map[string]int

func (rc reasonCount) add(r idfile.Reject) { rc[r.Reason]++ }

// String lists the counts by reason, most frequent first.
func (rc reasonCount) String() string {
	reasons := slices.Collect(maps.Keys(rc))
	slices.SortFunc(reasons, func(a, b string) int { return cmp.Or(rc[b]-rc[a], strings.Compare(a, b)) })
	var parts []string
	for _, r := range reasons {
		parts = append(parts, fmt.Sprintf("%d %s", rc[r], r))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// demoSnapshot finds, in the store, the snapshot the advertiser was told of.
func demoSnapshot(c *cli.Context, st store.Store, kind psi.Kind, seen client.Snapshot) (store.SnapshotInfo, error) {
	snaps, err := st.Snapshots(c.Context, kind, 1)
	if err != nil || len(snaps) == 0 || snaps[0].Version != seen.Version || snaps[0].Digest != seen.Digest {
		return store.SnapshotInfo{}, fmt.Errorf("demo: the advertiser saw snapshot v%d, the store has another (%v)", seen.Version, err)
	}
	return snaps[0], nil
}

// demoAudit waits for the audit row of a session: the server writes it as
// the stream closes.
func demoAudit(c *cli.Context, st store.Store, session string) (store.SessionRecord, error) {
	ctx := context.WithoutCancel(c.Context)
	audit, err := st.Sessions(ctx, 0, 1)
	for i := 0; err == nil && (len(audit) == 0 || audit[0].ID != session) && i < 100; i++ {
		time.Sleep(10 * time.Millisecond)
		audit, err = st.Sessions(ctx, 0, 1)
	}
	if err != nil || len(audit) == 0 || audit[0].ID != session {
		return store.SessionRecord{}, fmt.Errorf("demo: no audit row for session %s (%v)", session, err)
	}
	return audit[0], nil
}

// demoRecords matches the sample advertiser file as a customer file
// (SPEC.md §13): each row a customer with an email and a phone, counted
// once however many of them match, in exact mode and then in private mode
// with the person-level sensitivity. The exact count must equal the plain
// count of package idfiletest over the sample platform (consent and
// purpose per identifier); the private check reports, as demoPrivate's
// does, whether the interval contains the plain count under the cap of one
// identifier per person and kind. byKind is the email and phone overlaps
// of the identifier-level sessions added up.
func demoRecords(c *cli.Context, st store.Store, p *demoPlatform, data string, byKind int) error {
	out := c.App.Writer
	fmt.Fprintf(out, "\nMatching the advertiser's customers, email and phone together (person-level: a customer counts once, SPEC.md §13)\n")
	path := filepath.Join(data, "advertiser_customers.csv")
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	rejects := reasonCount{}
	res, err := idfile.ReadRecords(f, idfile.RecordOptions{Ident: ident.Options{DefaultRegion: "US"}}, rejects.add)
	f.Close()
	if err != nil {
		return err
	}
	ids, err := os.Open(filepath.Join(data, "platform_identifiers.csv"))
	if err != nil {
		return err
	}
	defer ids.Close()
	events, err := os.Open(filepath.Join(data, "platform_consent.csv"))
	if err != nil {
		return err
	}
	defer events.Close()
	plat, err := idfiletest.ReadPlatform(ids, events)
	if err != nil {
		return fmt.Errorf("demo: reading the sample platform for the plain count: %w", err)
	}
	plain := idfiletest.Count(res.Records, plat.Matchable(0))
	capped := idfiletest.Count(res.Records, plat.Matchable(int(service.DefaultPolicy().Sensitivity)))
	kinds := wire.KindSetOf(res.Kinds()...)
	req := client.MatchRequest{Records: idfile.RecordIDs(res.Records), RecordsConfig: psi.RecordsConfig{Kinds: kinds, Slots: res.Slots()}}
	fmt.Fprintf(out, "  customer file: %d rows, %d customers, %d duplicates, %d rejected, %d bad cells (reports: %s); %d slots per customer, kinds %s\n",
		res.Rows, len(res.Records), res.Duplicates, res.Rejected, res.BadCells, rejects, res.Slots(), kinds)

	er, err := p.client.Match(c.Context, req)
	if err != nil {
		return matchError(c.Context, err, p.addr, p.client, wire.ModeExact)
	}
	if er.Overlap != plain || er.ClientSize != len(res.Records) {
		return fmt.Errorf("demo: %d of %d customers matched, but the plain computation says %d of %d", er.Overlap, er.ClientSize, plain, len(res.Records))
	}
	rec, err := demoAudit(c, st, er.SessionID)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  exact: advertiser learned %d of %d customers (%.1f%%); the email and phone sessions add up to %d, counting %d customers twice\n",
		er.Overlap, er.ClientSize, 100*float64(er.Overlap)/float64(er.ClientSize), byKind, byKind-er.Overlap)
	fmt.Fprintf(out, "  check: the plain count of customers with a consented identifier is %d: agrees\n", plain)
	fmt.Fprintf(out, "  platform learned:   %d customers of %d slots, kinds %s (audit row: %s, %s, %d identifiers charged, snapshots %s)\n",
		rec.ListSize, rec.Slots, rec.Kinds, rec.Mode, rec.Result, rec.BudgetSpent, demoSnapshots(rec.Snapshots))

	pr, err := p.client.MatchPrivate(c.Context, req)
	if err != nil {
		return matchError(c.Context, err, p.addr, p.client, wire.ModePrivate)
	}
	r := pr.Result
	rec, err = demoAudit(c, st, pr.SessionID)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  private: advertiser learned %s customers; %s (Δ = Σ of each kind's cap: one person can hold an email and a phone)\n",
		demoRelease(r), mechanismText(r.Mechanism))
	fmt.Fprintf(out, "  platform learned:   %d customers of %d slots, the exact count and how many customers matched through both slots (in memory only); audit row %s, ε %s spent\n",
		rec.ListSize, rec.Slots, rec.Mode, dp.Epsilon(rec.EpsilonSpent).String())
	if capped >= r.Low && capped <= r.High {
		fmt.Fprintf(out, "  check: the plain count with one identifier per person and kind is %d; the released interval %d–%d contains it\n", capped, r.Low, r.High)
	} else {
		fmt.Fprintf(out, "  check: the plain count with one identifier per person and kind is %d; the released interval %d–%d does not contain it (a 95%% interval misses 1 time in 20)\n",
			capped, r.Low, r.High)
	}
	fmt.Fprintf(out, "  wire: exact %d+%d bytes, private %d+%d bytes (TLS, each way)\n",
		er.Traffic.WireBytesSent, er.Traffic.WireBytesReceived, pr.Traffic.WireBytesSent, pr.Traffic.WireBytesReceived)
	return nil
}

// demoSnapshots reads "email v3, phone v4".
func demoSnapshots(snaps []store.KindSnapshot) string {
	var parts []string
	for _, s := range snaps {
		parts = append(parts, fmt.Sprintf("%v v%d", s.Kind, s.Version))
	}
	return strings.Join(parts, ", ")
}
