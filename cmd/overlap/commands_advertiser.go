//go:build advertiser

package main

import "github.com/urfave/cli/v2"

// commands lists the advertiser's subcommands: the build of overlap for
// advertisers (go build -tags advertiser ./cmd/overlap) links no store,
// server, metrics or plotting code (platform.go has the full list).
func commands() []*cli.Command {
	return []*cli.Command{matchCommand(), setupCommand(), versionCommand()}
}
