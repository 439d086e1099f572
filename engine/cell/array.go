package cell

import (
	"fmt"
	"math"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// number is an element type of arrays: Go's real numeric types.
type number interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~int |
		~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uint |
		~float32 | ~float64
}

// array is a Starlark value over a Go numeric slice, without copying it:
// arrays pushed by clients and returned by functions stay Go memory.
// It supports len, indexing (also assignment), slicing, iteration, and
// the methods sum, min, max, mean and tolist.
type array[T number] struct {
	s      []T
	frozen bool
}

// newArray wraps s, a numeric slice, or reports that it is not one.
func newArray(s any) (starlark.Value, bool) {
	switch s := s.(type) {
	case []float64:
		return &array[float64]{s: s}, true
	case []float32:
		return &array[float32]{s: s}, true
	case []int64:
		return &array[int64]{s: s}, true
	case []int32:
		return &array[int32]{s: s}, true
	case []int16:
		return &array[int16]{s: s}, true
	case []int8:
		return &array[int8]{s: s}, true
	case []int:
		return &array[int]{s: s}, true
	case []uint64:
		return &array[uint64]{s: s}, true
	case []uint32:
		return &array[uint32]{s: s}, true
	case []uint16:
		return &array[uint16]{s: s}, true
	case []uint:
		return &array[uint]{s: s}, true
	}
	return nil, false
}

var (
	_ starlark.Indexable   = (*array[float64])(nil)
	_ starlark.HasSetIndex = (*array[float64])(nil)
	_ starlark.Sliceable   = (*array[float64])(nil)
	_ starlark.Iterable    = (*array[float64])(nil)
	_ starlark.HasAttrs    = (*array[float64])(nil)
	_ starlark.Comparable  = (*array[float64])(nil)
	_ starlark.Sequence    = (*array[float64])(nil)
	_ starlark.Value       = (*array[float64])(nil)
	_ goValuer             = (*array[float64])(nil)
)

// goValuer is a Starlark value that is a Go value underneath.
type goValuer interface{ goValue() any }

func (a *array[T]) goValue() any { return a.s }

func (a *array[T]) dtype() string { return fmt.Sprintf("%T", *new(T)) }

func (a *array[T]) String() string {
	var b strings.Builder
	b.WriteString("array([")
	for i, x := range a.s {
		if i > 0 {
			b.WriteString(", ")
		}
		if i == 20 && len(a.s) > 25 {
			fmt.Fprintf(&b, "... %d more", len(a.s)-20)
			break
		}
		b.WriteString(a.elem(x).String())
	}
	b.WriteString("], ")
	b.WriteString(a.dtype())
	b.WriteString(")")
	return b.String()
}

func (a *array[T]) Type() string         { return "array" }
func (a *array[T]) Freeze()              { a.frozen = true }
func (a *array[T]) Truth() starlark.Bool { return len(a.s) > 0 }
func (a *array[T]) Hash() (uint32, error) {
	return 0, fmt.Errorf("unhashable type: array")
}
func (a *array[T]) Len() int { return len(a.s) }

func (a *array[T]) float() bool {
	var z T
	switch any(z).(type) {
	case float32, float64:
		return true
	}
	return false
}

// elem turns one element into a Starlark number.
func (a *array[T]) elem(x T) starlark.Value {
	switch v := any(x).(type) {
	case float64:
		return starlark.Float(v)
	case float32:
		return starlark.Float(v)
	case uint64:
		return starlark.MakeUint64(v)
	case uint:
		return starlark.MakeUint64(uint64(v))
	}
	return starlark.MakeInt64(toInt64(x))
}

func toInt64[T number](x T) int64 {
	switch v := any(x).(type) {
	case int8:
		return int64(v)
	case int16:
		return int64(v)
	case int32:
		return int64(v)
	case int64:
		return v
	case int:
		return int64(v)
	case uint16:
		return int64(v)
	case uint32:
		return int64(v)
	case uint8:
		return int64(v)
	}
	return 0
}

func (a *array[T]) Index(i int) starlark.Value { return a.elem(a.s[i]) }

