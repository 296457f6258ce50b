package c25519

import (
	"filippo.io/edwards25519/field"
	"github.com/cloudflare/circl/dh/x25519"
)

// Batches. With AVX-512 IFMA (amd64), MultBatch, MultOwnBatch and
// InvMultBatch run eight X25519 ladders at once and check eight elements
// at once; elsewhere, and for a group of eight that holds an element they
// refuse, they do what Mult, MultOwn and InvMult do one element at a
// time. Either way they give the same results and the same errors, at the
// same index.

// checks says which checks a multiplication makes on its input.
type checks int

const (
	checkPeer checks = iota // Valid: an element received from a peer
	checkOwn                // canonical and not of low order: the party's own element
)

// MultBatch sets out[i] = k·in[i] for every i, as Mult does, in[i]
// received from a peer. On an element that Mult refuses it returns its
// index and Mult's error; out holds the results before it. out and in must
// have the same length; out may be in itself, but must not otherwise
// overlap it.
func (k *Key) MultBatch(out, in [][32]byte) (int, error) {
	return multBatch(out, in, &k.k, checkPeer)
}

// MultOwnBatch is MultBatch with the checks of MultOwn, for elements the
// party computed itself.
func (k *Key) MultOwnBatch(out, in [][32]byte) (int, error) {
	return multBatch(out, in, &k.k, checkOwn)
}

// InvMultBatch is MultBatch by k^-1, as InvMult.
func (k *Key) InvMultBatch(out, in [][32]byte) (int, error) {
	return multBatch(out, in, &k.inv, checkPeer)
}

func multBatch(out, in [][32]byte, s *x25519.Key, c checks) (int, error) {
	if len(out) != len(in) {
		panic("c25519: batch with len(out) != len(in)")
	}
	for lo := 0; lo < len(in); lo += 8 {
		hi := min(lo+8, len(in))
		if useVector && s[31]&0x40 != 0 && multGroup(out[lo:hi], in[lo:hi], s, c) {
			continue
		}
		for i := lo; i < hi; i++ {
			var err error
			if c == checkOwn {
				err = multOwn(&out[i], &in[i], s)
			} else {
				err = mult(&out[i], &in[i], s)
			}
			if err != nil {
				return i, err
			}
		}
	}
	return 0, nil
}

// validGroup reports whether every element of in (at most eight) passes
// the checks c, computing the Legendre symbols of the twist check
// together.
func validGroup(in [][32]byte, c checks) bool {
	ok := 1
	var g, pow [8]field.Element
	for j := range in {
		ok &= canonical(&in[j]) & notLowOrder(&in[j])
		if c == checkPeer {
			curveRHS(&g[j], &in[j])
		}
	}
	if c == checkPeer {
		pow22523x8(&pow, &g, len(in))
		for j := range in {
			ok &= squareFromPow(&g[j], &pow[j])
		}
	}
	return ok == 1
}

// BaseMultBatch sets out[i] = keys[i]·G for every i, G the base point
// u = 9, as keys[i].BaseMult does; with the vector unit, eight keys at a
// time. out and keys must have the same length.
func BaseMultBatch(out [][32]byte, keys []*Key) {
	if len(out) != len(keys) {
		panic("c25519: batch with len(out) != len(keys)")
	}
	base := [32]byte{9}
	for lo := 0; lo < len(keys); lo += 8 {
		hi := min(lo+8, len(keys))
		if useVector && keysGroup(out[lo:hi], &base, keys[lo:hi]) {
			continue
		}
		for i := lo; i < hi; i++ {
			keys[i].BaseMult(&out[i])
		}
	}
}

// MultKeys sets out[i] = keys[i]·P for every i, for the one element P
// encoded by in, as keys[i].Mult(&out[i], in) does, with the vector unit
// eight keys at a time. On an error it returns the index and Mult's error;
// out holds the results before it. out and keys must have the same length.
func MultKeys(out [][32]byte, in *[32]byte, keys []*Key) (int, error) {
	if len(out) != len(keys) {
		panic("c25519: batch with len(out) != len(keys)")
	}
	valid := Valid(in)
	for lo := 0; lo < len(keys); lo += 8 {
		hi := min(lo+8, len(keys))
		if useVector && valid && keysGroup(out[lo:hi], in, keys[lo:hi]) {
			continue
		}
		for i := lo; i < hi; i++ {
			if err := keys[i].Mult(&out[i], in); err != nil {
				return i, err
			}
		}
	}
	return 0, nil
}
