package gcs

import "errors"

// Errors returned by this package, possibly wrapped with details; test with
// errors.Is. The decoder's errors mean the peer sent a malformed set.
var (
	ErrParams    = errors.New("gcs: invalid parameters")
	ErrOrder     = errors.New("gcs: values not in non-decreasing order")
	ErrRange     = errors.New("gcs: value out of range")
	ErrCount     = errors.New("gcs: wrong number of values")
	ErrTruncated = errors.New("gcs: truncated chunk")
	ErrPadding   = errors.New("gcs: non-zero padding bits")
	ErrTrailing  = errors.New("gcs: trailing bytes after last value")
	ErrClosed    = errors.New("gcs: encoder closed")
)
