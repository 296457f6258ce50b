package psi

import "github.com/overlap-psi/overlap/psi/wire"

// Kind names the kind of identifier a session matches (wire.Kind, SPEC.md
// §3.2). It is part of the hash-to-group domain-separation tag, so an email
// and a phone number can never map to the same group element.
type Kind = wire.Kind

// The identifier kinds of SPEC.md §3.2.
const (
	KindEmail = wire.KindEmail
	KindPhone = wire.KindPhone
	KindID    = wire.KindID
)

// Kinds lists every identifier kind, in wire-code order.
var Kinds = wire.Kinds

// ParseKind parses a kind name ("email", "phone" or "id").
func ParseKind(s string) (Kind, error) { return wire.ParseKind(s) }
