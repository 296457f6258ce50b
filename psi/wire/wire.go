// Package wire encodes and decodes the messages of the Overlap protocol,
// byte for byte as SPEC.md §5 lays them out.
//
// Every message starts with a version byte and a type byte. Integers are
// big-endian. Parsing checks lengths, the version, the type, counts against
// the limits of SPEC.md §5.6, and that nothing trails the message; it does
// not check group elements, which is the job of package psi (SPEC.md §5.7).
//
// Decoded byte slices alias the input buffer.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is the protocol version this package speaks (SPEC.md §5.1).
const Version = 1

// ElementSize is the size of an encoded ristretto255 element.
const ElementSize = 32

// Limits of SPEC.md §5.6.
const (
	// MaxChunkElements is the most elements one element chunk may carry.
	MaxChunkElements = 1 << 16
	// MaxSetChunkValues is the most values one server-set chunk may carry.
	MaxSetChunkValues = 1 << 20
	// MaxSetChunkBytes is the most bytes of Golomb-coded data in one chunk.
	MaxSetChunkBytes = 1 << 24
	// MaxSetSize is the largest server set, padded, a session may announce.
	MaxSetSize = 1 << 30
	// MaxClientSize is the largest client set a session may announce.
	MaxClientSize = 1 << 28
)

// Type identifies a message (SPEC.md §5.1).
type Type uint8

// Message types.
const (
	TypeClientHello  Type = 1
	TypeServerParams Type = 2
	TypeBlinded      Type = 3
	TypeEvaluated    Type = 4
	TypeServerSet    Type = 5
)

