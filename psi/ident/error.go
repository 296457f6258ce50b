package ident

import "github.com/overlap-psi/overlap/psi"

// Error reports why a value is not a valid identifier. It never contains
// the value.
type Error struct {
	Kind   psi.Kind
	Reason Reason
}

func (e *Error) Error() string {
	return "ident: " + e.Kind.String() + ": " + e.Reason.describe()
}

// Reason is a stable, machine-readable code for a rejected value. Readers
// report it per row; it is safe to log.
type Reason string

// Reasons common to all kinds.
const (
	ReasonUnknownKind Reason = "unknown_kind"
	ReasonEmpty       Reason = "empty"
	ReasonTooLong     Reason = "too_long"
	ReasonInvalidUTF8 Reason = "invalid_utf8"
	ReasonControlChar Reason = "control_char"
)

// Reasons for email addresses (SPEC.md §7.1).
const (
	ReasonMailto            Reason = "mailto"
	ReasonDisplayName       Reason = "display_name"
	ReasonQuoted            Reason = "quoted"
	ReasonComment           Reason = "comment"
	ReasonMultipleAddresses Reason = "multiple_addresses"
	ReasonWhitespace        Reason = "whitespace"
	ReasonNotAnEmail        Reason = "not_an_email"
	ReasonMultipleAt        Reason = "multiple_at"
	ReasonBadLocalPart      Reason = "bad_local_part"
	ReasonLocalTooLong      Reason = "local_too_long"
	ReasonBadDomain         Reason = "bad_domain"
	ReasonIPLiteral         Reason = "ip_literal"
)

// Reasons for phone numbers (SPEC.md §7.2).
const (
	ReasonLetters      Reason = "letters"
	ReasonBadChar      Reason = "bad_char"
	ReasonNeedsRegion  Reason = "needs_region"
	ReasonBadRegion    Reason = "bad_region"
	ReasonInvalidPhone Reason = "invalid_phone"
)

var reasonText = map[Reason]string{
	ReasonUnknownKind:       "unknown identifier kind",
	ReasonEmpty:             "is empty",
	ReasonTooLong:           "is too long",
	ReasonInvalidUTF8:       "is not valid utf-8",
	ReasonControlChar:       "contains a control character",
	ReasonMailto:            "has a mailto: prefix",
	ReasonDisplayName:       "has a display name or angle brackets",
	ReasonQuoted:            "has a quoted local part or a backslash",
	ReasonComment:           "has a comment in parentheses",
	ReasonMultipleAddresses: "has more than one address",
	ReasonWhitespace:        "contains whitespace",
	ReasonNotAnEmail:        "has no @",
	ReasonMultipleAt:        "has more than one @",
	ReasonBadLocalPart:      "has an invalid local part",
	ReasonLocalTooLong:      "has a local part longer than 64 bytes",
	ReasonBadDomain:         "has an invalid domain",
	ReasonIPLiteral:         "has an ip address instead of a domain",
	ReasonLetters:           "contains letters",
	ReasonBadChar:           "contains a character that is not a digit, separator or leading +",
	ReasonNeedsRegion:       "has no +country code and no default region is set",
	ReasonBadRegion:         "default region is not a known region",
	ReasonInvalidPhone:      "is not a valid phone number",
}

func (r Reason) describe() string {
	if t, ok := reasonText[r]; ok {
		return t
	}
	return "invalid (" + string(r) + ")"
}
