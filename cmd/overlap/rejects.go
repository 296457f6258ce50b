package main

import (
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/overlap-psi/overlap/psi/idfile"
)

// Every command that reads a file of rows (ids import, consent import,
// match) reports rejected rows the same way, with a rejectReporter:
//
//   - each rejected row is printed on stderr as "overlap: FILE:LINE:
//     rejected: REASON", the first rejectsListed of them, then a count of the
//     rest and where they are;
//   - --rejects OUT writes every rejected row to OUT as CSV "line,reason"
//     (",value" with the row as read, only with --rejects-with-values); OUT
//     is created 0600 and must not exist;
//   - --strict stops at the first rejected row (match contacts no server;
//     an import does not commit the chunk holding the row); --max-rejects N
//     stops at the Nth;
//   - otherwise the command does its work on the valid rows, prints its
//     summary, and then fails with a *rejectedError: "overlap: error: N rows
//     of FILE rejected", exit status 3 (exitRejected).
//
// A command lists rejectFlags among its flags and uses the reporter so:
//
//	rep, err := newRejectReporter(c, path)
//	if err != nil {
//		return err
//	}
//	defer rep.close()
//	res, err := idfile.ReadRows(in, format, opts, fn, rep.add)
//	if err := rep.close(); err != nil { // flushes OUT, prints "N more"
//		return err
//	}
//	if err != nil {
//		return rep.stopped(err) // the --strict or --max-rejects error, with its hint
//	}
//	... the work, then the summary (printReadSummary for imports) ...
//	return rep.err()
//
// Reasons never contain values, so stderr is safe to keep in a log; only
// the value column of OUT, asked for by --rejects-with-values, holds them.

// exitRejected is the exit status of a command that did its work on the
// valid rows of its file and rejected some (README.md, "Exit status").
const exitRejected = 3

// rejectsListed bounds the rejected rows printed on stderr.
const rejectsListed = 100

var (
	rejectsFlag = &cli.StringFlag{
		Name:  "rejects",
		Usage: "write every rejected row to `OUT` as CSV line,reason (created 0600; OUT must not exist)",
	}
	rejectsWithValuesFlag = &cli.BoolFlag{
		Name:  "rejects-with-values",
		Usage: "with --rejects: add a value column with each rejected row as read (it holds identifiers; empty for a row the store refused)",
	}
	strictFlag = &cli.BoolFlag{
		Name:  "strict",
		Usage: "stop at the first rejected row, with its line and reason: match before it contacts the platform, an import before it commits the chunk holding the row",
	}
	// rejectFlags are the flags of every command that reads rows.
	rejectFlags = []cli.Flag{maxRejectsFlag, strictFlag, rejectsFlag, rejectsWithValuesFlag}
)

// exitStatusHelp is the paragraph on exit status of those commands' help.
const exitStatusHelp = "Exit status: 0 when every row was used; 3 when the command did its work on the\n" +
	"valid rows and rejected some (each listed on stderr with its line number, all of\n" +
	"them in --rejects OUT); 1 on any other error, including --strict or --max-rejects\n" +
	"stopping at a rejected row."

// rejectedError is the error of a command that did its work on the valid
// rows and rejected some; run exits with exitRejected for it.
type rejectedError struct {
	file     string // the input, as the user named it
	rejected int    // reports: rows, and a customer file's bad cells
	cells    int    // of which bad cells, in rows otherwise used or rejected
	out      string // the --rejects file, if any
}

func (e *rejectedError) Error() string {
	if e.cells > 0 {
		return fmt.Sprintf("%s and %d bad cells of %s rejected; the other rows and cells were used", nRows(e.rejected-e.cells), e.cells, e.file)
	}
	return fmt.Sprintf("%s of %s rejected; the other rows were used", nRows(e.rejected), e.file)
}

// nRows reads "1 row", "2 rows".
func nRows(n int) string {
	if n == 1 {
		return "1 row"
	}
	return fmt.Sprintf("%d rows", n)
}

