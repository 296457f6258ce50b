// Command overlap measures how much of an advertiser's customer list overlaps
// with an ad platform's consented users, without either side seeing the
// other's list. See README.md and SPEC.md.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run executes the command line and returns the exit code: 0, 3 when a
// command did its work but rejected rows of its file (exitRejected), 1 for
// any other error. It is main without the exit, so tests can call it.
func run(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	if err := app.Run(args); err != nil {
		printError(stderr, err)
		return exitCode(err)
	}
	return 0
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:  "overlap",
		Usage: "private overlap counts between an advertiser's list and a platform's consented users",
		Description: "Overlap runs an ECDH private-set-intersection-cardinality protocol (SPEC.md):\n" +
			"the advertiser learns only how many of its identifiers the platform holds,\n" +
			"the platform learns only the size of the advertiser's list, and the platform's\n" +
			"side contains only identifiers whose owners consented to ad matching.",
		Version:         version,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		Commands:        commands(),
		// Errors are printed by run, once, in the overlap: error: form.
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

// hintError is an error with a concrete fix for the user (age's
// errorWithHint).
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

func withHint(err error, format string, args ...any) error {
	return &hintError{err: err, hint: fmt.Sprintf(format, args...)}
}

func printError(w io.Writer, err error) {
	fmt.Fprintf(w, "overlap: error: %v\n", err)
	var h *hintError
	if errors.As(err, &h) {
		fmt.Fprintf(w, "overlap: hint: %s\n", h.hint)
	}
}
