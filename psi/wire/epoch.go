package wire

import (
	"encoding/binary"
	"fmt"
)

// Epoch modes (SPEC.md §10.12).
const (
	ModeEpochSetup   Mode = 3 // the client raises the server's set under an epoch key, once per epoch
	ModeEpochSession Mode = 4 // the server counts a list against an epoch's kept tags
)

// Epoch message types (SPEC.md §10.12.8). A setup also uses ClientHello,
// ServerElementChunk and ClientKey; an epoch session uses ClientHello,
// PrivateParams, BlindedChunk and PrivateRelease.
const (
	TypeEpochParams Type = 11 // server → client, answers a setup's hello
	TypeTagChunk    Type = 12 // client → server, the Golomb-coded epoch tags
	TypeEpochReady  Type = 13 // server → client, the setup was kept
	TypeEpochTicket Type = 14 // client → server, names the epoch of a session
)

func epochTypeName(t Type) (string, bool) {
	switch t {
	case TypeEpochParams:
		return "EpochParams", true
	case TypeTagChunk:
		return "TagChunk", true
	case TypeEpochReady:
		return "EpochReady", true
	case TypeEpochTicket:
		return "EpochTicket", true
	}
	return "", false
}

// EpochParams answers a setup's ClientHello (SPEC.md §10.12.1, §10.12.8).
type EpochParams struct {
	Mode         Mode // ModeEpochSetup
	Kind         Kind
	CanonVersion uint16
	CanonFlags   uint16
	Epoch        [16]byte
	ServerSize   uint32 // N: elements the server sends, ringers included
	ChunkSize    uint32 // most elements per element chunk
	GCSM         uint64 // tag range per value M
	GCSK         uint8  // Golomb-Rice parameter of the tag set
	ExpiresAt    uint64 // end of the epoch, seconds since the Unix epoch
	// Suite is the epoch's ciphersuite (SPEC.md §12.1), sent as an
	// optional trailing byte; zero (no byte) is suite 1.
	Suite Suite
}

// EpochParamsSize is the encoded size of an EpochParams without its
// optional suite byte.
const EpochParamsSize = 2 + 1 + 1 + 2 + 2 + 16 + 4 + 4 + 8 + 1 + 8

// AppendBinary appends the encoding of m to b.
func (m *EpochParams) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, Version, byte(TypeEpochParams), byte(m.Mode), byte(m.Kind))
	b = binary.BigEndian.AppendUint16(b, m.CanonVersion)
	b = binary.BigEndian.AppendUint16(b, m.CanonFlags)
	b = append(b, m.Epoch[:]...)
	b = binary.BigEndian.AppendUint32(b, m.ServerSize)
	b = binary.BigEndian.AppendUint32(b, m.ChunkSize)
	b = binary.BigEndian.AppendUint64(b, m.GCSM)
	b = append(b, m.GCSK)
	b = binary.BigEndian.AppendUint64(b, m.ExpiresAt)
	if !m.Suite.Or1().Known() {
		return nil, fmt.Errorf("%w: unknown suite %d", ErrMalformed, uint8(m.Suite))
	}
	return appendSuite(b, m.Suite), nil
}

// MarshalBinary returns the encoding of m.
func (m *EpochParams) MarshalBinary() ([]byte, error) {
	return m.AppendBinary(make([]byte, 0, EpochParamsSize+1))
}

