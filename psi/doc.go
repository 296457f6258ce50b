// Package psi implements the Overlap private set intersection cardinality
// protocol of SPEC.md. Package documentation is completed in psi.go.
package psi
