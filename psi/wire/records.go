package wire

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Record modes (SPEC.md §13): the client's input is customer records of
// one or more identifiers, and the count is of records.
const (
	ModeExactRecords   Mode = 5 // the client counts records, as in exact mode
	ModePrivateRecords Mode = 6 // the server releases a noised count of records, as in private mode
)

// TypeRecordsHello opens a record session in place of ClientHello (SPEC.md
// §13.3). A record session then uses the messages of its mode unchanged.
const TypeRecordsHello Type = 15

// MaxSlots is the most slots per record, s (SPEC.md §13.2).
const MaxSlots = 8

func recordsTypeName(t Type) (string, bool) {
	if t == TypeRecordsHello {
		return "RecordsHello", true
	}
	return "", false
}

func recordsModeName(m Mode) (string, bool) {
	switch m {
	case ModeExactRecords:
		return "exact-records", true
	case ModePrivateRecords:
		return "private-records", true
	}
	return "", false
}

// IsRecords reports whether m is a record mode.
func (m Mode) IsRecords() bool { return m == ModeExactRecords || m == ModePrivateRecords }

// KindSet is a set of identifier kinds: bit K−1 is set for each kind K
// (SPEC.md §13.3). On the wire it is the kinds byte of RecordsHello and the
// kind byte of a record session's parameters.
type KindSet uint8

// AllKinds is the set of every kind of SPEC.md §3.2.
const AllKinds KindSet = 1<<len(kindNames) - 1

var kindNames = [...]Kind{KindEmail, KindPhone, KindID}

// KindSetOf returns the set of the given kinds; invalid kinds are left out.
func KindSetOf(kinds ...Kind) KindSet {
	var s KindSet
	for _, k := range kinds {
		if k.Valid() {
			s |= 1 << (k - 1)
		}
	}
	return s
}

// Has reports whether k is in s.
func (s KindSet) Has(k Kind) bool { return k.Valid() && s&(1<<(k-1)) != 0 }

// Kinds lists the kinds of s in wire-code order.
func (s KindSet) Kinds() []Kind {
	var out []Kind
	for _, k := range Kinds {
		if s.Has(k) {
			out = append(out, k)
		}
	}
	return out
}

// Len returns the number of kinds in s.
func (s KindSet) Len() int { return len(s.Kinds()) }

// Valid reports whether s is a non-empty set of kinds of SPEC.md §3.2.
func (s KindSet) Valid() bool { return s != 0 && s&^AllKinds == 0 }

// String names the kinds, such as "email+phone".
func (s KindSet) String() string {
	if !s.Valid() {
		return fmt.Sprintf("kinds(%#x)", uint8(s))
	}
	var names []string
	for _, k := range s.Kinds() {
		names = append(names, k.String())
	}
	return strings.Join(names, "+")
}

// RecordsHello opens a record session (SPEC.md §13.3).
type RecordsHello struct {
	Mode         Mode    // ModeExactRecords or ModePrivateRecords
	Kinds        KindSet // the kinds the records use
	CanonVersion uint16  // canonicalization rules version, SPEC.md §7
	CanonFlags   uint16  // optional canonicalization rules, SPEC.md §7.4
	Slots        uint8   // s, the elements per record
	Records      uint32  // n, the records
	// Suites are the ciphersuites the client offers, encoded as in a
	// ClientHello (SPEC.md §12.1): zero or suite 1 alone is the message
	// without the trailing byte.
	Suites SuiteSet
}

// RecordsHelloSize is the encoded size of a RecordsHello without its
// optional suites byte.
const RecordsHelloSize = 2 + 1 + 1 + 2 + 2 + 1 + 4

// Elements returns n·s, the elements the client sends.
func (m *RecordsHello) Elements() int { return int(m.Records) * int(m.Slots) }

// AppendBinary appends the encoding of m to b.
func (m *RecordsHello) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, Version, byte(TypeRecordsHello), byte(m.Mode), byte(m.Kinds))
	b = binary.BigEndian.AppendUint16(b, m.CanonVersion)
	b = binary.BigEndian.AppendUint16(b, m.CanonFlags)
	b = append(b, m.Slots)
	b = binary.BigEndian.AppendUint32(b, m.Records)
	return appendSuiteSet(b, m.Suites), nil
}

// MarshalBinary returns the encoding of m.
func (m *RecordsHello) MarshalBinary() ([]byte, error) {
	return m.AppendBinary(make([]byte, 0, RecordsHelloSize+1))
}

// UnmarshalBinary decodes b into m. It refuses a mode other than the two
// record modes, an empty or unknown kind set, s outside [1, MaxSlots], and
// n = 0 or n·s above MaxClientSize.
func (m *RecordsHello) UnmarshalBinary(b []byte) error {
	extra, ok, err := optionalByte(b, TypeRecordsHello, RecordsHelloSize)
	if err != nil {
		return err
	}
	m.Suites = 0
	if ok {
		if m.Suites, err = decodeSuiteSet(extra); err != nil {
			return err
		}
	}
	m.Mode = Mode(b[2])
	m.Kinds = KindSet(b[3])
	m.CanonVersion = binary.BigEndian.Uint16(b[4:])
	m.CanonFlags = binary.BigEndian.Uint16(b[6:])
	m.Slots = b[8]
	m.Records = binary.BigEndian.Uint32(b[9:])
	switch {
	case !m.Mode.IsRecords():
		return fmt.Errorf("%w: mode %v in a RecordsHello", ErrMalformed, m.Mode)
	case !m.Kinds.Valid():
		return fmt.Errorf("%w: kind set %#x", ErrMalformed, uint8(m.Kinds))
	case m.Slots == 0 || m.Slots > MaxSlots:
		return fmt.Errorf("%w: %d slots per record is outside [1, %d]", ErrLimit, m.Slots, MaxSlots)
	case m.Records == 0 || uint64(m.Records)*uint64(m.Slots) > MaxClientSize:
		return fmt.Errorf("%w: %d records of %d slots is outside [1, %d] elements", ErrLimit, m.Records, m.Slots, MaxClientSize)
	}
	return nil
}