// UnmarshalBinary decodes b into m. Whether the parameters are acceptable
// (the client's limit on N, M, K, the expiry) is for package psi to decide.
func (m *EpochParams) UnmarshalBinary(b []byte) error {
	extra, ok, err := optionalByte(b, TypeEpochParams, EpochParamsSize)
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
	copy(m.Epoch[:], b[8:24])
	m.ServerSize = binary.BigEndian.Uint32(b[24:])
	m.ChunkSize = binary.BigEndian.Uint32(b[28:])
	m.GCSM = binary.BigEndian.Uint64(b[32:])
	m.GCSK = b[40]
	m.ExpiresAt = binary.BigEndian.Uint64(b[41:])
	switch {
	case m.ServerSize == 0 || m.ServerSize > MaxSetSize:
		return fmt.Errorf("%w: server size %d is outside [1, %d]", ErrLimit, m.ServerSize, MaxSetSize)
	case m.ChunkSize == 0 || m.ChunkSize > MaxChunkElements:
		return fmt.Errorf("%w: chunk size %d is outside [1, %d]", ErrLimit, m.ChunkSize, MaxChunkElements)
	case m.GCSM == 0 || m.GCSK > 63:
		return fmt.Errorf("%w: Golomb parameters M=%d K=%d", ErrMalformed, m.GCSM, m.GCSK)
	}
	return nil
}

// EpochReady tells the client that the server kept its setup (SPEC.md
// §10.12.1 step 5).
type EpochReady struct {
	Epoch     [16]byte
	ExpiresAt uint64
}

// EpochReadySize is the encoded size of an EpochReady.
const EpochReadySize = 2 + 16 + 8

// AppendBinary appends the encoding of m to b.
func (m *EpochReady) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, Version, byte(TypeEpochReady))
	b = append(b, m.Epoch[:]...)
	return binary.BigEndian.AppendUint64(b, m.ExpiresAt), nil
}

// MarshalBinary returns the encoding of m.
func (m *EpochReady) MarshalBinary() ([]byte, error) {
	return m.AppendBinary(make([]byte, 0, EpochReadySize))
}

// UnmarshalBinary decodes b into m.
func (m *EpochReady) UnmarshalBinary(b []byte) error {
	if err := checkHeader(b, TypeEpochReady, EpochReadySize); err != nil {
		return err
	}
	copy(m.Epoch[:], b[2:18])
	m.ExpiresAt = binary.BigEndian.Uint64(b[18:])
	return nil
}

// EpochTicket names the epoch of an epoch session and carries the client's
// epoch public key A_E (SPEC.md §10.12.2).
type EpochTicket struct {
	Epoch [16]byte
	Key   [ElementSize]byte // Enc(B^(a_E)); compared with the epoch's by the server
}

// EpochTicketSize is the encoded size of an EpochTicket.
const EpochTicketSize = 2 + 16 + ElementSize

// AppendBinary appends the encoding of m to b.
func (m *EpochTicket) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, Version, byte(TypeEpochTicket))
	b = append(b, m.Epoch[:]...)
	return append(b, m.Key[:]...), nil
}

// MarshalBinary returns the encoding of m.
func (m *EpochTicket) MarshalBinary() ([]byte, error) {
	return m.AppendBinary(make([]byte, 0, EpochTicketSize))
}

// UnmarshalBinary decodes b into m.
func (m *EpochTicket) UnmarshalBinary(b []byte) error {
	if err := checkHeader(b, TypeEpochTicket, EpochTicketSize); err != nil {
		return err
	}
	copy(m.Epoch[:], b[2:18])
	copy(m.Key[:], b[18:])
	return nil
}

// TagChunk carries consecutive values of a setup's Golomb-coded tag set
// (SPEC.md §10.12.8), in the layout of a ServerSetChunk.
type TagChunk SetChunk

// AppendBinary appends the encoding of c to b.
func (c *TagChunk) AppendBinary(b []byte) ([]byte, error) {
	return appendCodedChunk(b, TypeTagChunk, (*SetChunk)(c))
}

// MarshalBinary returns the encoding of c.
func (c *TagChunk) MarshalBinary() ([]byte, error) {
	return c.AppendBinary(make([]byte, 0, SetChunkHeaderSize+len(c.Data)))
}

// UnmarshalBinary decodes b into c. c.Data aliases b.
func (c *TagChunk) UnmarshalBinary(b []byte) error {
	return parseCodedChunk(b, TypeTagChunk, (*SetChunk)(c))
}
