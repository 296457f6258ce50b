package main

import (
	"fmt"
	"runtime"

	"github.com/urfave/cli/v2"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/ident"
)

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, protocol version and canonicalization version",
		Action: func(c *cli.Context) error {
			fmt.Fprintf(c.App.Writer, "overlap %s\nprotocol v%d (SPEC.md), canonicalization v%d, %s %s/%s\n",
				version, psi.Version, ident.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
