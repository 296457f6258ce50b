package psi

import (
	"fmt"

	"github.com/overlap-psi/overlap/psi/wire"
)

// HelloLimits is what a server accepts in a ClientHello (SPEC.md §4.1,
// §10.2): one mode, one kind, one canonicalization, and a list size range.
// Both roles check a hello with it, and a service checks its policy with
// it before any other work.
type HelloLimits struct {
	Mode          wire.Mode
	Kind          Kind
	CanonVersion  uint16
	CanonFlags    uint16
	MinClientSize uint32
	MaxClientSize uint32
}

// Names of the checks a [HelloError] reports.
const (
	CheckMode             = "mode"
	CheckKind             = "kind"
	CheckCanonicalization = "canonicalization"
	CheckMinListSize      = "min_list_size"
	CheckMaxListSize      = "max_list_size"
)

// HelloError reports a ClientHello outside a server's [HelloLimits]. It
// is an [ErrParams].
type HelloError struct {
	Check string // one of the Check constants
	msg   string
}

func (e *HelloError) Error() string { return ErrParams.Error() + ": " + e.msg }

// Detail says what is wrong with the hello, without the error's prefix.
func (e *HelloError) Detail() string { return e.msg }

// Is makes a HelloError match ErrParams.
func (e *HelloError) Is(target error) bool { return target == ErrParams }

// Check returns nil when h is within l, and otherwise a *HelloError naming
// the first check it fails, in the order of the fields of HelloLimits.
func (l HelloLimits) Check(h *wire.ClientHello) error {
	fail := func(check, format string, args ...any) error {
		return &HelloError{Check: check, msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case h.Mode != l.Mode:
		return fail(CheckMode, "mode %v is not served by this %v-mode session", h.Mode, l.Mode)
	case h.Kind != l.Kind:
		return fail(CheckKind, "client asks for kind %v, this session serves %v", h.Kind, l.Kind)
	case h.CanonVersion != l.CanonVersion || h.CanonFlags != l.CanonFlags:
		return fail(CheckCanonicalization, "canonicalization v%d flags %#x, server uses v%d flags %#x",
			h.CanonVersion, h.CanonFlags, l.CanonVersion, l.CanonFlags)
	case h.ClientSize < l.MinClientSize:
		return fail(CheckMinListSize, "list of %d identifiers is below the minimum of %d", h.ClientSize, l.MinClientSize)
	case h.ClientSize > l.MaxClientSize:
		return fail(CheckMaxListSize, "list of %d identifiers is above the maximum of %d", h.ClientSize, l.MaxClientSize)
	}
	return nil
}

// serverDefaults fills a server role's chunk size and list-size cap when
// they are zero, the same way for both modes, and checks the chunk size.
func serverDefaults(chunkSize *int, maxClientSize *uint32) error {
	if *chunkSize == 0 {
		*chunkSize = DefaultChunkSize
	}
	if *chunkSize < 1 || *chunkSize > wire.MaxChunkElements {
		return fmt.Errorf("psi: chunk size %d is outside [1, %d]", *chunkSize, wire.MaxChunkElements)
	}
	if *maxClientSize == 0 || *maxClientSize > wire.MaxClientSize {
		*maxClientSize = wire.MaxClientSize
	}
	return nil
}
