package wire

import (
	"encoding/binary"
	"fmt"
)

// Private-mode message types (SPEC.md §10.7). Private mode also uses
// ClientHello (with ModePrivate) and BlindedChunk unchanged.
const (
	TypePrivateParams  Type = 6  // server → client
	TypeServerElements Type = 7  // server → client, an ElementChunk
	TypeClientKey      Type = 8  // client → server
	TypeReturned       Type = 9  // client → server, an ElementChunk
	TypePrivateRelease Type = 10 // server → client
)

// privateTypeName names the private-mode types for Type.String.
func privateTypeName(t Type) (string, bool) {
	switch t {
	case TypePrivateParams:
		return "PrivateParams", true
	case TypeServerElements:
		return "ServerElementChunk", true
	case TypeClientKey:
		return "ClientKey", true
	case TypeReturned:
		return "ReturnedChunk", true
	case TypePrivateRelease:
		return "PrivateRelease", true
	}
	return "", false
}

// isElementChunk reports whether messages of type t have the element-chunk
// layout of SPEC.md §5.4.
func (t Type) isElementChunk() bool {
	return t == TypeBlinded || t == TypeEvaluated || t == TypeServerElements || t == TypeReturned
}

// PrivateParams answers a private-mode ClientHello (SPEC.md §10.7.1).
type PrivateParams struct {
	Mode         Mode
	Kind         Kind
	CanonVersion uint16
	CanonFlags   uint16
	SessionID    [16]byte
	ClientSize   uint32 // echo of ClientHello.ClientSize, n
	ServerSize   uint32 // elements the server sends, ringers included, N
	ChunkSize    uint32 // most elements per element chunk, both ways
	Mechanism    uint8  // noise mechanism code, SPEC.md §10.6
	EpsNum       uint32 // ε = EpsNum/EpsDen
	EpsDen       uint32
	Sensitivity  uint32 // Δ, SPEC.md §10.9
	Threshold    uint32 // T: noised counts below it are not released
	// Suite is the ciphersuite the server chose (SPEC.md §12.1), sent as
	// an optional trailing byte; zero (no byte) is suite 1.
	Suite Suite
}

// PrivateParamsSize is the encoded size of a PrivateParams without its optional suite
// byte.
const PrivateParamsSize = 2 + 1 + 1 + 2 + 2 + 16 + 4 + 4 + 4 + 1 + 4 + 4 + 4 + 4

// AppendBinary appends the encoding of m to b.
func (m *PrivateParams) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, Version, byte(TypePrivateParams), byte(m.Mode), byte(m.Kind))
	b = binary.BigEndian.AppendUint16(b, m.CanonVersion)
	b = binary.BigEndian.AppendUint16(b, m.CanonFlags)
	b = append(b, m.SessionID[:]...)
	b = binary.BigEndian.AppendUint32(b, m.ClientSize)
	b = binary.BigEndian.AppendUint32(b, m.ServerSize)
	b = binary.BigEndian.AppendUint32(b, m.ChunkSize)
	b = append(b, m.Mechanism)
	b = binary.BigEndian.AppendUint32(b, m.EpsNum)
	b = binary.BigEndian.AppendUint32(b, m.EpsDen)
	b = binary.BigEndian.AppendUint32(b, m.Sensitivity)
	b = binary.BigEndian.AppendUint32(b, m.Threshold)
	if !m.Suite.Or1().Known() {
		return nil, fmt.Errorf("%w: unknown suite %d", ErrMalformed, uint8(m.Suite))
	}
	return appendSuite(b, m.Suite), nil
}

// MarshalBinary returns the encoding of m.
func (m *PrivateParams) MarshalBinary() ([]byte, error) {
	return m.AppendBinary(make([]byte, 0, PrivateParamsSize+1))
}

// UnmarshalBinary decodes b into m. It checks the limits of SPEC.md
// §10.7.1; whether the mechanism and its parameters are acceptable is for
// package psi to decide.
func (m *PrivateParams) UnmarshalBinary(b []byte) error {
	extra, ok, err := optionalByte(b, TypePrivateParams, PrivateParamsSize)
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
	m.ClientSize = binary.BigEndian.Uint32(b[24:])
	m.ServerSize = binary.BigEndian.Uint32(b[28:])
	m.ChunkSize = binary.BigEndian.Uint32(b[32:])
	m.Mechanism = b[36]
	m.EpsNum = binary.BigEndian.Uint32(b[37:])
	m.EpsDen = binary.BigEndian.Uint32(b[41:])
	m.Sensitivity = binary.BigEndian.Uint32(b[45:])
	m.Threshold = binary.BigEndian.Uint32(b[49:])
	switch {
	case m.ClientSize == 0 || m.ClientSize > MaxClientSize:
		return fmt.Errorf("%w: client size %d is outside [1, %d]", ErrLimit, m.ClientSize, MaxClientSize)
	case m.ServerSize == 0 || m.ServerSize > MaxSetSize:
		return fmt.Errorf("%w: server size %d is outside [1, %d]", ErrLimit, m.ServerSize, MaxSetSize)
	case m.ChunkSize == 0 || m.ChunkSize > MaxChunkElements:
		return fmt.Errorf("%w: chunk size %d is outside [1, %d]", ErrLimit, m.ChunkSize, MaxChunkElements)
	case m.EpsNum == 0 || m.EpsDen == 0 || m.Sensitivity == 0 || m.Threshold == 0:
		return fmt.Errorf("%w: ε = %d/%d, sensitivity %d, threshold %d must all be non-zero", ErrMalformed, m.EpsNum, m.EpsDen, m.Sensitivity, m.Threshold)
	}
	return nil
}