func (t Type) String() string {
	switch t {
	case TypeClientHello:
		return "ClientHello"
	case TypeServerParams:
		return "ServerParams"
	case TypeBlinded:
		return "BlindedChunk"
	case TypeEvaluated:
		return "EvaluatedChunk"
	case TypeServerSet:
		return "ServerSetChunk"
	}
	if name, ok := privateTypeName(t); ok {
		return name
	}
	if name, ok := recordsTypeName(t); ok {
		return name
	}
	if name, ok := epochTypeName(t); ok {
		return name
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Mode is the protocol mode (SPEC.md §2).
type Mode uint8

// Modes.
const (
	ModeExact   Mode = 1 // the client counts
	ModePrivate Mode = 2 // the server counts and releases a noised count
)

func (m Mode) String() string {
	switch m {
	case ModeExact:
		return "exact"
	case ModePrivate:
		return "private"
	case ModeEpochSetup:
		return "epoch-setup"
	case ModeEpochSession:
		return "epoch-session"
	}
	if name, ok := recordsModeName(m); ok {
		return name
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// Errors returned by the decoders. They are wrapped with detail; test with
// errors.Is.
var (
	ErrVersion   = errors.New("wire: unsupported protocol version")
	ErrType      = errors.New("wire: unexpected message type")
	ErrLength    = errors.New("wire: message length does not match its header")
	ErrLimit     = errors.New("wire: message exceeds a protocol limit")
	ErrMalformed = errors.New("wire: malformed message")
)

// PeekType returns the type of the encoded message b after checking its
// version.
func PeekType(b []byte) (Type, error) {
	if len(b) < 2 {
		return 0, fmt.Errorf("%w: %d bytes is too short for a header", ErrLength, len(b))
	}
	if b[0] != Version {
		return 0, fmt.Errorf("%w: got %d, want %d", ErrVersion, b[0], Version)
	}
	return Type(b[1]), nil
}

func checkHeader(b []byte, want Type, size int) error {
	t, err := PeekType(b)
	if err != nil {
		return err
	}
	if t != want {
		return fmt.Errorf("%w: got %v, want %v", ErrType, t, want)
	}
	if size >= 0 && len(b) != size {
		return fmt.Errorf("%w: %v is %d bytes, want %d", ErrLength, want, len(b), size)
	}
	return nil
}

// ClientHello opens a session (SPEC.md §5.2).
type ClientHello struct {
	Mode         Mode
	Kind         Kind   // identifier kind, SPEC.md §3.2
	CanonVersion uint16 // canonicalization rules version, SPEC.md §7
	CanonFlags   uint16 // optional canonicalization rules, SPEC.md §7.4
	ClientSize   uint32 // number of distinct elements the client will send
	// Suites is the set of ciphersuites the client offers (SPEC.md §5.2,
	// §12.1), sent as an optional trailing byte; zero (no byte) offers
	// suite 1 only.
	Suites SuiteSet
}

// ClientHelloSize is the encoded size of a ClientHello without its
// optional suites byte; with it, a hello is one byte longer.
const ClientHelloSize = 2 + 1 + 1 + 2 + 2 + 4

// AppendBinary appends the encoding of m to b.
func (m *ClientHello) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, Version, byte(TypeClientHello), byte(m.Mode), byte(m.Kind))
	b = binary.BigEndian.AppendUint16(b, m.CanonVersion)
	b = binary.BigEndian.AppendUint16(b, m.CanonFlags)
	b = binary.BigEndian.AppendUint32(b, m.ClientSize)
	if m.Suites&^knownSuites != 0 {
		return nil, fmt.Errorf("%w: suites %#02x has unknown bits", ErrMalformed, uint8(m.Suites))
	}
	return appendSuiteSet(b, m.Suites), nil
}

// MarshalBinary returns the encoding of m.
func (m *ClientHello) MarshalBinary() ([]byte, error) {
	return m.AppendBinary(make([]byte, 0, ClientHelloSize+1))
}

// UnmarshalBinary decodes b into m.
func (m *ClientHello) UnmarshalBinary(b []byte) error {
	extra, ok, err := optionalByte(b, TypeClientHello, ClientHelloSize)
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
	m.Kind = Kind(b[3])
	m.CanonVersion = binary.BigEndian.Uint16(b[4:])
	m.CanonFlags = binary.BigEndian.Uint16(b[6:])
	m.ClientSize = binary.BigEndian.Uint32(b[8:])
	if m.ClientSize == 0 || m.ClientSize > MaxClientSize {
		return fmt.Errorf("%w: client size %d is outside [1, %d]", ErrLimit, m.ClientSize, MaxClientSize)
	}
	return nil
}

// ServerParams answers a ClientHello with the session's parameters
// (SPEC.md §5.3).
type ServerParams struct {
	Mode         Mode
	Kind         Kind
	CanonVersion uint16
	CanonFlags   uint16
	SessionID    [16]byte
	Salt         [32]byte // tag salt, SPEC.md §4.4
	ClientSize   uint32   // echo of ClientHello.ClientSize
	ServerSize   uint32   // padded server set size N, SPEC.md §4.5
	GCSM         uint64   // Golomb-coded set range per value M, SPEC.md §6
	GCSK         uint8    // Golomb-Rice parameter K, SPEC.md §6
	ChunkSize    uint32   // most elements per element chunk, both ways
	// Suite is the ciphersuite the server chose (SPEC.md §5.3, §12.1),
	// sent as an optional trailing byte; zero (no byte) is suite 1.
	Suite Suite
}

// ServerParamsSize is the encoded size of a ServerParams without its
// optional suite byte.
const ServerParamsSize = 2 + 1 + 1 + 2 + 2 + 16 + 32 + 4 + 4 + 8 + 1 + 4

// AppendBinary appends the encoding of m to b.
func (m *ServerParams) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, Version, byte(TypeServerParams), byte(m.Mode), byte(m.Kind))
	b = binary.BigEndian.AppendUint16(b, m.CanonVersion)
	b = binary.BigEndian.AppendUint16(b, m.CanonFlags)
	b = append(b, m.SessionID[:]...)
	b = append(b, m.Salt[:]...)
	b = binary.BigEndian.AppendUint32(b, m.ClientSize)
	b = binary.BigEndian.AppendUint32(b, m.ServerSize)
	b = binary.BigEndian.AppendUint64(b, m.GCSM)
	b = append(b, m.GCSK)
	b = binary.BigEndian.AppendUint32(b, m.ChunkSize)
	if !m.Suite.Or1().Known() {
		return nil, fmt.Errorf("%w: unknown suite %d", ErrMalformed, uint8(m.Suite))
	}
	return appendSuite(b, m.Suite), nil
}

// MarshalBinary returns the encoding of m.
func (m *ServerParams) MarshalBinary() ([]byte, error) {
	return m.AppendBinary(make([]byte, 0, ServerParamsSize+1))
}

// UnmarshalBinary decodes b into m.
func (m *ServerParams) UnmarshalBinary(b []byte) error {
	extra, ok, err := optionalByte(b, TypeServerParams, ServerParamsSize)
	if err != nil {
		return err
	}
	m.Suite = 0
	if ok {
		if m.Suite, err = decodeSuite(extra); err != nil {
			return err
		}
	}
	m.Mode = Mode(b[2])
	m.Kind = Kind(b[3])
	m.CanonVersion = binary.BigEndian.Uint16(b[4:])
	m.CanonFlags = binary.BigEndian.Uint16(b[6:])
	copy(m.SessionID[:], b[8:24])
	copy(m.Salt[:], b[24:56])
	m.ClientSize = binary.BigEndian.Uint32(b[56:])
	m.ServerSize = binary.BigEndian.Uint32(b[60:])
	m.GCSM = binary.BigEndian.Uint64(b[64:])
	m.GCSK = b[72]
	m.ChunkSize = binary.BigEndian.Uint32(b[73:])
	switch {
	case m.ClientSize == 0 || m.ClientSize > MaxClientSize:
		return fmt.Errorf("%w: client size %d is outside [1, %d]", ErrLimit, m.ClientSize, MaxClientSize)
	case m.ServerSize == 0 || m.ServerSize > MaxSetSize:
		return fmt.Errorf("%w: server set size %d is outside [1, %d]", ErrLimit, m.ServerSize, MaxSetSize)
	case m.ChunkSize == 0 || m.ChunkSize > MaxChunkElements:
		return fmt.Errorf("%w: chunk size %d is outside [1, %d]", ErrLimit, m.ChunkSize, MaxChunkElements)
	case m.GCSM == 0 || m.GCSK > 63:
		return fmt.Errorf("%w: Golomb parameters M=%d K=%d", ErrMalformed, m.GCSM, m.GCSK)
	}
	return nil
}

// ElementChunk carries consecutive elements of the client's blinded set
// (TypeBlinded) or of the server's evaluated set (TypeEvaluated)
// (SPEC.md §5.4), and in private mode of the server's elements
// (TypeServerElements) or the client's returned ones (TypeReturned)
// (SPEC.md §10.7.2).
type ElementChunk struct {
	Type     Type   // TypeBlinded, TypeEvaluated, TypeServerElements or TypeReturned
	Seq      uint32 // chunk index, from 0
	Elements []byte // Count()·32 bytes of encoded elements
}

// ElementChunkHeaderSize is the size of an element chunk's header.
const ElementChunkHeaderSize = 2 + 4 + 4

// Count returns the number of elements in c.
func (c *ElementChunk) Count() int { return len(c.Elements) / ElementSize }

// Element returns the i-th encoded element of c.
func (c *ElementChunk) Element(i int) []byte {
	return c.Elements[i*ElementSize : (i+1)*ElementSize : (i+1)*ElementSize]
}

// AppendBinary appends the encoding of c to b.
func (c *ElementChunk) AppendBinary(b []byte) ([]byte, error) {
	if !c.Type.isElementChunk() {
		return nil, fmt.Errorf("%w: %v is not an element chunk", ErrType, c.Type)
	}
	n := len(c.Elements) / ElementSize
	if n == 0 || n > MaxChunkElements || len(c.Elements)%ElementSize != 0 {
		return nil, fmt.Errorf("%w: chunk of %d bytes", ErrLimit, len(c.Elements))
	}
	b = append(b, Version, byte(c.Type))
	b = binary.BigEndian.AppendUint32(b, c.Seq)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	return append(b, c.Elements...), nil
}

// MarshalBinary returns the encoding of c.
func (c *ElementChunk) MarshalBinary() ([]byte, error) {
	return c.AppendBinary(make([]byte, 0, ElementChunkHeaderSize+len(c.Elements)))
}

