//go:build ignore

// This program generates the sample platform and advertiser data used by
// `overlap demo` and the tests. Run it from the repository root:
//
//	go run ./testdata/sample/gen.go
//
// It is deterministic. The expected overlaps it writes to expected.json are
// computed here by a plain reference of the consent rule (README.md in this
// folder), independently of the store's SQL.
package main

import (
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

const subjects = 3000

var dir = filepath.Join("testdata", "sample")

type ident struct {
	subject, kind, value, collectedFor string
}

type consent struct {
	subject, kind, value, action, at string
}

type row struct{ id, email, phone string }

// bad are malformed emails the advertiser's list holds on purpose.
var bad = []string{"not-an-email", "Bob <bob@example.com>", "two@@example.com", "mailto:x@example.com", "a@b", "\"quoted\"@example.com"}

func main() {
	rng := mrand.New(mrand.NewPCG(2026, 11))
	p := newPlatform(fictionalPhones())
	matchable := p.matchable()
	rows := advertiserRows(rng, p)
	writeFiles(p, rows)
	exp := expected(p, rows, matchable)
	b, _ := json.MarshalIndent(exp, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "expected.json"), append(b, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(b))
}

// fictionalPhones returns 555-01XX numbers in many US area codes, kept only
// where libphonenumber calls them valid.
func fictionalPhones() []string {
	var phones []string
	for area := 201; area < 990 && len(phones) < 2000; area++ {
		for line := 100; line < 200; line++ {
			n := fmt.Sprintf("+1%d55501%02d", area, line-100)
			num, err := phonenumbers.Parse(n, "")
			if err == nil && phonenumbers.IsValidNumber(num) {
				phones = append(phones, phonenumbers.Format(num, phonenumbers.E164))
			}
		}
	}
	if len(phones) < 2000 {
		log.Fatalf("only %d fictional numbers are valid", len(phones))
	}
	return phones
}

// platform is the sample platform: its subjects' identifiers and consent
// events.
type platform struct {
	email, phone, recovery []string // by subject number; canonical; "" if none
	ids                    []ident
	events                 []consent
}

func newPlatform(phones []string) *platform {
	first := []string{"ana", "ben", "chloé", "dmitri", "eva", "farid", "grace", "hiro", "ines", "jamal", "kim", "lea", "mateo", "nora", "omar", "priya", "quinn", "rosa", "sven", "tara"}
	last := []string{"ng", "smith", "garcia", "müller", "okafor", "rossi", "tanaka", "dubois", "kowalski", "silva", "haddad", "berg"}
	domains := []string{"example.com", "example.org", "mail.example.net", "bücher.example"}
	p := &platform{email: make([]string, subjects+1), phone: make([]string, subjects+1), recovery: make([]string, subjects+1)}
	for i := 1; i <= subjects; i++ {
		s := fmt.Sprintf("u%05d", i)
		d := domains[i%len(domains)]
		if d == "bücher.example" {
			d = "xn--bcher-kva.example" // canonical (IDNA) form
		}
		p.email[i] = fmt.Sprintf("%s.%s%d@%s", first[i%len(first)], last[i%len(last)], i, d)
		// Canonical emails are lowercase ASCII-domain; local parts may hold
		// non-ASCII letters.
		p.ids = append(p.ids, ident{s, "email", p.email[i], "signup"})
		switch {
		case i <= 1000: // phone given only for two-factor authentication
			p.phone[i] = phones[i-1]
			p.ids = append(p.ids, ident{s, "phone", p.phone[i], "two_factor"})
		case i <= 1800: // phone typed into the profile
			p.phone[i] = phones[i-1]
			p.ids = append(p.ids, ident{s, "phone", p.phone[i], "profile"})
		case i <= 2000: // the same phone in the profile and for two-factor
			p.phone[i] = phones[i-1]
			p.ids = append(p.ids, ident{s, "phone", p.phone[i], "profile"}, ident{s, "phone", p.phone[i], "two_factor"})
		}
		if i > 2500 && i <= 2700 { // a second email, for account recovery only
			p.recovery[i] = fmt.Sprintf("backup%d@example.net", i)
			p.ids = append(p.ids, ident{s, "email", p.recovery[i], "recovery"})
		}
		// Consent: four in five subjects grant ad matching for their whole
		// account; one in fifty of those withdraws later; some withdraw for
		// their phone only.
		if i%5 != 0 {
			p.events = append(p.events, consent{s, "", "", "grant", "2026-01-15T10:00:00Z"})
			if i%50 == 1 {
				p.events = append(p.events, consent{s, "", "", "withdraw", "2026-06-01T09:30:00Z"})
			}
			if i%97 == 3 && p.phone[i] != "" {
				p.events = append(p.events, consent{s, "phone", p.phone[i], "withdraw", "2026-03-01T12:00:00Z"})
			}
		}
	}
	return p
}

// matchable is the reference rule (README.md), written here independently
// of the store: matchable = no security collection, and the latest
// ad_matching event covering the identifier is a grant.
func (p *platform) matchable() map[string]bool {
	security := map[string]bool{}
	for _, id := range p.ids {
		if id.collectedFor == "two_factor" || id.collectedFor == "recovery" || id.collectedFor == "login_alert" {
			security[id.kind+"|"+id.value] = true
		}
	}
	latest := func(subject, kind, value string) string {
		best, state := "", ""
		for _, e := range p.events {
			if e.subject == subject && (e.kind == "" || (e.kind == kind && e.value == value)) && e.at >= best {
				best, state = e.at, e.action
			}
		}
		return state
	}
	matchable := map[string]bool{}
	for _, id := range p.ids {
		if !security[id.kind+"|"+id.value] && latest(id.subject, id.kind, id.value) == "grant" {
			matchable[id.kind+"|"+id.value] = true
		}
	}
	return matchable
}

// advertiserRows is the advertiser's customer list: people on and off the
// platform, in the messy shapes real exports have.
func advertiserRows(rng *mrand.Rand, p *platform) []row {
	messy := func(e string) string {
		switch rng.IntN(5) {
		case 0:
			return strings.ToUpper(e)
		case 1:
			return "  " + e + " "
		case 2:
			at := strings.IndexByte(e, '@')
			return e[:at] + "@" + strings.ToUpper(e[at+1:])
		case 3: // pre-hashed, as uploaded to ad platforms today
			h := sha256.Sum256([]byte(e))
			return hex.EncodeToString(h[:])
		}
		return strings.Replace(e, "xn--bcher-kva", "bücher", 1) // Unicode domain
	}
	messyPhone := func(ph string) string {
		if ph == "" {
			return ""
		}
		// +1AAA555XXXX → (AAA) 555-XXXX, national format for region US.
		switch rng.IntN(3) {
		case 0:
			return fmt.Sprintf("(%s) %s-%s", ph[2:5], ph[5:8], ph[8:])
		case 1:
			return fmt.Sprintf("+1 %s %s %s", ph[2:5], ph[5:8], ph[8:])
		}
		return ph
	}
	var rows []row
	picked := rng.Perm(subjects)
	n := 0
	for _, k := range picked[:1500] {
		i := k + 1
		n++
		e := p.email[i]
		if p.recovery[i] != "" && rng.IntN(2) == 0 {
			e = p.recovery[i] // the advertiser knows the recovery address
		}
		rows = append(rows, row{fmt.Sprintf("c%05d", n), messy(e), messyPhone(p.phone[i])})
	}
	for j := range 600 { // customers who are not on the platform
		n++
		rows = append(rows, row{fmt.Sprintf("c%05d", n), messy(fmt.Sprintf("shopper%d@example.shop", j)), ""})
	}
	for _, b := range bad {
		n++
		rows = append(rows, row{fmt.Sprintf("c%05d", n), b, "call me"})
	}
	rows = append(rows, rows[3], rows[10]) // duplicates
	rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	return rows
}

// canonEmail is the canonical form of an email of the list, false for a
// malformed one; a hash of a platform address is resolved to it.
func (p *platform) canonEmail(v string) (string, bool) {
	v = strings.TrimSpace(v)
	if len(v) == 64 && !strings.Contains(v, "@") {
		for i := 1; i <= subjects; i++ {
			for _, e := range []string{p.email[i], p.recovery[i]} {
				if h := sha256.Sum256([]byte(e)); e != "" && hex.EncodeToString(h[:]) == v {
					return e, true
				}
			}
		}
		return "hash:" + v, true // hash of a non-platform email
	}
	for _, b := range bad {
		if v == b {
			return "", false
		}
	}
	at := strings.LastIndexByte(v, '@')
	domain := strings.Replace(strings.ToLower(v[at+1:]), "bücher", "xn--bcher-kva", 1)
	return strings.ToLower(v[:at]) + "@" + domain, true
}

// expected computes the results the tests check, over canonical forms.
func expected(p *platform, rows []row, matchable map[string]bool) map[string]any {
	emailSet, phoneSet := map[string]bool{}, map[string]bool{}
	for _, r := range rows {
		if e, ok := p.canonEmail(r.email); ok {
			emailSet[e] = true
		}
		if r.phone != "" && r.phone != "call me" {
			ph := r.phone
			if !strings.HasPrefix(ph, "+") || strings.Contains(ph, " ") {
				ph = "+1" + strings.NewReplacer("(", "", ")", "", " ", "", "-", "", "+1", "").Replace(ph)
			}
			phoneSet[ph] = true
		}
	}
	count := func(set map[string]bool, kind string) (total, overlap int) {
		for v := range set {
			total++
			if matchable[kind+"|"+v] {
				overlap++
			}
		}
		return
	}
	emailTotal, emailOverlap := count(emailSet, "email")
	phoneTotal, phoneOverlap := count(phoneSet, "phone")
	// What a platform that ignored consent and purpose would report.
	everything := map[string]bool{}
	for _, id := range p.ids {
		everything[id.kind+"|"+id.value] = true
	}
	naive := func(set map[string]bool, kind string) (c int) {
		for v := range set {
			if everything[kind+"|"+v] {
				c++
			}
		}
		return
	}
	matchableCount := map[string]int{}
	for k := range matchable {
		matchableCount[strings.SplitN(k, "|", 2)[0]]++
	}
	return map[string]any{
		"advertiser_rows":                len(rows),
		"email_distinct":                 emailTotal,
		"email_overlap":                  emailOverlap,
		"email_overlap_ignoring_consent": naive(emailSet, "email"),
		"phone_distinct":                 phoneTotal,
		"phone_overlap":                  phoneOverlap,
		"phone_overlap_ignoring_consent": naive(phoneSet, "phone"),
		"platform_matchable_email":       matchableCount["email"],
		"platform_matchable_phone":       matchableCount["phone"],
		"rejected_email_rows":            len(bad),
	}
}

// writeFiles writes the platform's files and the advertiser's list.
func writeFiles(p *platform, rows []row) {
	writeCSV("platform_identifiers.csv", []string{"subject", "kind", "value", "collected_for"}, func(w *csv.Writer) {
		for _, id := range p.ids {
			w.Write([]string{id.subject, id.kind, id.value, id.collectedFor})
		}
	})
	writeCSV("platform_consent.csv", []string{"subject", "kind", "value", "purpose", "action", "at", "source", "text_version"}, func(w *csv.Writer) {
		for _, e := range p.events {
			w.Write([]string{e.subject, e.kind, e.value, "ad_matching", e.action, e.at, "settings_page", "ads-consent-2026-01"})
		}
	})
	writeCSV("advertiser_customers.csv", []string{"customer_id", "email", "phone"}, func(w *csv.Writer) {
		for _, r := range rows {
			w.Write([]string{r.id, r.email, r.phone})
		}
	})
}

func writeCSV(name string, header []string, rows func(*csv.Writer)) {
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		log.Fatal(err)
	}
	w := csv.NewWriter(f)
	w.Write(header)
	rows(w)
	w.Flush()
	if err := w.Error(); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
}
