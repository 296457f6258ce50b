package idfile

import (
	"io"
	"time"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/ident"
)

// PurposeAdMatching is the consent purpose that admits an identifier to the
// matchable set (SECURITY.md, "Consent").
const PurposeAdMatching = "ad_matching"

// ConsentRow is one consent event: a subject granted or withdrew consent for
// a purpose, for one identifier or for all of the subject's identifiers.
type ConsentRow struct {
	Line    int    // 1-based line the row starts on
	Subject string // the platform's pseudonymous user id, trimmed
	// Kind is 0 for a subject-wide event.
	Kind psi.Kind
	// Identifier is canonical, never pre-hashed; zero for a subject-wide
	// event.
	Identifier  ident.Identifier
	Purpose     string // a lowercase token such as "ad_matching"
	Granted     bool   // action "grant" (true) or "withdraw" (false)
	At          time.Time
	Source      string // where the event came from, such as "settings_page"
	TextVersion string // the consent text version shown; may be empty for a withdrawal
}

var consentColumns = []string{"subject", "kind", "value", "purpose", "action", "at", "source", "text_version"}

// ReadConsent reads consent events for bulk import: CSV with the header
// subject,kind,value,purpose,action,at,source,text_version (in any order, no
// other columns), or JSONL objects with those keys and string values. Kind
// and value are both empty (or absent) for a subject-wide event; action is
// "grant" or "withdraw"; at is an RFC 3339 timestamp, returned in UTC;
// text_version is required for a grant. Each valid row is passed to fn (nil
// only checks the rows); an error from fn stops the reader and is returned.
// Invalid rows are reported to onReject, which may be nil.
//
// Values are canonicalized per SPEC.md §7 with opts; a pre-hashed value is
// rejected ("prehashed_not_allowed").
func ReadConsent(r io.Reader, format ListFormat, opts ident.Options, fn func(ConsentRow) error, onReject func(Reject)) (RowsResult, error) {
	return ReadConsentConcurrent(r, format, opts, 1, fn, onReject)
}

// ReadConsentConcurrent is [ReadConsent] with the parsing and
// canonicalization of the rows spread over workers goroutines, as
// [ReadRowsConcurrent] does it: fn and onReject see the same rows in the
// same order as with ReadConsent.
func ReadConsentConcurrent(r io.Reader, format ListFormat, opts ident.Options, workers int, fn func(ConsentRow) error, onReject func(Reject)) (RowsResult, error) {
	return readTable(r, format, opts, consentColumns, workers, onReject, func(line int, v []string) (ConsentRow, string) {
		row := ConsentRow{Line: line}
		var reason string
		if row.Subject, reason = text(v[0], MaxSubjectLen, reasonMissingSubject, reasonBadSubject); reason != "" {
			return row, reason
		}
		switch k, val := ident.TrimSpace(v[1]), ident.TrimSpace(v[2]); {
		case k == "" && val == "":
			// subject-wide
		case val == "":
			return row, reasonKindWithoutValue
		case k == "":
			return row, reasonValueWithoutKind
		default:
			if row.Kind, reason = kind(k); reason != "" {
				return row, reason
			}
			if row.Identifier, reason = value(row.Kind, val, opts); reason != "" {
				return row, reason
			}
		}
		if row.Purpose = ident.TrimSpace(v[3]); !validPurpose(row.Purpose) {
			return row, reasonBadPurpose
		}
		switch ident.TrimSpace(v[4]) {
		case "grant":
			row.Granted = true
		case "withdraw":
		default:
			return row, reasonBadAction
		}
		at, err := time.Parse(time.RFC3339, ident.TrimSpace(v[5]))
		if err != nil {
			return row, reasonBadTime
		}
		row.At = at.UTC()
		if row.Source, reason = text(v[6], MaxSourceLen, reasonMissingSource, reasonBadSource); reason != "" {
			return row, reason
		}
		if row.TextVersion, reason = text(v[7], MaxTextVersionLen, reasonMissingTextVersion, reasonBadTextVersion); reason == reasonBadTextVersion || reason != "" && row.Granted {
			return row, reason
		}
		return row, ""
	}, fn)
}

// validPurpose reports whether p is a lowercase token: a letter, then
// letters, digits and underscores, at most MaxPurposeLen bytes.
func validPurpose(p string) bool {
	if p == "" || len(p) > MaxPurposeLen || p[0] < 'a' || p[0] > 'z' {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
