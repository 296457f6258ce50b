//go:build !advertiser

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/overlap-psi/overlap/psi/ident"
	"github.com/overlap-psi/overlap/psi/idfile"
	"github.com/overlap-psi/overlap/psi/store"
)

// rowReader is the shape of idfile.ReadRows and idfile.ReadConsent.
type rowReader[R any] func(io.Reader, idfile.ListFormat, ident.Options, func(R) error, func(idfile.Reject)) (idfile.RowsResult, error)

// progressEvery is how often an import that does not write to a terminal
// prints a line of progress on stderr.
const progressEvery = 10 * time.Second

// importHelp is the paragraph on chunks and re-runs of the import commands'
// help.
const importHelp = "The store commits every 5,000 rows, so sessions served meanwhile never wait long\n" +
	"for it (an identifier import on PostgreSQL: every 100,000 rows). Without a terminal, a\n" +
	"line of progress (rows, rate, share of the file read, time left) goes to stderr\n" +
	"every 10 seconds. An import that stops half way (an error, --strict, a kill) keeps\n" +
	"the chunks it committed; running the same file again is safe and ends in the\n" +
	"same ledger as one uninterrupted run, since rows already present are counted\n" +
	"as such and not added twice."

// lineMap maps the sequence number of each row passed to the store
// (1-based) to its file line, for the store's reports of refused rows.
// Every row is one line, so line - seq only grows, at a blank line, a
// header or a row the reader rejected; the map keeps the rows where it
// changes, a few words per skipped line however long the file, and can
// answer for every row (a bulk import reports the rows the ledger refused
// after the whole file was read).
type lineMap struct {
	n    int64   // rows added
	seqs []int64 // the first row of each run of rows with equal line - seq
	offs []int   // line - seq of each run
}

func (m *lineMap) add(line int) {
	m.n++
	off := line - int(m.n)
	if k := len(m.offs); k == 0 || m.offs[k-1] != off {
		m.seqs = append(m.seqs, m.n)
		m.offs = append(m.offs, off)
	}
}

// run is the index of the run holding row seq, or -1.
func (m *lineMap) run(seq int64) int {
	return sort.Search(len(m.seqs), func(i int) bool { return m.seqs[i] > seq }) - 1
}

// line is the file line of row seq, or 0 when the map does not know it.
func (m *lineMap) line(seq int64) int {
	if seq < 1 || seq > m.n {
		return 0
	}
	if i := m.run(seq); i >= 0 {
		return int(seq) + m.offs[i]
	}
	return 0
}

// settled forgets the runs that end before row seq: the store will not
// report those rows again.
func (m *lineMap) settled(seq int64) {
	if i := m.run(seq); i > 0 {
		m.seqs = append(m.seqs[:0], m.seqs[i:]...)
		m.offs = append(m.offs[:0], m.offs[i:]...)
	}
}