// ClientKey carries the client's public key A = B^a (SPEC.md §10.7.3).
type ClientKey struct {
	Key [ElementSize]byte // Enc(B^a); validity is checked by package psi
}

// ClientKeySize is the encoded size of a ClientKey.
const ClientKeySize = 2 + ElementSize

// AppendBinary appends the encoding of m to b.
func (m *ClientKey) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, Version, byte(TypeClientKey))
	return append(b, m.Key[:]...), nil
}

// MarshalBinary returns the encoding of m.
func (m *ClientKey) MarshalBinary() ([]byte, error) {
	return m.AppendBinary(make([]byte, 0, ClientKeySize))
}

// UnmarshalBinary decodes b into m.
func (m *ClientKey) UnmarshalBinary(b []byte) error {
	if err := checkHeader(b, TypeClientKey, ClientKeySize); err != nil {
		return err
	}
	copy(m.Key[:], b[2:])
	return nil
}

// Release outcomes (SPEC.md §10.7.4).
const (
	OutcomeCount uint8 = 1 // the noised count is released
	OutcomeBelow uint8 = 2 // the noised count was below the threshold
)

// PrivateRelease is the server's answer in private mode (SPEC.md §10.7.4).
// Under the threshold it carries no count: Count is 0 and the interval is
// a function of public parameters only.
type PrivateRelease struct {
	SessionID   [16]byte
	Mechanism   uint8 // echo of PrivateParams
	EpsNum      uint32
	EpsDen      uint32
	Sensitivity uint32
	Threshold   uint32
	Outcome     uint8  // OutcomeCount or OutcomeBelow
	Count       uint32 // the released count; 0 with OutcomeBelow
	Low, High   uint32 // 95% interval for the true count
}

// PrivateReleaseSize is the encoded size of a PrivateRelease.
const PrivateReleaseSize = 2 + 16 + 1 + 4 + 4 + 4 + 4 + 1 + 4 + 4 + 4

// AppendBinary appends the encoding of m to b.
func (m *PrivateRelease) AppendBinary(b []byte) ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	b = append(b, Version, byte(TypePrivateRelease))
	b = append(b, m.SessionID[:]...)
	b = append(b, m.Mechanism)
	b = binary.BigEndian.AppendUint32(b, m.EpsNum)
	b = binary.BigEndian.AppendUint32(b, m.EpsDen)
	b = binary.BigEndian.AppendUint32(b, m.Sensitivity)
	b = binary.BigEndian.AppendUint32(b, m.Threshold)
	b = append(b, m.Outcome)
	b = binary.BigEndian.AppendUint32(b, m.Count)
	b = binary.BigEndian.AppendUint32(b, m.Low)
	b = binary.BigEndian.AppendUint32(b, m.High)
	return b, nil
}

// MarshalBinary returns the encoding of m.
func (m *PrivateRelease) MarshalBinary() ([]byte, error) {
	return m.AppendBinary(make([]byte, 0, PrivateReleaseSize))
}

// UnmarshalBinary decodes b into m.
func (m *PrivateRelease) UnmarshalBinary(b []byte) error {
	if err := checkHeader(b, TypePrivateRelease, PrivateReleaseSize); err != nil {
		return err
	}
	copy(m.SessionID[:], b[2:18])
	m.Mechanism = b[18]
	m.EpsNum = binary.BigEndian.Uint32(b[19:])
	m.EpsDen = binary.BigEndian.Uint32(b[23:])
	m.Sensitivity = binary.BigEndian.Uint32(b[27:])
	m.Threshold = binary.BigEndian.Uint32(b[31:])
	m.Outcome = b[35]
	m.Count = binary.BigEndian.Uint32(b[36:])
	m.Low = binary.BigEndian.Uint32(b[40:])
	m.High = binary.BigEndian.Uint32(b[44:])
	return m.check()
}

// check applies the decoder rules of SPEC.md §10.7.4.
func (m *PrivateRelease) check() error {
	switch {
	case m.EpsNum == 0 || m.EpsDen == 0 || m.Sensitivity == 0 || m.Threshold == 0:
		return fmt.Errorf("%w: ε = %d/%d, sensitivity %d, threshold %d must all be non-zero", ErrMalformed, m.EpsNum, m.EpsDen, m.Sensitivity, m.Threshold)
	case m.Outcome != OutcomeCount && m.Outcome != OutcomeBelow:
		return fmt.Errorf("%w: release outcome %d", ErrMalformed, m.Outcome)
	case m.Outcome == OutcomeBelow && m.Count != 0:
		return fmt.Errorf("%w: a below-threshold release carries a count", ErrMalformed)
	case m.Low > m.High:
		return fmt.Errorf("%w: interval [%d, %d]", ErrMalformed, m.Low, m.High)
	}
	return nil
}
