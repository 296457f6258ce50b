//go:build !advertiser

package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/overlap-psi/overlap/bench/harness"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:            "bench",
		Usage:           "run the benchmark harness (same as go run ./bench); --help lists its flags",
		ArgsUsage:       "[--quick] [--modes M,...] [--grid C/S,...] [--private-grid C/S,...] [--out DIR] [--overlap F] [--seed N]",
		SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			args := append([]string{"overlap bench"}, c.Args().Slice()...)
			if code := harness.Main(args, c.App.Writer, c.App.ErrWriter); code != 0 {
				return fmt.Errorf("bench failed (exit %d)", code)
			}
			return nil
		},
	}
}
