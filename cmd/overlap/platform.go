//go:build !advertiser

package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/overlap-psi/overlap/psi/idfile"
	"github.com/overlap-psi/overlap/psi/store"
)

// commands lists the subcommands: the platform's, the advertiser's and
// the researchers'. Built with -tags advertiser, overlap has only the
// advertiser's (commands_advertiser.go) and links no server dependency.
func commands() []*cli.Command {
	return []*cli.Command{
		demoCommand(),
		idsCommand(),
		consentCommand(),
		advertisersCommand(),
		serveCommand(),
		matchCommand(),
		setupCommand(),
		benchCommand(),
		versionCommand(),
	}
}

// dbFlag selects the consent store, shared by every platform-side command.
var dbFlag = &cli.StringFlag{
	Name:    "db",
	Usage:   "consent store: a SQLite file path (one process), or a postgres:// DSN (shared by replicas of overlap serve)",
	EnvVars: []string{"OVERLAP_DB"},
	Value:   "overlap.db",
}

// openStore opens the --db store and prints what it fixed on opening
// (database files readable by others) as warnings on stderr.
func openStore(c *cli.Context) (store.Store, error) {
	dsn := c.String(dbFlag.Name)
	st, err := store.Open(c.Context, dsn)
	if err != nil {
		return nil, withHint(err, "pass --db PATH for a SQLite file or --db postgres://USER@HOST/DB for PostgreSQL")
	}
	for _, w := range st.Warnings() {
		fmt.Fprintf(c.App.ErrWriter, "overlap: warning: %s\n", w)
	}
	return st, nil
}

// identifierOf and eventOf map reader rows to store rows.
func identifierOf(r idfile.Row) store.Identifier {
	return store.Identifier{Subject: r.Subject, Kind: r.Kind, Value: r.Identifier.Canonical,
		Digest: r.Identifier.Digest, CollectedFor: store.Purpose(r.CollectedFor)}
}

func eventOf(r idfile.ConsentRow) store.ConsentEvent {
	return store.ConsentEvent{Subject: r.Subject, Kind: r.Kind, Value: r.Identifier.Canonical,
		Purpose: r.Purpose, Granted: r.Granted, At: r.At, Source: r.Source, TextVersion: r.TextVersion}
}
