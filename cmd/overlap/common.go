package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/overlap-psi/overlap/psi/ident"
	"github.com/overlap-psi/overlap/psi/idfile"
	"github.com/overlap-psi/overlap/psi/store"
)

// dbFlag selects the consent store, shared by every platform-side command.
var dbFlag = &cli.StringFlag{
	Name:    "db",
	Usage:   "consent store: a SQLite file path, or a postgres:// DSN",
	EnvVars: []string{"OVERLAP_DB"},
	Value:   "overlap.db",
}

var regionFlag = &cli.StringFlag{
	Name:    "region",
	Usage:   "ISO 3166 region for phone numbers written without +country code (e.g. US); empty rejects them",
	EnvVars: []string{"OVERLAP_REGION"},
}

var formatFlag = &cli.StringFlag{
	Name:  "format",
	Usage: "input format: csv, txt or jsonl (default: from the file extension)",
}

var maxRejectsFlag = &cli.IntFlag{
	Name:  "max-rejects",
	Usage: "stop with an error after this many rejected rows (0: no limit)",
}

// openStore opens the --db store and prints what it fixed on opening
// (database files readable by others) as warnings on stderr.
func openStore(c *cli.Context) (store.Store, error) {
	dsn := c.String(dbFlag.Name)
	st, err := store.Open(c.Context, dsn)
	if err != nil {
		return nil, withHint(err, "pass --db PATH for a SQLite file or --db postgres://USER@HOST/DB for PostgreSQL")
	}
	for _, w := range st.Warnings() {
		fmt.Fprintf(c.App.ErrWriter, "overlap: warning: %s\n", w)
	}
	return st, nil
}

func identOptions(c *cli.Context) (ident.Options, error) {
	o := ident.Options{DefaultRegion: c.String(regionFlag.Name)}
	if err := o.Validate(); err != nil {
		return o, withHint(err, "pass --region with a two-letter code such as US, GB or DE")
	}
	return o, nil
}

func fileFormat(c *cli.Context, path string) (idfile.ListFormat, error) {
	f := idfile.ListFormat(c.String(formatFlag.Name))
	if f == "" {
		return idfile.DetectFormat(path), nil
	}
	switch f {
	case idfile.FormatCSV, idfile.FormatTXT, idfile.FormatJSONL:
		return f, nil
	}
	return "", withHint(fmt.Errorf("unknown format %q", f), "use --format csv, txt or jsonl")
}

// openInput opens path for reading ("-" is standard input) with a progress
// bar on stderr when stderr is a terminal and the file is large enough to
// take a while. finish clears the bar and closes the file.
func openInput(path, desc string, stderr io.Writer) (r io.Reader, finish func(), err error) {
	if path == "-" {
		return os.Stdin, func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, withHint(err, "check the path; run from the repository root for testdata/ files")
		}
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !isTerminal(stderr) || fi.Size() < 1<<20 {
		return f, func() { f.Close() }, nil
	}
	bar := progressbar.NewOptions64(fi.Size(),
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	pr := progressbar.NewReader(f, bar)
	return &pr, func() { bar.Finish(); f.Close() }, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

var errStopped = errors.New("stopped")

// identifierOf and eventOf map reader rows to store rows.
func identifierOf(r idfile.Row) store.Identifier {
	return store.Identifier{Subject: r.Subject, Kind: r.Kind, Value: r.Identifier.Canonical,
		Digest: r.Identifier.Digest, CollectedFor: store.Purpose(r.CollectedFor)}
}

func eventOf(r idfile.ConsentRow) store.ConsentEvent {
	return store.ConsentEvent{Subject: r.Subject, Kind: r.Kind, Value: r.Identifier.Canonical,
		Purpose: r.Purpose, Granted: r.Granted, At: r.At, Source: r.Source, TextVersion: r.TextVersion}
}