// ledgerImport streams the one FILE argument through reader into write, a
// chunked store import: rows the reader or the store rejects are reported
// with their file lines (rejectReporter), the summary says rows read =
// imported + already present + rejected, and any rejected row makes the
// exit status 3. --strict and --max-rejects stop the import; the chunks
// committed before stay, and the error says how far it got.
func ledgerImport[R, T any](c *cli.Context, example, desc, bulkWhat string, reader rowReader[R], conv func(R) T, lineOf func(R) int,
	write func(context.Context, store.Store, iter.Seq[T], store.ImportOptions) (store.ImportResult, error),
	parts func(store.ImportResult) []summaryPart) error {
	if c.NArg() != 1 {
		return withHint(fmt.Errorf("%s takes one FILE", strings.TrimPrefix(c.Command.HelpName, c.App.Name+" ")), "%s", example)
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
	if c.Bool(bulkFlag.Name) {
		// Before the store is opened: a refused --bulk needs no connection.
		if err := bulkCheck(path, c.String(dbFlag.Name)); err != nil {
			return err
		}
	}
	rep, err := newRejectReporter(c, path)
	if err != nil {
		return err
	}
	defer rep.close()
	st, err := openStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	in, finish, err := openInput(path, desc, c.App.ErrWriter)
	if err != nil {
		return err
	}
	defer finish()
	counted := &countingReader{r: in}
	in = counted
	var size int64
	if fi, err := os.Stat(path); err == nil && path != "-" && fi.Mode().IsRegular() {
		size = fi.Size()
	}

	start := time.Now()
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	strict, maxRejects := c.Bool(strictFlag.Name), c.Int(maxRejectsFlag.Name)
	var (
		lines   lineMap
		read    idfile.RowsResult
		readErr error
		last    = time.Now()
	)
	rows := func(yield func(T) bool) {
		read, readErr = reader(in, format, opts, func(r R) error {
			lines.add(lineOf(r))
			if !yield(conv(r)) {
				return errStopped
			}
			return nil
		}, rep.add)
		if readErr != nil {
			// Stop the store before it commits the rows of this chunk.
			cancel()
		}
	}
	var stopErr error // --max-rejects stopping on a row the store refused
	bulk := c.Bool(bulkFlag.Name)
	sopts := store.ImportOptions{
		OnReject: func(re *store.RowError) {
			if err := storeReject(rep, path, lines.line(re.Row), re, maxRejects); err != nil && stopErr == nil {
				stopErr = err
				cancel()
			}
		},
		Progress: func(res store.ImportResult) {
			if !bulk {
				lines.settled(res.Read)
			}
			if !isTerminal(c.App.ErrWriter) && time.Since(last) >= progressEvery {
				last = time.Now()
				fmt.Fprintf(c.App.ErrWriter, "overlap: %s: %s\n", path, progressLine(int64(read.Rejected)+res.Read, counted.n, size, time.Since(start)))
			}
		},
	}
	if bulk {
		if sopts.Bulk, err = bulkName(bulkWhat, path, c.String(dbFlag.Name)); err != nil {
			return err
		}
		sopts.Phase = func(p string) { fmt.Fprintf(c.App.ErrWriter, "overlap: %s: %s\n", path, p) }
	}
	var storeStrict error
	if strict {
		sopts.OnReject = nil
	}
	res, err := write(ctx, st, rows, sopts)
	var re *store.RowError
	if strict && errors.As(err, &re) {
		rep.add(idfile.Reject{Line: lines.line(re.Row), Reason: re.Reason()})
		storeStrict = withHint(fmt.Errorf("%s:%d: %s: %w", path, lines.line(re.Row), re.Reason(), re.Err),
			"--strict stops at the first rejected row: fix it, or drop --strict to use the other rows")
		err = nil
	}
	finish()
	if cerr := rep.close(); cerr != nil {
		return cerr
	}
	if err := importStopped(rep, path, lines, bulk, res, readErr, storeStrict, stopErr, err); err != nil {
		return err
	}
	summary := read
	summary.Rejected += int(res.Rejected)
	if err := printReadSummary(c.App.Writer, path, summary, parts(res), time.Since(start).Seconds()); err != nil {
		return err
	}
	return rep.err()
}

// storeReject reports a row the store refused, at line, and returns the
// error that stops the import when it reaches --max-rejects.
func storeReject(rep *rejectReporter, path string, line int, re *store.RowError, maxRejects int) error {
	rep.add(idfile.Reject{Line: line, Reason: re.Reason()})
	if maxRejects > 0 && rep.count() >= maxRejects {
		return withHint(fmt.Errorf("%s:%d: %s; %d rows rejected, the limit set by --max-rejects", path, line, re.Reason(), rep.count()),
			"fix the rejected rows, or raise --max-rejects (0: no limit)")
	}
	return nil
}

// importStopped returns the error of an import that stopped before the
// end of its file (the reader's stop, --strict or --max-rejects on a row
// the store refused, or a store error), saying how far it got; nil when it
// read the whole file. A bulk import that stopped merged nothing: the rows
// it read were staged, not imported.
func importStopped(rep *rejectReporter, path string, lines lineMap, bulk bool, res store.ImportResult, readErr, storeStrict, stopErr, err error) error {
	stopped := func(e error) error {
		switch {
		case res.Read == 0:
			return fmt.Errorf("%w (nothing was imported)", e)
		case bulk:
			return fmt.Errorf("%w (nothing was imported; the valid rows of the first %d, up to line %d, are staged, and running the same --bulk import on the unchanged file resumes)",
				e, res.Read, lines.line(res.Read))
		}
		return fmt.Errorf("%w (the first %d rows, up to line %d, were imported; running the same import again is safe)",
			e, res.Read, lines.line(res.Read))
	}
	switch {
	case readErr != nil && !errors.Is(readErr, errStopped):
		return keepHint(rep.stopped(readErr), stopped)
	case storeStrict != nil:
		return keepHint(storeStrict, stopped)
	case stopErr != nil:
		return keepHint(stopErr, stopped)
	case err != nil:
		return stopped(fmt.Errorf("importing %s: %w", path, err))
	}
	return nil
}

// keepHint applies f to err's message and keeps its hint.
func keepHint(err error, f func(error) error) error {
	var h *hintError
	if errors.As(err, &h) {
		return &hintError{err: f(h.err), hint: h.hint}
	}
	return f(err)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// progressLine describes an import that has committed rows after elapsed,
// having read done of the size bytes of its file (size 0: unknown, as for
// standard input), with the time left estimated from the bytes still to
// read at the rate so far.
func progressLine(rows, done, size int64, elapsed time.Duration) string {
	s := fmt.Sprintf("%d rows so far, %.0f rows/s (%.0fs)", rows, float64(rows)/elapsed.Seconds(), elapsed.Seconds())
	if size > 0 && done > 0 && done <= size {
		left := time.Duration(float64(elapsed) * float64(size-done) / float64(done))
		s += fmt.Sprintf(", %.0f%% of the file read, about %s left", 100*float64(done)/float64(size), left.Round(time.Second))
	}
	return s
}

// bulkCheck refuses --bulk for a SQLite store or standard input.
func bulkCheck(path, dsn string) error {
	if !store.IsPostgres(dsn) {
		return withHint(errors.New("--bulk needs a PostgreSQL store"), "drop --bulk for a SQLite store, or pass --db postgres://...")
	}
	if path == "-" {
		return withHint(errors.New("--bulk needs a file, not standard input"), "a bulk import resumes by the file's path, size and time")
	}
	return nil
}

// bulkName names the bulk import of the file at path: its absolute path,
// size and modification time, so that a run on the same unchanged file
// resumes it and a changed file starts a batch of its own. what is
// "identifiers" or "consent".
func bulkName(what, path, dsn string) (string, error) {
	if err := bulkCheck(path, dsn); err != nil {
		return "", err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s %s %d %d", what, abs, fi.Size(), fi.ModTime().UnixNano()), nil
}
