package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/idfile"
	"github.com/overlap-psi/overlap/psi/store"
)

func idsCommand() *cli.Command {
	return &cli.Command{
		Name:  "ids",
		Usage: "platform: import identifiers into the consent store and show what is matchable",
		Subcommands: []*cli.Command{
			{
				Name:      "import",
				Usage:     "import identifiers from CSV or JSONL (subject,kind,value,collected_for)",
				ArgsUsage: "FILE",
				Description: "Reads rows of subject, kind (email, phone, id), value and collected_for\n" +
					"(signup, profile, two_factor, recovery, login_alert, imported), canonicalizes\n" +
					"each value (SPEC.md §7) and imports them in one transaction. Rejected rows are\n" +
					"reported with their line numbers and the rest are imported; importing the same\n" +
					"file twice changes nothing. Identifiers collected for two_factor, recovery or\n" +
					"login_alert are stored but never become matchable.",
				Flags:  []cli.Flag{dbFlag, regionFlag, formatFlag, maxRejectsFlag},
				Action: idsImport,
			},
			{
				Name:   "stats",
				Usage:  "per kind: identifiers, matchable, and excluded by reason",
				Flags:  []cli.Flag{dbFlag},
				Action: idsStats,
			},
		},
	}
}

func idsImport(c *cli.Context) error {
	if c.NArg() != 1 {
		return withHint(errors.New("ids import takes one FILE"), "overlap ids import testdata/sample/platform_identifiers.csv")
	}
	path := c.Args().First()
	opts, err := identOptions(c)
	if err != nil {
		return err
	}
	format, err := fileFormat(c, path)
	if err != nil {
		return err
	}
	st, err := openStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	in, finish, err := openInput(path, "importing", c.App.ErrWriter)
	if err != nil {
		return err
	}
	defer finish()

	rejects := &rejectPrinter{w: c.App.ErrWriter, file: path}
	maxRejects := c.Int(maxRejectsFlag.Name)
	start := time.Now()
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	var readErr error
	var read idfile.RowsResult
	rows := readAll(cancel, func(yield func(store.Identifier) bool) error {
		var err error
		read, err = idfile.ReadRows(in, format, opts, func(r idfile.Row) error {
			if !yield(store.Identifier{Subject: r.Subject, Kind: r.Kind, Value: r.Identifier.Canonical,
				Digest: r.Identifier.Digest, CollectedFor: store.Purpose(r.CollectedFor)}) {
				return errStopped
			}
			return nil
		}, func(r idfile.Reject) {
			rejects.add(r)
			if maxRejects > 0 && rejects.n >= maxRejects {
				cancel()
			}
		})
		if err == nil && maxRejects > 0 && rejects.n >= maxRejects {
			err = fmt.Errorf("%d rows rejected, the limit set by --max-rejects", rejects.n)
		}
		return err
	}, &readErr)
	res, err := st.ImportIdentifiers(ctx, rows)
	finish()
	rejects.summary()
	if readErr != nil {
		return fmt.Errorf("reading %s: %w (nothing was imported)", path, readErr)
	}
	if err != nil {
		return fmt.Errorf("importing %s: %w (nothing was imported)", path, err)
	}
	fmt.Fprintf(c.App.Writer, "%s: %d rows read, %d imported, %d already present, %d rejected (%.1fs)\n",
		path, read.Rows, res.Inserted, res.Unchanged, read.Rejected, time.Since(start).Seconds())
	return nil
}

func idsStats(c *cli.Context) error {
	st, err := openStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	stats, err := st.Stats(c.Context)
	if err != nil {
		return err
	}
	printStats(c.App.Writer, stats)
	return nil
}

func printStats(w interface{ Write([]byte) (int, error) }, stats []store.KindStats) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "kind\tidentifiers\tmatchable\texcluded: security purpose\tno consent\twithdrawn\t")
	for _, s := range stats {
		if s.Kind == 0 {
			continue
		}
		fmt.Fprintf(tw, "%v\t%d\t%d\t%d\t%d\t%d\t\n", psi.Kind(s.Kind), s.Identifiers, s.Matchable, s.Security, s.NoConsent, s.Withdrawn)
	}
	tw.Flush()
}