// exitCode is run's exit status for an error returned by a command.
func exitCode(err error) int {
	var re *rejectedError
	if errors.As(err, &re) {
		return exitRejected
	}
	return 1
}

// rejectReporter reports the rejected rows of one input file. Its add
// method is the onReject callback of the idfile readers.
type rejectReporter struct {
	w      io.Writer // stderr
	file   string    // the input, as the user named it
	strict bool
	max    int // --max-rejects; 0: no limit

	out        *os.File // --rejects, or nil
	outPath    string
	cw         *csv.Writer
	withValues bool
	outErr     error // the first error writing out

	n        int
	cellN    int // reports of one cell (Reject.Column set), among n
	byReason map[string]int
	closed   bool
	cells    bool // a customer file's reporter: --rejects OUT has a column column
}

// newRejectReporter reads the reject flags of c for input file and creates
// the --rejects file, if one is asked for. The caller must call close.
func newRejectReporter(c *cli.Context, file string) (*rejectReporter, error) {
	return newReporter(c, file, false)
}

// newCellRejectReporter is newRejectReporter for a customer file, whose
// reports name a bad cell's column (SPEC.md §13.8): on stderr
// "FILE:LINE: COLUMN: rejected: REASON", and in --rejects OUT the CSV
// "line,column,reason" (column empty for a whole row).
func newCellRejectReporter(c *cli.Context, file string) (*rejectReporter, error) {
	return newReporter(c, file, true)
}

func newReporter(c *cli.Context, file string, cells bool) (*rejectReporter, error) {
	r := &rejectReporter{cells: cells, w: c.App.ErrWriter, file: file, strict: c.Bool(strictFlag.Name), max: c.Int(maxRejectsFlag.Name),
		outPath: c.String(rejectsFlag.Name), withValues: c.Bool(rejectsWithValuesFlag.Name), byReason: map[string]int{}}
	if r.max < 0 {
		return nil, withHint(errors.New("--max-rejects is negative"), "pass 0 for no limit, or --strict to stop at the first rejected row")
	}
	if r.withValues && r.outPath == "" {
		return nil, withHint(errors.New("--rejects-with-values needs --rejects"), "pass --rejects OUT to name the file the rejected rows go to")
	}
	if r.outPath == "" {
		return r, nil
	}
	f, err := os.OpenFile(r.outPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil, withHint(fmt.Errorf("rejects file %s already exists", r.outPath),
			"pass a new path to --rejects, or remove the old file (it may hold identifiers)")
	}
	if err != nil {
		return nil, fmt.Errorf("creating the rejects file: %w", err)
	}
	r.out, r.cw = f, csv.NewWriter(f)
	header := []string{"line", "reason"}
	if r.cells {
		header = []string{"line", "column", "reason"}
	}
	if r.withValues {
		header = append(header, "value")
	}
	r.write(header)
	return r, nil
}

func (r *rejectReporter) write(rec []string) {
	if r.outErr == nil {
		r.outErr = r.cw.Write(rec)
	}
}

// add reports one rejected row: on stderr (the first rejectsListed), to the
// --rejects file, and, with --strict or at --max-rejects, stops the reader.
func (r *rejectReporter) add(rej idfile.Reject) {
	r.n++
	if rej.Column != "" {
		r.cellN++
	}
	r.byReason[rej.Reason]++
	if r.n <= rejectsListed {
		if rej.Column != "" {
			fmt.Fprintf(r.w, "overlap: %s:%d: %s: rejected: %s\n", r.file, rej.Line, rej.Column, rej.Reason)
		} else {
			fmt.Fprintf(r.w, "overlap: %s:%d: rejected: %s\n", r.file, rej.Line, rej.Reason)
		}
	}
	if r.cw != nil {
		rec := []string{strconv.Itoa(rej.Line), rej.Reason}
		if r.cells {
			rec = []string{strconv.Itoa(rej.Line), rej.Column, rej.Reason}
		}
		if r.withValues {
			rec = append(rec, rej.Row())
		}
		r.write(rec)
	}
	if r.strict || r.max > 0 && r.n >= r.max {
		rej.Stop()
	}
}

