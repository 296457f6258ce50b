package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/ident"
	"github.com/overlap-psi/overlap/psi/idfile"
	"github.com/overlap-psi/overlap/psi/service"
	"github.com/overlap-psi/overlap/psi/store"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run a whole match on the sample data in testdata/sample: SQLite store, real server and client over TLS on loopback",
		Description: "Seeds a fresh SQLite consent store with the sample platform (3,000 users, some\n" +
			"phones given only for two-factor authentication, some consents withdrawn), then\n" +
			"starts the match server on a loopback port (TLS 1.3 with a development\n" +
			"certificate), registers an advertiser, matches the sample advertiser list through\n" +
			"the real client for emails and for phone numbers,\n" +
			"and checks each count against the plain overlap computed in testdata/sample.",
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
		fmt.Fprintf(out, "\nMatching the advertiser's %s column\n", k.column)
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
	return nil
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
	})
	if err = errors.Join(readErr, err); err != nil {
		return err
	}
	fmt.Fprintf(out, "  %d identifiers imported\n", res.Inserted)

	g, err := os.Open(filepath.Join(data, "platform_consent.csv"))
	if err != nil {
		return err
	}
	defer g.Close()
	n, err := st.AppendConsent(c.Context, func(yield func(store.ConsentEvent) bool) {
		_, readErr = idfile.ReadConsent(g, idfile.FormatCSV, opts, func(r idfile.ConsentRow) error {
			if !yield(store.ConsentEvent{Subject: r.Subject, Kind: r.Kind, Value: r.Identifier.Canonical,
				Purpose: r.Purpose, Granted: r.Granted, At: r.At, Source: r.Source, TextVersion: r.TextVersion}) {
				return errStopped
			}
			return nil
		}, func(r idfile.Reject) { readErr = fmt.Errorf("sample consent line %d: %s", r.Line, r.Reason) })
	})
	if err = errors.Join(readErr, err); err != nil {
		return err
	}
	fmt.Fprintf(out, "  %d consent events appended\n", n)
	return nil
}

// demoPlatform is the platform's side of the demo: a real match server on
// a loopback port, over TLS with a development certificate, and a
// registered advertiser.
type demoPlatform struct {
	srv    *service.Server
	addr   string
	client *service.Client
	done   chan error
}

func startDemoPlatform(c *cli.Context, st store.Store, dir string) (*demoPlatform, error) {
	out := c.App.Writer
	dc, err := service.WriteDevCert(filepath.Join(dir, "certs"))
	if err != nil {
		return nil, err
	}
	key, err := service.NewAPIKey()
	if err != nil {
		return nil, err
	}
	if _, err := st.AddAdvertiser(c.Context, store.Advertiser{Name: "demo-advertiser", KeyID: key.ID, KeyHash: key.Hash()}); err != nil {
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
	p := &demoPlatform{srv: srv, addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { p.done <- srv.Serve(ln, tlsCfg) }()
	ctls, err := service.ClientTLS(dc.CertFile, "", "")
	if err != nil {
		p.stop()
		return nil, err
	}
	if p.client, err = service.NewClient(service.ClientConfig{Addr: p.addr, APIKey: key.Reveal(), TLS: ctls}); err != nil {
		p.stop()
		return nil, err
	}
	fmt.Fprintf(out, "\nPlatform: serving matches on %s (TLS 1.3, HTTP/2, development certificate); advertiser %q registered with an API key\n",
		p.addr, "demo-advertiser")
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
func demoMatch(c *cli.Context, st store.Store, p *demoPlatform, data string, kind psi.Kind, column string) (service.MatchResult, error) {
	out := c.App.Writer
	path := filepath.Join(data, "advertiser_customers.csv")
	f, err := os.Open(path)
	if err != nil {
		return service.MatchResult{}, err
	}
	defer f.Close()
	rejects := &rejectPrinter{w: io.Discard, file: path}
	list, err := idfile.ReadList(f, idfile.ListOptions{Format: idfile.FormatCSV, Kind: kind, Column: column,
		Ident: ident.Options{DefaultRegion: "US"}}, rejects.add)
	if err != nil {
		return service.MatchResult{}, err
	}

	res, err := p.client.Match(c.Context, service.MatchRequest{Kind: kind, Digests: list.Digests})
	if err != nil {
		return service.MatchResult{}, matchError(err, p.addr)
	}
	// The platform's side: its snapshot and its audit row of the session.
	snaps, err := st.Snapshots(c.Context, kind, 1)
	if err != nil || len(snaps) == 0 || snaps[0].Version != res.Snapshot.Version || snaps[0].Digest != res.Snapshot.Digest {
		return service.MatchResult{}, fmt.Errorf("demo: the advertiser saw snapshot v%d, the store has another (%v)", res.Snapshot.Version, err)
	}
	audit, err := st.Sessions(context.WithoutCancel(c.Context), 0, 1)
	for i := 0; err == nil && (len(audit) == 0 || audit[0].ID != res.SessionID) && i < 100; i++ {
		time.Sleep(10 * time.Millisecond) // the server writes its row as the stream closes
		audit, err = st.Sessions(context.WithoutCancel(c.Context), 0, 1)
	}
	if err != nil || len(audit) == 0 || audit[0].ID != res.SessionID {
		return service.MatchResult{}, fmt.Errorf("demo: no audit row for session %s (%v)", res.SessionID, err)
	}
	rec := audit[0]
	fmt.Fprintf(out, "  advertiser list: %d rows, %d distinct identifiers, %d duplicates; not used: %s\n",
		list.Rows, list.Accepted, list.Duplicates, rejects.reasons())
	fmt.Fprintf(out, "  platform: consent snapshot v%d (%d matchable, digest %s…), padded to a set of %d\n",
		snaps[0].Version, snaps[0].Size, hex.EncodeToString(snaps[0].Digest[:8]), res.ServerSize)
	fmt.Fprintf(out, "  advertiser learned: overlap %d of %d (%.1f%%); platform set size bucket %d; consent snapshot v%d\n",
		res.Overlap, res.ClientSize, 100*float64(res.Overlap)/float64(res.ClientSize), res.ServerSize, res.Snapshot.Version)
	fmt.Fprintf(out, "  platform learned:   the list has %d identifiers (audit row: session %s…, %s, %s)\n",
		rec.ListSize, rec.ID[:8], rec.Result, rec.AdvertiserName)
	fmt.Fprintf(out, "  wire: %d bytes advertiser→platform, %d bytes platform→advertiser (TLS), %d messages, %.2fs\n",
		res.Traffic.WireBytesSent, res.Traffic.WireBytesReceived, res.Traffic.Messages, res.Elapsed.Seconds())
	return res, nil
}
