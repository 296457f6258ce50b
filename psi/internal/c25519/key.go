package c25519

import (
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"filippo.io/edwards25519"
	"github.com/cloudflare/circl/dh/x25519"
)

// Errors returned by Key's methods. They never carry a key or an element.
var (
	// ErrInvalidElement is returned for an element that Valid refuses.
	ErrInvalidElement = errors.New("c25519: invalid element")
	// ErrIdentity is returned when a multiplication yields the identity
	// (all-zero u); it cannot happen for an element that Valid accepts.
	ErrIdentity = errors.New("c25519: result is the identity")
	// ErrKey is returned by KeyFromBytes for bytes that are not a usable key.
	ErrKey = errors.New("c25519: not a clamped scalar with a clamped inverse")
	// ErrErased is returned by a key's multiplications after Erase.
	ErrErased = errors.New("c25519: key erased")
)

// orderLimbs is ℓ = 2^252 + 27742317777372353535851937790883648493, the
// order of the prime-order subgroup, as little-endian 64-bit limbs.
var orderLimbs = [4]uint64{0x5812631a5cf5d3ed, 0x14def9dea2f79cd6, 0, 0x1000000000000000}

// Key is a secret scalar of the suite: a clamped X25519 scalar k (RFC 7748
// §5: the low three bits clear, bit 255 clear, bit 254 set) together with
// the clamped representative of k^-1 mod ℓ, which exists for about half of
// all clamped scalars. Mult multiplies by k and InvMult by k^-1, both with
// the X25519 ladder. A Key never prints its value.
type Key struct {
	k, inv x25519.Key
}

// clamped reports whether b is a clamped scalar (RFC 7748 decodeScalar25519
// leaves it unchanged).
func clamped(b *[32]byte) bool {
	return b[0]&7 == 0 && b[31]&0xc0 == 0x40
}

// inverseRep sets inv to the clamped representative of k^-1 mod ℓ and
// returns 1, or returns 0 if k^-1 mod ℓ has none. k must be clamped. It runs
// in constant time.
//
// A clamped representative of i = k^-1 mod ℓ (0 < i < ℓ) is an integer
// i + j·ℓ that is a multiple of 8 and lies in [2^254, 2^255). Since
// ℓ ≡ 5 (mod 8), the multiple of 8 needs j ≡ -5^-1·i ≡ 3·i (mod 8), and
// since 8ℓ > 2^255, the only candidate is j = 3·i mod 8 in [0, 7]. It is
// in range for j in {4, 5, 6}, for j = 7 unless i ≥ 2^255 - 7ℓ, and for
// j = 3 only if i ≥ 2^254 - 3ℓ: so for about half of all keys.
func inverseRep(inv, k *x25519.Key) int {
	var wide [64]byte
	copy(wide[:], k[:])
	s, err := edwards25519.NewScalar().SetUniformBytes(wide[:]) // k mod ℓ, never 0
	clear(wide[:])
	if err != nil {
		return 0 // cannot happen: wide is 64 bytes
	}
	s.Invert(s)
	var iBytes [32]byte
	copy(iBytes[:], s.Bytes())
	s.Set(edwards25519.NewScalar())

	var i [4]uint64
	for n := range i {
		i[n] = binary.LittleEndian.Uint64(iBytes[8*n:])
	}
	clear(iBytes[:])
	j := (3 * i[0]) & 7

	// r = i + j·ℓ; j·ℓ < 8ℓ < 2^256, so four limbs hold it.
	var r [4]uint64
	var mulCarry, addCarry uint64
	for n := range r {
		hi, lo := bits.Mul64(orderLimbs[n], j)
		lo, c := bits.Add64(lo, mulCarry, 0)
		mulCarry = hi + c
		r[n], addCarry = bits.Add64(lo, i[n], addCarry)
	}
	for n := range r {
		binary.LittleEndian.PutUint64(inv[8*n:], r[n])
	}
	clear(i[:])
	clear(r[:])
	top := inv[31]
	// bit 255 clear and bit 254 set; the low three bits are zero because
	// i + 3i·ℓ ≡ i + 15i = 16i ≡ 0 (mod 8).
	return int((top>>6)&1) & int(^(top>>7)&1)
}

// NewKey draws clamped scalars from rand (32 bytes each, clamped as RFC 7748
// §5 says) until one has a clamped inverse representative, about two draws
// on average. The result is uniform over the clamped scalars whose inverse
// is representable (about 2^250 of them). It fails only if rand does, or
// if 256 draws in a row are unusable (probability about 2^-256 for a
// working source).
func NewKey(rand io.Reader) (*Key, error) {
	key := new(Key)
	for range 256 {
		if _, err := io.ReadFull(rand, key.k[:]); err != nil {
			key.Erase()
			return nil, fmt.Errorf("c25519: reading random key: %w", err)
		}
		key.k[0] &= 248
		key.k[31] = key.k[31]&127 | 64
		if inverseRep(&key.inv, &key.k) == 1 {
			return key, nil
		}
	}
	key.Erase()
	return nil, errors.New("c25519: random source yields no usable key")
}

