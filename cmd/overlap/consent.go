package main

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/ident"
	"github.com/overlap-psi/overlap/psi/idfile"
	"github.com/overlap-psi/overlap/psi/store"
)

func consentCommand() *cli.Command {
	eventFlags := []cli.Flag{
		dbFlag, regionFlag,
		&cli.StringFlag{Name: "subject", Usage: "the platform's pseudonymous user id", Required: true},
		&cli.StringFlag{Name: "kind", Usage: "with --value: the identifier's kind (email, phone, id); without: the event covers all of the subject's identifiers"},
		&cli.StringFlag{Name: "value", Usage: "the identifier the event is for (canonicalized as in SPEC.md §7)"},
		&cli.StringFlag{Name: "purpose", Usage: "consent purpose", Value: store.AdMatching},
		&cli.StringFlag{Name: "source", Usage: "where the consent was given or withdrawn", Value: "cli"},
		&cli.StringFlag{Name: "text-version", Usage: "version of the consent text shown (required to grant)"},
		&cli.TimestampFlag{Name: "at", Usage: "when it happened, RFC 3339 (default: now)", Layout: time.RFC3339},
	}
	return &cli.Command{
		Name:  "consent",
		Usage: "platform: append to the consent ledger (append-only)",
		Subcommands: []*cli.Command{
			{Name: "grant", Usage: "record that a subject consented", Flags: eventFlags,
				Action: func(c *cli.Context) error { return consentEvent(c, true) }},
			{Name: "withdraw", Usage: "record that a subject withdrew consent; takes effect at the next session", Flags: eventFlags,
				Action: func(c *cli.Context) error { return consentEvent(c, false) }},
			{
				Name:      "import",
				Usage:     "append consent events from CSV or JSONL (subject,kind,value,purpose,action,at,source,text_version)",
				ArgsUsage: "FILE",
				Flags:     []cli.Flag{dbFlag, regionFlag, formatFlag, maxRejectsFlag},
				Action:    consentImport,
			},
		},
	}
}

func consentEvent(c *cli.Context, grant bool) error {
	opts, err := identOptions(c)
	if err != nil {
		return err
	}
	e := store.ConsentEvent{Subject: c.String("subject"), Purpose: c.String("purpose"), Granted: grant,
		At: time.Now().UTC(), Source: c.String("source"), TextVersion: c.String("text-version")}
	if t := c.Timestamp("at"); t != nil {
		e.At = *t
	}
	if grant && e.TextVersion == "" {
		return withHint(errors.New("a grant needs the version of the consent text the person saw"), "pass --text-version, e.g. --text-version ads-consent-2026-01")
	}
	if v := c.String("value"); v != "" || c.String("kind") != "" {
		kind, err := psi.ParseKind(c.String("kind"))
		if err != nil {
			return withHint(err, "pass --kind email, phone or id together with --value")
		}
		id, err := ident.Parse(kind, v, opts)
		if err != nil {
			return err
		}
		if id.Prehashed {
			return errors.New("consent events name canonical identifiers, not SHA-256 hex")
		}
		e.Kind, e.Value = kind, id.Canonical
	}
	st, err := openStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := st.AppendConsent(c.Context, slices.Values([]store.ConsentEvent{e})); err != nil {
		if errors.Is(err, store.ErrUnknownIdentifier) {
			return withHint(err, "import the identifier first with overlap ids import, or omit --kind/--value for a subject-wide event")
		}
		return err
	}
	action := "withdrawal"
	if grant {
		action = "grant"
	}
	fmt.Fprintf(c.App.Writer, "recorded %s of %s for subject %s; it applies from the next session\n", action, e.Purpose, e.Subject)
	return nil
}

func consentImport(c *cli.Context) error {
	return importFile(c, "overlap consent import testdata/sample/platform_consent.csv", "importing consent",
		idfile.ReadConsent, eventOf,
		func(ctx context.Context, st store.Store, events iter.Seq[store.ConsentEvent]) (string, error) {
			n, err := st.AppendConsent(ctx, events)
			return fmt.Sprintf("%d events appended", n), err
		})
}
