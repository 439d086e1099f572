package mpi

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
)

// Number is the element types of buffers: each maps to the MPI datatype
// of its size and kind (int64 and int to MPI_INT64_T on 64-bit platforms,
// float32 to MPI_FLOAT, ...).
type Number interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~int |
		~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uint |
		~float32 | ~float64
}

// dtype identifies an element type; the cgo build maps it to a datatype.
type dtype int

const (
	dInt8 dtype = iota
	dInt16
	dInt32
	dInt64
	dUint8
	dUint16
	dUint32
	dUint64
	dFloat32
	dFloat64
)

func (d dtype) float() bool { return d == dFloat32 || d == dFloat64 }

// typeOf returns the datatype of T's elements.
func typeOf[T Number]() dtype {
	switch reflect.TypeFor[T]().Kind() {
	case reflect.Int8:
		return dInt8
	case reflect.Int16:
		return dInt16
	case reflect.Int32:
		return dInt32
	case reflect.Int64:
		return dInt64
	case reflect.Int:
		if strconv.IntSize == 32 {
			return dInt32
		}
		return dInt64
	case reflect.Uint8:
		return dUint8
	case reflect.Uint16:
		return dUint16
	case reflect.Uint32:
		return dUint32
	case reflect.Uint64:
		return dUint64
	case reflect.Uint:
		if strconv.IntSize == 32 {
			return dUint32
		}
		return dUint64
	case reflect.Float32:
		return dFloat32
	}
	return dFloat64
}

// Op is a reduction.
type Op int

// The reductions. Land, Lor, Band and Bor need an integer type.
const (
	Sum Op = iota
	Min
	Max
	Prod
	Land // logical and: non-zero is true
	Lor
	Band // bitwise and
	Bor
)

var opNames = [...]string{"sum", "min", "max", "prod", "land", "lor", "band", "bor"}

func (o Op) String() string {
	if o < 0 || int(o) >= len(opNames) {
		return fmt.Sprintf("Op(%d)", int(o))
	}
	return opNames[o]
}

// ParseOp returns the reduction named s ("sum", "min", "max", "prod",
// "land", "lor", "band" or "bor").
func ParseOp(s string) (Op, error) {
	for i, n := range opNames {
		if n == s {
			return Op(i), nil
		}
	}
	return 0, fmt.Errorf("mpi: unknown reduction %q (want one of sum, min, max, prod, land, lor, band, bor)", s)
}

// check reports whether o applies to elements of type d.
func (o Op) check(d dtype) error {
	switch {
	case o < Sum || o > Bor:
		return fmt.Errorf("mpi: %v is not a reduction", o)
	case o >= Land && d.float():
		return fmt.Errorf("mpi: the reduction %v needs an integer type, not a floating-point one", o)
	}
	return nil
}

// ThreadLevel is how freely goroutines may call MPI.
type ThreadLevel int

// The levels of MPI_Init_thread.
const (
	Single ThreadLevel = iota
	Funneled
	Serialized
	Multiple
)

func (l ThreadLevel) String() string {
	switch l {
	case Single:
		return "single"
	case Funneled:
		return "funneled"
	case Serialized:
		return "serialized"
	case Multiple:
		return "multiple"
	}
	return fmt.Sprintf("ThreadLevel(%d)", int(l))
}

// Special ranks and tags.
const (
	AnySource = -1 // Recv from any rank
	AnyTag    = -1 // Recv with any tag
	// Undefined as the color of Split leaves the calling rank out of
	// every new communicator.
	Undefined = -32766
)

// Status describes a received message.
type Status struct {
	Source int // the sending rank
	Tag    int
	Count  int // elements received
}

// Error is a failed MPI call.
type Error struct {
	Call  string // the MPI function, e.g. "MPI_Allreduce"
	Code  int    // MPI's error code
	Class int    // its error class
	Msg   string // MPI_Error_string
}

func (e *Error) Error() string {
	return fmt.Sprintf("mpi: %s: %s (error class %d)", e.Call, e.Msg, e.Class)
}

// Errors the package returns itself.
var (
	ErrNotInitialized = errors.New("mpi: not initialised (call mpi.Init first)")
	ErrFinalized      = errors.New("mpi: already finalised")
	ErrStub           = errors.New("mpi: this build has no MPI library (build with -tags mpi)")
)

// checkRoot reports a root outside the communicator.
func checkRoot(root, size int) error {
	if root < 0 || root >= size {
		return fmt.Errorf("mpi: root %d is not a rank of a communicator of size %d", root, size)
	}
	return nil
}

// checkLen reports a buffer whose length is not want.
func checkLen(name string, got, want int) error {
	if got != want {
		return fmt.Errorf("mpi: %s has %d elements, want %d", name, got, want)
	}
	return nil
}