// KeyFromBytes returns the key whose clamped scalar is b (as Bytes returns
// it). It refuses, with ErrKey, bytes that are not a clamped scalar
// (decodeScalar25519 would change them; zero among them) or whose inverse
// mod ℓ has no clamped representative.
func KeyFromBytes(b [32]byte) (*Key, error) {
	key := new(Key)
	key.k = b
	clear(b[:])
	if !clamped((*[32]byte)(&key.k)) || inverseRep(&key.inv, &key.k) != 1 {
		key.Erase()
		return nil, ErrKey
	}
	return key, nil
}

// Bytes returns the clamped scalar k, for the epoch key file.
func (k *Key) Bytes() [32]byte {
	return k.k
}

// Erase overwrites the key; its multiplications then fail with ErrErased.
func (k *Key) Erase() {
	clear(k.k[:])
	clear(k.inv[:])
}

// mult sets out = s·P for the element P encoded by in, with the X25519
// ladder of circl (which clamps s, a no-op here, and masks the top bit of
// in, which Valid has already required clear).
func mult(out, in *[32]byte, s *x25519.Key) error {
	if s[31]&0x40 == 0 { // every clamped scalar has bit 254 set
		return ErrErased
	}
	if !Valid(in) {
		return ErrInvalidElement
	}
	var res x25519.Key
	ok := x25519.Shared(&res, s, (*x25519.Key)(in))
	if !ok || isZero(&res) {
		return ErrIdentity
	}
	*out = res
	return nil
}

// Mult sets out = k·P for the element P encoded by in. It returns
// ErrInvalidElement, and leaves out unchanged, if Valid(in) is false, and
// ErrIdentity if the result is the identity (which a valid in cannot give).
// For in = P0 + T, P0 in the prime-order subgroup and T of order dividing 8,
// the result is k·P0: k is a multiple of 8. out may alias in.
func (k *Key) Mult(out, in *[32]byte) error {
	return mult(out, in, &k.k)
}

// MultOwn sets out = k·P like Mult, for an element P that this party
// computed itself (a Hash output, or its own earlier result), not one
// received from a peer. It makes the checks of Valid except the twist
// check (the Legendre symbol, an exponentiation: about a tenth of a
// multiplication), which a Hash output passes by construction. Given a
// twist point anyway, it returns a twist point, which the peer's Valid
// refuses; the key is not exposed (k is a multiple of 8, which annihilates
// the twist's points of order 4, and the rest of the twist's group has
// prime order, SPEC.md §12.5).
func (k *Key) MultOwn(out, in *[32]byte) error {
	return multOwn(out, in, &k.k)
}

func multOwn(out, in *[32]byte, s *x25519.Key) error {
	if s[31]&0x40 == 0 {
		return ErrErased
	}
	if canonical(in)&notLowOrder(in) != 1 {
		return ErrInvalidElement
	}
	var res x25519.Key
	ok := x25519.Shared(&res, s, (*x25519.Key)(in))
	if !ok || isZero(&res) {
		return ErrIdentity
	}
	*out = res
	return nil
}

// InvMult sets out = k^-1·P (k^-1 mod ℓ) for the element P encoded by in,
// with the same checks as Mult. Its clamped representative is a multiple of
// 8 too, so for in = P0 + T the result is k^-1·P0, and
// InvMult(Mult(P)) = P0.
func (k *Key) InvMult(out, in *[32]byte) error {
	return mult(out, in, &k.inv)
}

// BaseMult sets out = k·G, G the X25519 base point u = 9 (circl's
// fixed-base ladder).
func (k *Key) BaseMult(out *[32]byte) {
	x25519.KeyGen((*x25519.Key)(out), &k.k)
}

// isZero reports, in constant time, whether the result is the identity
// (X25519's all-zero output).
func isZero(r *x25519.Key) bool {
	var zero [32]byte
	return subtle.ConstantTimeCompare(r[:], zero[:]) == 1
}

const redacted = "c25519.Key{REDACTED}"

// String returns a fixed text: a key never prints. The printing methods
// have value receivers so that a Key value redacts itself as a *Key does.
func (Key) String() string { return redacted }

// GoString returns a fixed text: a key never prints.
func (Key) GoString() string { return redacted }

// Format writes a fixed text for every verb: a key never prints.
func (Key) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }
