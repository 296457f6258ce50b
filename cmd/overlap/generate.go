//go:build !advertiser

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"
)

// The synthetic ledger of ids generate: subject i has an email (signup)
// and a phone (profile; two_factor for every tenth subject), a
// subject-wide grant, except every eleventh subject which never consented,
// a later subject-wide withdrawal for every seventh, and an email-scoped
// withdrawal for every thirteenth. Every class of ids stats is present.
const (
	genSecurityEvery  = 10 // phone collected for two_factor: never matchable
	genNoConsentEvery = 11 // no event at all
	genWithdrawEvery  = 7  // subject-wide withdrawal after the grant
	genScopedEvery    = 13 // email-scoped withdrawal after the grant
	// genMaxSubjects keeps the phone numbers (+447 and nine digits)
	// distinct.
	genMaxSubjects = 1_000_000_000
)

// genEpoch is the time of the first grant; events are spread over the
// following day, and the withdrawals come 10 and 30 days later.
var genEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

var genDomains = []string{"example.com", "mail.example.net", "example.org", "post.example.co.uk"}

func idsGenerateCommand() *cli.Command {
	return &cli.Command{
		Name:      "generate",
		Usage:     "write a synthetic identifiers file and consent file, for measuring imports and snapshots",
		ArgsUsage: "IDENTIFIERS.csv CONSENT.csv",
		Description: "Writes --subjects subjects, each with an email (collected for signup) and a phone\n" +
			"(profile; two_factor for every 10th subject), in the CSV of \"ids import\", and\n" +
			"their consent events in the CSV of \"consent import\": a subject-wide grant for\n" +
			"every subject but every 11th, a later withdrawal for every 7th, and a withdrawal\n" +
			"of the email alone for every 13th. The data is the same on every run. Both files\n" +
			"hold identifiers and are created 0600; existing files are not overwritten.",
		Flags: []cli.Flag{
			&cli.Int64Flag{Name: "subjects", Usage: "how many subjects (2 identifiers each)", Required: true},
		},
		Action: idsGenerate,
	}
}

func idsGenerate(c *cli.Context) error {
	if c.NArg() != 2 {
		return withHint(errors.New("ids generate takes two files"), "overlap ids generate --subjects 1000000 ids.csv consent.csv")
	}
	n := c.Int64("subjects")
	if n < 1 || n > genMaxSubjects {
		return fmt.Errorf("--subjects %d is outside 1..%d", n, genMaxSubjects)
	}
	start := time.Now()
	ids, err := writeGenerated(c.Args().Get(0), func(w *bufio.Writer) (int64, error) { return writeGeneratedIdentifiers(w, n) })
	if err != nil {
		return err
	}
	events, err := writeGenerated(c.Args().Get(1), func(w *bufio.Writer) (int64, error) { return writeGeneratedConsent(w, n) })
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "wrote %d identifiers of %d subjects to %s and %d consent events to %s (%.1fs)\n",
		ids, n, c.Args().Get(0), events, c.Args().Get(1), time.Since(start).Seconds())
	return nil
}

// writeGenerated creates path 0600, refusing an existing file, and fills
// it with write.
func writeGenerated(path string, write func(*bufio.Writer) (int64, error)) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return 0, withHint(err, "ids generate does not overwrite files: remove it or choose another name")
		}
		return 0, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	rows, err := write(w)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return 0, fmt.Errorf("writing %s: %w", path, err)
	}
	return rows, nil
}

func genSubject(b []byte, i int64) []byte {
	b = append(b, 'g')
	return strconv.AppendInt(b, i, 10)
}

func genEmail(b []byte, i int64) []byte {
	b = append(b, "user"...)
	b = strconv.AppendInt(b, i, 10)
	b = append(b, '@')
	return append(b, genDomains[i%int64(len(genDomains))]...)
}

func genPhone(b []byte, i int64) []byte {
	b = append(b, "+447"...)
	s := strconv.FormatInt(i, 10)
	for range 9 - len(s) {
		b = append(b, '0')
	}
	return append(b, s...)
}

func writeGeneratedIdentifiers(w io.Writer, n int64) (int64, error) {
	if _, err := io.WriteString(w, "subject,kind,value,collected_for\n"); err != nil {
		return 0, err
	}
	var b []byte
	for i := range n {
		b = genSubject(b[:0], i)
		b = append(b, ",email,"...)
		b = genEmail(b, i)
		b = append(b, ",signup\n"...)
		b = genSubject(b, i)
		b = append(b, ",phone,"...)
		b = genPhone(b, i)
		if i%genSecurityEvery == 0 {
			b = append(b, ",two_factor\n"...)
		} else {
			b = append(b, ",profile\n"...)
		}
		if _, err := w.Write(b); err != nil {
			return 0, err
		}
	}
	return 2 * n, nil
}

func writeGeneratedConsent(w io.Writer, n int64) (int64, error) {
	if _, err := io.WriteString(w, "subject,kind,value,purpose,action,at,source,text_version\n"); err != nil {
		return 0, err
	}
	var (
		b    []byte
		rows int64
	)
	event := func(i int64, email bool, action string, at time.Time, text string) {
		b = genSubject(b, i)
		if email {
			b = append(b, ",email,"...)
			b = genEmail(b, i)
		} else {
			b = append(b, ",,"...)
		}
		b = append(b, ",ad_matching,"...)
		b = append(b, action...)
		b = append(b, ',')
		b = at.AppendFormat(b, time.RFC3339)
		b = append(b, ",signup_form,"...)
		b = append(b, text...)
		b = append(b, '\n')
		rows++
	}
	for i := range n {
		if i%genNoConsentEvery == 0 {
			continue
		}
		b = b[:0]
		granted := genEpoch.Add(time.Duration(i%86400) * time.Second)
		event(i, false, "grant", granted, "ads-v1")
		if i%genScopedEvery == 0 {
			event(i, true, "withdraw", granted.Add(10*24*time.Hour), "")
		}
		if i%genWithdrawEvery == 0 {
			event(i, false, "withdraw", granted.Add(30*24*time.Hour), "")
		}
		if _, err := w.Write(b); err != nil {
			return 0, err
		}
	}
	return rows, nil
}