func (a *array[T]) SetIndex(i int, v starlark.Value) error {
	if a.frozen {
		return fmt.Errorf("cannot assign to an element of a frozen array")
	}
	x, err := toElem[T](v)
	if err != nil {
		return err
	}
	a.s[i] = x
	return nil
}

// toElem converts a Starlark number to an element, refusing a value that
// does not fit.
func toElem[T number](v starlark.Value) (T, error) {
	var f float64
	switch v := v.(type) {
	case starlark.Float:
		f = float64(v)
	case starlark.Int:
		if i, ok := v.Int64(); ok {
			f = float64(i)
		} else if u, ok := v.Uint64(); ok {
			f = float64(u)
		} else {
			return 0, fmt.Errorf("%v is too large for an array element", v)
		}
	default:
		return 0, fmt.Errorf("an array element must be a number, not %s", v.Type())
	}
	x := T(f)
	if float64(x) != f && !math.IsNaN(f) {
		var z T
		return 0, fmt.Errorf("%v does not fit an element of type %T", v, z)
	}
	return x, nil
}

func (a *array[T]) Slice(start, end, step int) starlark.Value {
	if step == 1 {
		return &array[T]{s: a.s[start:end], frozen: a.frozen}
	}
	var out []T
	for i := start; (step > 0 && i < end) || (step < 0 && i > end); i += step {
		out = append(out, a.s[i])
	}
	return &array[T]{s: out}
}

func (a *array[T]) Iterate() starlark.Iterator { return &arrayIter[T]{a: a} }

type arrayIter[T number] struct {
	a *array[T]
	i int
}

func (it *arrayIter[T]) Next(p *starlark.Value) bool {
	if it.i >= len(it.a.s) {
		return false
	}
	*p = it.a.elem(it.a.s[it.i])
	it.i++
	return true
}

func (it *arrayIter[T]) Done() {}

func (a *array[T]) CompareSameType(op syntax.Token, y starlark.Value, depth int) (bool, error) {
	b := y.(*array[T])
	eq := len(a.s) == len(b.s)
	for i := 0; eq && i < len(a.s); i++ {
		eq = a.s[i] == b.s[i]
	}
	switch op {
	case syntax.EQL:
		return eq, nil
	case syntax.NEQ:
		return !eq, nil
	}
	return false, fmt.Errorf("arrays support only == and !=")
}

var arrayMethods = []string{"dtype", "max", "mean", "min", "sum", "tolist"}

func (a *array[T]) AttrNames() []string { return arrayMethods }

func (a *array[T]) Attr(name string) (starlark.Value, error) {
	switch name {
	case "dtype":
		return starlark.String(a.dtype()), nil
	case "sum", "mean", "min", "max", "tolist":
		return starlark.NewBuiltin(name, func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
				return nil, err
			}
			return a.method(name)
		}).BindReceiver(a), nil
	}
	return nil, nil
}

func (a *array[T]) method(name string) (starlark.Value, error) {
	switch name {
	case "tolist":
		l := make([]starlark.Value, len(a.s))
		for i, x := range a.s {
			l[i] = a.elem(x)
		}
		return starlark.NewList(l), nil
	case "sum", "mean":
		if a.float() || name == "mean" {
			s := 0.0
			for _, x := range a.s {
				s += float64(x)
			}
			if name == "mean" {
				if len(a.s) == 0 {
					return nil, fmt.Errorf("mean of an empty array")
				}
				return starlark.Float(s / float64(len(a.s))), nil
			}
			return starlark.Float(s), nil
		}
		var s int64
		for _, x := range a.s {
			s += toInt64(x)
		}
		return starlark.MakeInt64(s), nil
	case "min", "max":
		if len(a.s) == 0 {
			return nil, fmt.Errorf("%s of an empty array", name)
		}
		m := a.s[0]
		for _, x := range a.s[1:] {
			if (name == "min" && x < m) || (name == "max" && x > m) {
				m = x
			}
		}
		return a.elem(m), nil
	}
	return nil, fmt.Errorf("array has no method %s", name)
}