// count is the number of rows reported.
func (r *rejectReporter) count() int { return r.n }

// close prints how many rejected rows were not shown and where they are,
// and closes the --rejects file. It returns an error when the file could
// not be written. Later calls do nothing.
func (r *rejectReporter) close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if r.n > rejectsListed {
		where := "pass --rejects OUT to write them all to a file"
		if r.out != nil {
			where = "all are in " + r.outPath
		}
		fmt.Fprintf(r.w, "overlap: %s: %d more rejected rows not shown; %s\n", r.file, r.n-rejectsListed, where)
	}
	if r.out == nil {
		return nil
	}
	r.cw.Flush()
	if r.outErr == nil {
		r.outErr = r.cw.Error()
	}
	if err := r.out.Close(); r.outErr == nil {
		r.outErr = err
	}
	if r.outErr != nil {
		return fmt.Errorf("writing the rejects file %s: %w", r.outPath, r.outErr)
	}
	return nil
}

// stopped adds a hint to a reader's error: for a stop at a rejected row
// (--strict or --max-rejects), which flag stopped it. Other errors are
// returned unchanged.
func (r *rejectReporter) stopped(err error) error {
	var se *idfile.StopError
	if !errors.As(err, &se) {
		return err
	}
	if r.strict {
		return withHint(fmt.Errorf("reading %s: %w", r.file, err), "--strict stops at the first rejected row: fix it, or drop --strict to use the other rows")
	}
	return withHint(fmt.Errorf("reading %s: %w", r.file, err), "fix the rejected rows, or raise --max-rejects (0: no limit)")
}

// err is the command's result once its work is done: nil when no row was
// rejected, else a *rejectedError (exit status 3) with a hint.
func (r *rejectReporter) err() error {
	if r.n == 0 {
		return nil
	}
	e := &rejectedError{file: r.file, rejected: r.n, cells: r.cellN}
	if r.out != nil {
		e.out = r.outPath
		return withHint(e, "the rejected rows are in %s (%s); fix them and run again", r.outPath, r.reasons())
	}
	if r.n > rejectsListed {
		return withHint(e, "the first %d rejected rows are listed above (%s); pass --rejects OUT to write all %d to a file", rejectsListed, r.reasons(), r.n)
	}
	return withHint(e, "the rejected rows are listed above (%s); pass --rejects OUT to write them to a file", r.reasons())
}

// reasons formats the counts by reason, most frequent first: "2 bad_quote,
// 1 not_an_email".
func (r *rejectReporter) reasons() string {
	type rc struct {
		reason string
		n      int
	}
	var all []rc
	for k, n := range r.byReason {
		all = append(all, rc{k, n})
	}
	slices.SortFunc(all, func(a, b rc) int { return cmp.Or(b.n-a.n, strings.Compare(a.reason, b.reason)) })
	var parts []string
	for _, x := range all {
		parts = append(parts, fmt.Sprintf("%d %s", x.n, x.reason))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// summaryPart is one count of an import's summary, such as {12,
// "imported"}.
type summaryPart struct {
	n     int
	label string
}

// printReadSummary prints the one line an import ends with, "FILE: R rows
// read, A imported, B already present, C rejected (1.2s)", where R = A + B
// + ... + C always: parts are what the work did with the accepted rows and
// rejected is the reader's count. A summary whose counts do not add up is
// an error (a row was lost), and is printed as such.
func printReadSummary(w io.Writer, file string, read idfile.RowsResult, parts []summaryPart, seconds float64) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d rows read", file, read.Rows)
	sum := read.Rejected
	for _, p := range parts {
		fmt.Fprintf(&b, ", %d %s", p.n, p.label)
		sum += p.n
	}
	fmt.Fprintf(&b, ", %d rejected (%.1fs)\n", read.Rejected, seconds)
	io.WriteString(w, b.String())
	if sum != read.Rows {
		return fmt.Errorf("internal error: %d rows read, but the counts above add up to %d", read.Rows, sum)
	}
	return nil
}
