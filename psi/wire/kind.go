package wire

import "fmt"

// Kind names the kind of identifier a session matches, beside the Mode of
// the session: both are fields of every opening message. It is part of the
// hash-to-group domain-separation tag (SPEC.md §3.2), so an email and a phone
// number can never map to the same group element.
type Kind uint8

// The identifier kinds of SPEC.md §3.2. The numeric values are the wire codes.
const (
	KindEmail Kind = 1 // an email address, canonical per SPEC.md §7.1
	KindPhone Kind = 2 // a phone number in E.164, canonical per SPEC.md §7.2
	KindID    Kind = 3 // an opaque, pre-normalized identifier (SPEC.md §7.3)
)

// Kinds lists every identifier kind, in wire-code order.
var Kinds = []Kind{KindEmail, KindPhone, KindID}

// String returns the kind's name as it appears in the DST and on the CLI.
func (k Kind) String() string {
	switch k {
	case KindEmail:
		return "email"
	case KindPhone:
		return "phone"
	case KindID:
		return "id"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Valid reports whether k is one of the kinds of SPEC.md §3.2.
func (k Kind) Valid() bool { return k >= KindEmail && k <= KindID }

// ParseKind parses a kind name ("email", "phone" or "id").
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if k.String() == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("wire: unknown identifier kind %q (want email, phone or id)", s)
}
