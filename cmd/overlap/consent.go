//go:build !advertiser

package main

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
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
		&cli.StringFlag{Name: "purpose", Usage: "consent purpose; the ledger knows " + strings.Join(store.ConsentPurposes, ", "), Value: store.AdMatching},
		&cli.StringFlag{Name: "source", Usage: "where the consent was given or withdrawn", Value: "cli"},
		&cli.StringFlag{Name: "text-version", Usage: "version of the consent text shown (required to grant)"},
		&cli.TimestampFlag{Name: "at", Usage: "when it happened, RFC 3339 (default: now); at most " + store.ClockSkew.String() + " ahead of now", Layout: time.RFC3339},
	}
	eventHelp := "The subject must have at least one imported identifier (overlap ids import);\n" +
		"with --kind and --value, the subject must have that identifier. Subjects match\n" +
		"exactly, case included. An unknown subject or identifier, a purpose other than\n" +
		strings.Join(store.ConsentPurposes, ", ") + " or an --at more than " + store.ClockSkew.String() + " in the future is an error, and\n" +
		"nothing is recorded. Events count in the order of their effective time, the\n" +
		"earlier of --at and the time the ledger records them (then in recording order),\n" +
		"so no event can override one recorded before it by claiming a later time."
	return &cli.Command{
		Name:  "consent",
		Usage: "platform: append to the consent ledger (append-only)",
		Subcommands: []*cli.Command{
			{Name: "grant", Usage: "record that a subject consented", Flags: eventFlags, Description: eventHelp,
				Action: func(c *cli.Context) error { return consentEvent(c, true) }},
			{Name: "withdraw", Usage: "record that a subject withdrew consent; takes effect at the next session", Flags: eventFlags, Description: eventHelp,
				Action: func(c *cli.Context) error { return consentEvent(c, false) }},
			{
				Name:      "import",
				Usage:     "append consent events from CSV or JSONL (subject,kind,value,purpose,action,at,source,text_version)",
				ArgsUsage: "FILE",
				Description: "Reads rows of subject, kind and value (both empty: every identifier of the\n" +
					"subject), purpose (" + strings.Join(store.ConsentPurposes, ", ") + "), action (grant or withdraw), at (RFC 3339,\n" +
					"required), source and text_version (required to grant). A row is rejected, with\n" +
					"its line number, when it is malformed, names a subject with no imported\n" +
					"identifier (unknown_subject) or an identifier the subject does not have\n" +
					"(unknown_identifier), has another purpose (unknown_purpose) or an at more than\n" +
					store.ClockSkew.String() + " in the future (future_at). A row identical to an event already in the\n" +
					"ledger is counted as already present and not appended again; the summary reads\n" +
					"\"R rows read, A appended, P already present, J rejected\" with R = A + P + J.\n\n" +
					importHelp + "\n\n" + consentBulkHelp + "\n\n" + exitStatusHelp,
				Flags: append([]cli.Flag{dbFlag, regionFlag, formatFlag, &cli.BoolFlag{
					Name:  bulkFlag.Name,
					Usage: "PostgreSQL: stage the file in an unlogged table, then append it in one transaction (fast; resumable; see below)",
				}}, rejectFlags...),
				Action: consentImport,
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
	res, err := st.AppendConsent(c.Context, slices.Values([]store.ConsentEvent{e}), store.ImportOptions{})
	if err != nil {
		return consentHint(err, e)
	}
	action := "withdrawal"
	if grant {
		action = "grant"
	}
	if res.Unchanged > 0 {
		fmt.Fprintf(c.App.Writer, "an identical %s of %s for subject %s at %s is already in the ledger; nothing changed\n",
			action, e.Purpose, e.Subject, e.At.UTC().Format(time.RFC3339Nano))
		return nil
	}
	fmt.Fprintf(c.App.Writer, "recorded %s of %s for subject %s; it applies from the next session\n", action, e.Purpose, e.Subject)
	return nil
}

// consentHint adds the fix to an error of consent grant or withdraw.
func consentHint(err error, e store.ConsentEvent) error {
	var re *store.RowError
	if errors.As(err, &re) {
		err = re.Err // one event: its row number says nothing
	}
	switch {
	case errors.Is(err, store.ErrUnknownSubject):
		return withHint(err, "check --subject (subjects match exactly, case included); a subject needs an identifier imported with overlap ids import before consent events")
	case errors.Is(err, store.ErrUnknownIdentifier):
		return withHint(err, "import the identifier first with overlap ids import, check --subject, --kind and --value, or omit --kind/--value for a subject-wide event")
	case errors.Is(err, store.ErrUnknownPurpose):
		return withHint(err, "pass --purpose %s (the purpose the matchable set reads), or omit --purpose", store.AdMatching)
	case errors.Is(err, store.ErrFutureEvent):
		return withHint(err, "--at may be at most %v after now; record an event when it happens, or omit --at for now", store.ClockSkew)
	}
	return err
}

const consentBulkHelp = "With --bulk (PostgreSQL only) the events are first copied into an unlogged\n" +
	"staging table, then appended in one transaction under the same rules: the\n" +
	"ledger ends with the events the import without --bulk appends, in the same\n" +
	"order, with the same rows refused, except that every event of the file is\n" +
	"recorded at the time of the merge. Nothing is appended until the merge\n" +
	"commits, and while it runs it holds other consent appends off. Stopped (a kill,\n" +
	"an error), it resumes when run again on the same unchanged file: the rows\n" +
	"staged before are read and checked again, not staged again, and every run of\n" +
	"the file judges future_at against the time its first run began. The rows the\n" +
	"ledger refuses (unknown_subject, unknown_identifier) are reported by the merge,\n" +
	"after the rows rejected while reading; --strict and --max-rejects stopping on\n" +
	"one of them leave nothing appended."

func consentImport(c *cli.Context) error {
	return ledgerImport(c, "overlap consent import testdata/sample/platform_consent.csv", "importing consent", "consent",
		readConsent, eventOf, func(r idfile.ConsentRow) int { return r.Line },
		func(ctx context.Context, st store.Store, events iter.Seq[store.ConsentEvent], o store.ImportOptions) (store.ImportResult, error) {
			return st.AppendConsent(ctx, events, o)
		},
		func(res store.ImportResult) []summaryPart {
			return []summaryPart{{int(res.Inserted), "appended"}, {int(res.Unchanged), "already present"}}
		})
}
