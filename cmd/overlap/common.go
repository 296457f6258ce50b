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
)

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
