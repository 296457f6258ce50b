package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/ident"
	"github.com/overlap-psi/overlap/psi/idfile"
	"github.com/overlap-psi/overlap/psi/store"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run a whole match on the sample data in testdata/sample, with an embedded SQLite store",
		Description: "Seeds a fresh SQLite consent store with the sample platform (3,000 users, some\n" +
			"phones given only for two-factor authentication, some consents withdrawn), then\n" +
			"matches the sample advertiser list against it for emails and for phone numbers,\n" +
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

	for _, k := range []struct {
		kind           psi.Kind
		column         string
		want, naive, n int
	}{
		{psi.KindEmail, "email", want.EmailOverlap, want.EmailNaive, want.EmailDistinct},
		{psi.KindPhone, "phone", want.PhoneOverlap, want.PhoneNaive, want.PhoneDistinct},
	} {
		fmt.Fprintf(out, "\nMatching the advertiser's %s column\n", k.column)
		got, err := demoMatch(c, st, data, k.kind, k.column)
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

// demoMatch runs one in-process session: the platform's side from a fresh
// snapshot, the advertiser's from the sample list.
func demoMatch(c *cli.Context, st store.Store, data string, kind psi.Kind, column string) (psi.Result, error) {
	out := c.App.Writer
	set, err := psi.NewSet(psi.SetConfig{Kind: kind})
	if err != nil {
		return psi.Result{}, err
	}
	snap, err := st.Snapshot(c.Context, kind, func(d [32]byte) error { set.Add(d); return nil })
	if err != nil {
		return psi.Result{}, err
	}
	if err := set.Finish(); err != nil {
		return psi.Result{}, err
	}

	path := filepath.Join(data, "advertiser_customers.csv")
	f, err := os.Open(path)
	if err != nil {
		return psi.Result{}, err
	}
	defer f.Close()
	rejects := &rejectPrinter{w: io.Discard, file: path}
	list, err := idfile.ReadList(f, idfile.ListOptions{Format: idfile.FormatCSV, Kind: kind, Column: column,
		Ident: ident.Options{DefaultRegion: "US"}}, rejects.add)
	if err != nil {
		return psi.Result{}, err
	}

	start := time.Now()
	client, err := psi.NewClient(psi.ClientConfig{Kind: kind, CanonVersion: ident.Version}, list.Digests)
	if err != nil {
		return psi.Result{}, err
	}
	server, err := psi.NewServer(psi.ServerConfig{CanonVersion: ident.Version}, set)
	if err != nil {
		return psi.Result{}, err
	}
	res, traffic, err := psi.RunLocal(client, server, nil)
	if err != nil {
		return psi.Result{}, err
	}
	fmt.Fprintf(out, "  advertiser list: %d rows, %d distinct identifiers, %d duplicates; not used: %s\n",
		list.Rows, list.Accepted, list.Duplicates, rejects.reasons())
	fmt.Fprintf(out, "  platform: consent snapshot v%d (%d matchable, digest %s…), padded to a set of %d\n",
		snap.Version, snap.Size, hex.EncodeToString(snap.Digest[:8]), res.ServerSize)
	fmt.Fprintf(out, "  advertiser learned: overlap %d of %d (%.1f%%); platform set size bucket %d\n",
		res.Overlap, res.ClientSize, 100*float64(res.Overlap)/float64(res.ClientSize), res.ServerSize)
	fmt.Fprintf(out, "  platform learned:   the list has %d identifiers\n", res.ClientSize)
	fmt.Fprintf(out, "  wire: %d bytes advertiser→platform, %d bytes platform→advertiser, %d messages, %.2fs\n",
		traffic.ClientBytes, traffic.ServerBytes, traffic.Messages, time.Since(start).Seconds())
	return res, nil
}