// UnmarshalBinary decodes b, an element chunk of type want, into c.
// c.Elements aliases b.
func (c *ElementChunk) UnmarshalBinary(b []byte, want Type) error {
	if err := checkHeader(b, want, -1); err != nil {
		return err
	}
	if len(b) < ElementChunkHeaderSize {
		return fmt.Errorf("%w: %d bytes is too short for a chunk header", ErrLength, len(b))
	}
	seq := binary.BigEndian.Uint32(b[2:])
	n := binary.BigEndian.Uint32(b[6:])
	if n == 0 || n > MaxChunkElements {
		return fmt.Errorf("%w: chunk count %d is outside [1, %d]", ErrLimit, n, MaxChunkElements)
	}
	if uint64(len(b)-ElementChunkHeaderSize) != uint64(n)*ElementSize {
		return fmt.Errorf("%w: chunk announces %d elements but carries %d bytes", ErrLength, n, len(b)-ElementChunkHeaderSize)
	}
	c.Type, c.Seq, c.Elements = want, seq, b[ElementChunkHeaderSize:]
	return nil
}

// SetChunk carries consecutive values of the server's Golomb-coded set
// (SPEC.md §5.5, §6).
type SetChunk struct {
	Seq   uint32 // chunk index, from 0
	Count uint32 // number of values coded in Data
	Data  []byte // Golomb-Rice code, SPEC.md §6.2
}

// SetChunkHeaderSize is the size of a set chunk's header.
const SetChunkHeaderSize = 2 + 4 + 4 + 4

// AppendBinary appends the encoding of c to b.
func (c *SetChunk) AppendBinary(b []byte) ([]byte, error) {
	return appendCodedChunk(b, TypeServerSet, c)
}

// MarshalBinary returns the encoding of c.
func (c *SetChunk) MarshalBinary() ([]byte, error) {
	return c.AppendBinary(make([]byte, 0, SetChunkHeaderSize+len(c.Data)))
}

// UnmarshalBinary decodes b into c. c.Data aliases b.
func (c *SetChunk) UnmarshalBinary(b []byte) error {
	return parseCodedChunk(b, TypeServerSet, c)
}

// appendCodedChunk encodes a chunk of Golomb-coded values: a ServerSetChunk
// (SPEC.md §5.5) or a TagChunk (SPEC.md §10.12.8), which share a layout.
func appendCodedChunk(b []byte, typ Type, c *SetChunk) ([]byte, error) {
	if c.Count == 0 || c.Count > MaxSetChunkValues || len(c.Data) == 0 || len(c.Data) > MaxSetChunkBytes {
		return nil, fmt.Errorf("%w: %v of %d values in %d bytes", ErrLimit, typ, c.Count, len(c.Data))
	}
	b = append(b, Version, byte(typ))
	b = binary.BigEndian.AppendUint32(b, c.Seq)
	b = binary.BigEndian.AppendUint32(b, c.Count)
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.Data)))
	return append(b, c.Data...), nil
}

func parseCodedChunk(b []byte, typ Type, c *SetChunk) error {
	if err := checkHeader(b, typ, -1); err != nil {
		return err
	}
	if len(b) < SetChunkHeaderSize {
		return fmt.Errorf("%w: %d bytes is too short for a %v header", ErrLength, len(b), typ)
	}
	seq := binary.BigEndian.Uint32(b[2:])
	count := binary.BigEndian.Uint32(b[6:])
	size := binary.BigEndian.Uint32(b[10:])
	if count == 0 || count > MaxSetChunkValues {
		return fmt.Errorf("%w: %v count %d is outside [1, %d]", ErrLimit, typ, count, MaxSetChunkValues)
	}
	if size == 0 || size > MaxSetChunkBytes {
		return fmt.Errorf("%w: %v data of %d bytes is outside [1, %d]", ErrLimit, typ, size, MaxSetChunkBytes)
	}
	if uint64(len(b)-SetChunkHeaderSize) != uint64(size) {
		return fmt.Errorf("%w: %v announces %d bytes but carries %d", ErrLength, typ, size, len(b)-SetChunkHeaderSize)
	}
	c.Seq, c.Count, c.Data = seq, count, b[SetChunkHeaderSize:]
	return nil
}
