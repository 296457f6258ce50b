//go:build !advertiser

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/ident"
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
					"each value (SPEC.md §7) and imports them. Rejected rows are reported with their\n" +
					"line numbers and the rest are imported; the summary reads \"R rows read, I\n" +
					"imported, P already present, J rejected\" with R = I + P + J. Importing the same\n" +
					"file twice changes nothing. Identifiers collected for two_factor, recovery or\n" +
					"login_alert are stored but never become matchable.\n\n" + importHelp + "\n\n" + bulkHelp + "\n\n" + exitStatusHelp,
				Flags:  append([]cli.Flag{dbFlag, regionFlag, formatFlag, bulkFlag}, rejectFlags...),
				Action: idsImport,
			},
			{
				Name:   "stats",
				Usage:  "per kind: identifiers, matchable, and excluded by reason",
				Flags:  []cli.Flag{dbFlag},
				Action: idsStats,
			},
			{
				Name:  "staged",
				Usage: "PostgreSQL: bulk imports (ids and consent) staged and not merged; --drop-older-than drops them",
				Description: "Lists the --bulk imports of identifiers and consent events whose rows are staged\n" +
					"but not merged into the ledger: stopped ones that were not run again, and those\n" +
					"whose file changed before they were (a changed file starts a batch of its own).\n" +
					"Each holds its staged rows in an unlogged table until it is merged or dropped.\n" +
					"--drop-older-than D drops the batches no run has staged into for D, except one\n" +
					"whose import is running; nothing of a dropped batch is in the ledger, and its\n" +
					"import, run again, starts over.",
				Flags: []cli.Flag{dbFlag, &cli.DurationFlag{Name: "drop-older-than",
					Usage: "drop the batches not staged into for this long (for example 24h); 0 lists only"}},
				Action: idsStaged,
			},
			idsGenerateCommand(),
		},
	}
}

func idsImport(c *cli.Context) error {
	return ledgerImport(c, "overlap ids import testdata/sample/platform_identifiers.csv", "importing", "identifiers",
		readRows, identifierOf, func(r idfile.Row) int { return r.Line },
		func(ctx context.Context, st store.Store, rows iter.Seq[store.Identifier], o store.ImportOptions) (store.ImportResult, error) {
			return st.ImportIdentifiers(ctx, rows, o)
		},
		func(res store.ImportResult) []summaryPart {
			return []summaryPart{{int(res.Inserted), "imported"}, {int(res.Unchanged), "already present"}}
		})
}

// bulkFlag makes ids import and consent import bulk imports
// (store.ImportOptions.Bulk).
var bulkFlag = &cli.BoolFlag{
	Name:  "bulk",
	Usage: "PostgreSQL: stage the file in an unlogged table, then merge it in one transaction (fast; resumable; see below)",
}

const bulkHelp = "With --bulk (PostgreSQL only) the rows are first copied into an unlogged staging\n" +
	"table, then merged into the ledger in one transaction; when the file holds at\n" +
	"least as many rows as the store (an initial load, 10^6 rows or more), the merge\n" +
	"drops the ledger's indexes and builds them again after. Nothing is matchable\n" +
	"until the merge commits, and while it runs it locks the ledger's identifier\n" +
	"tables against other writers (and against readers while indexes are rebuilt).\n" +
	"A --bulk import that is stopped (a kill, an error) resumes when it is run again\n" +
	"on the same unchanged file: the rows it staged before are not staged again\n" +
	"(they are read and checked again). Values are canonicalized on every core.\n" +
	"The staged rows of a batch that is never run again (its file changed, or\n" +
	"--strict stopped it) stay until `overlap ids staged --drop-older-than` drops them."

// readRows reads identifier rows, canonicalizing on every core.
func readRows(r io.Reader, format idfile.ListFormat, opts ident.Options, fn func(idfile.Row) error, onReject func(idfile.Reject)) (idfile.RowsResult, error) {
	return idfile.ReadRowsConcurrent(r, format, opts, runtime.GOMAXPROCS(0), fn, onReject)
}

// readConsent reads consent rows, parsing on every core.
func readConsent(r io.Reader, format idfile.ListFormat, opts ident.Options, fn func(idfile.ConsentRow) error, onReject func(idfile.Reject)) (idfile.RowsResult, error) {
	return idfile.ReadConsentConcurrent(r, format, opts, runtime.GOMAXPROCS(0), fn, onReject)
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

// bulkBatches is the part of a PostgreSQL store that ids staged uses.
type bulkBatches interface {
	BulkBatches(context.Context) ([]store.BulkBatch, error)
	DropBulkBatches(context.Context, time.Time) ([]store.BulkBatch, error)
}

func idsStaged(c *cli.Context) error {
	if c.NArg() > 0 {
		return withHint(fmt.Errorf("ids staged takes no arguments, got %q", c.Args().First()), "overlap ids staged --db postgres://... [--drop-older-than 24h]")
	}
	age := c.Duration("drop-older-than")
	if age < 0 {
		return withHint(fmt.Errorf("--drop-older-than %v is negative", age), "give a duration such as 24h")
	}
	st, err := openStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	bb, ok := st.(bulkBatches)
	if !ok {
		return withHint(errors.New("bulk imports are staged only in a PostgreSQL store"), "pass --db postgres://...")
	}
	w := c.App.Writer
	print := func(list []store.BulkBatch) {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "import\trows staged\tbegun\tlast staged\tbatch")
		for _, b := range list {
			what := "ids"
			if b.Consent {
				what = "consent"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", what, b.Staged, b.CreatedAt.Format(time.RFC3339), b.UpdatedAt.Format(time.RFC3339), b.Name)
		}
		tw.Flush()
	}
	if age == 0 {
		list, err := bb.BulkBatches(c.Context)
		if err != nil {
			return err
		}
		if len(list) == 0 {
			fmt.Fprintln(w, "no bulk import is staged")
			return nil
		}
		print(list)
		return nil
	}
	dropped, err := bb.DropBulkBatches(c.Context, time.Now().Add(-age))
	var rows int64
	for _, b := range dropped {
		rows += b.Staged
	}
	if len(dropped) > 0 {
		print(dropped)
	}
	fmt.Fprintf(w, "dropped %d staged bulk imports (%d rows) not staged into for %v\n", len(dropped), rows, age)
	return err
}
