package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/idfile"
	"github.com/overlap-psi/overlap/psi/wire"
)

// matchInput is match's open input. customers reports a customer file
// (SPEC.md §13.8), read as records: a CSV file, with neither --kind nor
// --column given, whose header has two identifier columns or more, or a
// column of the upload formats that is not an identifier
// (idfile.IsCustomerHeader). Anything else is a list of one column, read
// as before.
type matchInput struct {
	r         io.Reader
	finish    func()
	customers bool
}

// headerPeek bounds how far openMatchInput looks for the header line.
const headerPeek = 64 << 10

func openMatchInput(c *cli.Context, path string) (*matchInput, error) {
	format, err := fileFormat(c, path)
	if err != nil {
		return nil, err
	}
	in, finish, err := openInput(path, "reading", c.App.ErrWriter)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(in, headerPeek)
	mi := &matchInput{r: br, finish: finish}
	if format == idfile.FormatCSV && !c.IsSet("kind") && !c.IsSet("column") {
		mi.customers = idfile.IsCustomerHeader(peekHeader(br))
	}
	return mi, nil
}

// peekHeader returns the fields of the first non-blank line br holds in
// its buffer, without consuming it; nil when there is none or it is not
// one CSV record.
func peekHeader(br *bufio.Reader) []string {
	buf, _ := br.Peek(headerPeek)
	for len(buf) > 0 {
		line, rest, _ := strings.Cut(string(buf), "\n")
		buf = []byte(rest)
		line = strings.TrimPrefix(strings.TrimRight(line, "\r"), "\ufeff")
		if strings.TrimSpace(line) == "" {
			continue
		}
		fields, err := csv.NewReader(strings.NewReader(line)).Read()
		if err != nil {
			return nil
		}
		return fields
	}
	return nil
}

// matchRecords reads a customer file and runs a record session (SPEC.md
// §13) in mode, exact or private: it says on stderr which columns it used
// and what it read (§13.9), reports rejected rows and bad cells with their
// line and column, and prints the count in customers.
func matchRecords(c *cli.Context, mc *client.Client, path string, in *matchInput, mode wire.Mode) error {
	if mode == wire.ModeEpochSession {
		return withHint(errors.New("epochs do not serve customer files (SPEC.md §13.11)"),
			"pass --mode private or --mode exact, or --kind K (and --column) to match one column in an epoch")
	}
	opts, err := identOptions(c)
	if err != nil {
		return err
	}
	rejects, err := newCellRejectReporter(c, path)
	if err != nil {
		return err
	}
	defer rejects.close()
	res, err := idfile.ReadRecords(in.r, idfile.RecordOptions{Ident: opts}, rejects.add)
	in.finish()
	if cerr := rejects.close(); cerr != nil {
		return cerr
	}
	if err != nil {
		if errors.Is(err, idfile.ErrTooManyRejects) {
			return rejects.stopped(err)
		}
		return withHint(fmt.Errorf("reading %s: %w", path, err), "a customer file's header names its columns (Email, Phone, …; SPEC.md §13.8), or pass --kind K to read one column as a list")
	}
	printColumns(c.App.ErrWriter, path, &res, opts.DefaultRegion)
	if len(res.Records) == 0 {
		return withHint(errors.New("no customer with a usable identifier"), "rejected rows and cells are listed above")
	}
	kinds := wire.KindSetOf(res.Kinds()...)
	req := client.MatchRequest{Records: idfile.RecordIDs(res.Records), RecordsConfig: psi.RecordsConfig{Kinds: kinds, Slots: res.Slots()}}
	lo := listOutput{ListSize: len(res.Records), Rows: res.Rows, Duplicates: res.Duplicates, Rejected: res.Rejected,
		BadCells: res.BadCells, Slots: res.Slots(), Kinds: kinds.String()}
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	if mode == wire.ModeExact {
		err = matchExact(ctx, c, mc, req, lo)
	} else {
		err = matchPrivate(ctx, c, mc, req, lo)
	}
	if err != nil {
		return err
	}
	return rejects.err() // exit status 3 when a row or a cell was rejected
}

// printColumns prints, before the session, the columns a customer file's
// reading used and ignored and what it read (SPEC.md §13.9).
func printColumns(w io.Writer, path string, res *idfile.RecordsResult, region string) {
	var used, ignored, unknown, bad []string
	country, phones, shared := "", false, 0
	for _, col := range res.Columns {
		switch col.Use {
		case idfile.ColumnIdentifier:
			used = append(used, col.Describe())
			phones = phones || col.Kind == psi.KindPhone
			shared += col.Shared
			if col.Bad > 0 {
				bad = append(bad, fmt.Sprintf("%s %d", col.Name, col.Bad))
			}
		case idfile.ColumnRegion:
			country = col.Name
		case idfile.ColumnIgnored:
			ignored = append(ignored, col.Name)
		default:
			unknown = append(unknown, col.Name)
		}
	}
	line := "using columns " + strings.Join(used, ", ")
	if phones {
		switch {
		case country != "" && region != "":
			line += fmt.Sprintf("; phone region from %s, else %s", country, region)
		case country != "":
			line += fmt.Sprintf("; phone region from %s", country)
		case region != "":
			line += "; phone region " + region
		default:
			line += "; no phone region (national numbers need --region or a country column)"
		}
	}
	fmt.Fprintf(w, "overlap: %s: %s\n", path, line)
	if len(ignored)+len(unknown) > 0 {
		var parts []string
		if len(ignored) > 0 {
			parts = append(parts, "ignoring "+strings.Join(ignored, ", "))
		}
		if len(unknown) > 0 {
			parts = append(parts, "unknown columns: "+strings.Join(unknown, ", "))
		}
		fmt.Fprintf(w, "overlap: %s: %s\n", path, strings.Join(parts, "; "))
	}
	summary := fmt.Sprintf("%d rows: %d customers, %d duplicates, %d rejected; %d bad cells", res.Rows, len(res.Records), res.Duplicates, res.Rejected, res.BadCells)
	if len(bad) > 0 {
		summary += " (" + strings.Join(bad, ", ") + ")"
	}
	summary += fmt.Sprintf("; %d identifiers already held by an earlier customer", shared)
	fmt.Fprintf(w, "overlap: %s: %s\n", path, summary)
}
