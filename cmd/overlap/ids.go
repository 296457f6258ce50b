//go:build !advertiser

package main

import (
	"context"
	"fmt"
	"io"
	"iter"
	"runtime"
	"text/tabwriter"

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
	"(they are read and checked again). Values are canonicalized on every core."

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
