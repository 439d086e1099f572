package engine

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/ipcluster/ipcluster/wire"
)

// exposedVar is a program variable that clients read and assign at
// steering points.
type exposedVar struct {
	v        reflect.Value // the variable itself (settable)
	shape    []int         // an array's dimensions; nil for a scalar or a plain slice
	readOnly bool
}

// ExposeOption configures an exposed variable.
type ExposeOption func(*exposedVar)

// Shape gives an exposed slice the dimensions of a row-major array: rows
// and columns of a field, say. Clients then receive it with that shape, and
// gathering it from the ranks of a job stacks the ranks' arrays along the
// first dimension.
func Shape(dims ...int) ExposeOption {
	return func(x *exposedVar) { x.shape = append([]int(nil), dims...) }
}

// ReadOnly makes an exposed variable readable only.
func ReadOnly() ExposeOption { return func(x *exposedVar) { x.readOnly = true } }

// Expose makes the variable ptr points to readable and assignable by
// clients under name, at steering points (see Steer), where the program
// is not using it. The variable is a bool, string, integer or
// floating-point number, or a slice of numbers, which clients read
// without a copy on this side (it is sent before Steer returns) and
// assign element by element, keeping its length. Values clients assign
// must fit the variable's type: an int does not take 0.5, nor a float64
// a string.
//
// The pointer is read at each steering point, so a slice field that the
// program re-slices (swapping buffers each step) is seen as it is then.
func (e *Engine) Expose(name string, ptr any, opts ...ExposeOption) error {
	if name == "" {
		return fmt.Errorf("engine: Expose: empty name")
	}
	p := reflect.ValueOf(ptr)
	if p.Kind() != reflect.Pointer || p.IsNil() {
		return fmt.Errorf("engine: Expose %q: want a non-nil pointer to the variable, not %T", name, ptr)
	}
	x := &exposedVar{v: p.Elem()}
	for _, o := range opts {
		o(x)
	}
	t := x.v.Type()
	switch {
	case isScalar(t):
		if x.shape != nil {
			return fmt.Errorf("engine: Expose %q: a shape is for slices, not %s", name, t)
		}
	case t.Kind() == reflect.Slice && isNumber(t.Elem()):
		if x.shape != nil {
			if err := x.checkShape(); err != nil {
				return fmt.Errorf("engine: Expose %q: %w", name, err)
			}
		}
	default:
		return fmt.Errorf("engine: Expose %q: cannot expose a %s (want a bool, string, number, or slice of numbers)", name, t)
	}
	e.xmu.Lock()
	defer e.xmu.Unlock()
	if _, dup := e.exposed[name]; dup {
		return fmt.Errorf("engine: Expose %q: already exposed", name)
	}
	e.exposed[name] = x
	return nil
}

// OnCheckpoint sets the function that checkpoint requests call, at a
// steering point, with the directory the client names: it saves what the
// program needs to restart from this step. On an MPI job every rank calls
// it with the same directory, at the same step.
func (e *Engine) OnCheckpoint(fn func(ctx context.Context, dir string) error) {
	e.xmu.Lock()
	e.checkpoint = fn
	e.xmu.Unlock()
}

func isScalar(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.String:
		return true
	}
	return isNumber(t)
}

func isNumber(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return true
	}
	return false
}

// checkShape reports whether an array variable's length fits its shape.
func (x *exposedVar) checkShape() error {
	n := 1
	for _, d := range x.shape {
		if d < 0 {
			return fmt.Errorf("negative dimension in shape %v", x.shape)
		}
		n *= d
	}
	if n != x.v.Len() {
		return fmt.Errorf("shape %v holds %d elements, the slice has %d", x.shape, n, x.v.Len())
	}
	return nil
}

// value returns the variable's current value to send: an array viewing a
// slice's memory, or a scalar.
func (x *exposedVar) value() (any, error) {
	if x.v.Kind() != reflect.Slice {
		return x.v.Interface(), nil
	}
	if x.shape == nil {
		return x.v.Interface(), nil
	}
	if err := x.checkShape(); err != nil {
		return nil, err
	}
	return wire.ArrayView(x.v.Interface(), x.shape...)
}

// getExposed reads variables for a steering get.
func (e *Engine) getExposed(names []string) ([]any, error) {
	e.xmu.RLock()
	defer e.xmu.RUnlock()
	out := make([]any, len(names))
	for i, name := range names {
		x, err := e.exposedVar(name)
		if err != nil {
			return nil, err
		}
		if out[i], err = x.value(); err != nil {
			return nil, typeError("variable %q: %v", name, err)
		}
	}
	return out, nil
}

// setExposed assigns variables for a steering set: all of them, or, if
// any value does not fit, none.
func (e *Engine) setExposed(names []string, values []wire.Value) error {
	e.xmu.RLock()
	defer e.xmu.RUnlock()
	decoded := make([]reflect.Value, len(names))
	for i, name := range names {
		x, err := e.exposedVar(name)
		if err != nil {
			return err
		}
		if x.readOnly {
			return typeError("variable %q is read-only", name)
		}
		d := reflect.New(x.v.Type()).Elem()
		if err := values[i].DecodeValue(d); err != nil {
			return typeError("variable %q (%s): %v", name, x.v.Type(), err)
		}
		if x.v.Kind() == reflect.Slice && d.Len() != x.v.Len() {
			return typeError("variable %q has %d elements; the value has %d", name, x.v.Len(), d.Len())
		}
		decoded[i] = d
	}
	for i, name := range names {
		x := e.exposed[name]
		if x.v.Kind() == reflect.Slice {
			reflect.Copy(x.v, decoded[i]) // into the program's own memory
		} else {
			x.v.Set(decoded[i])
		}
	}
	return nil
}

// exposedVar finds an exposed variable. Called with e.xmu held.
func (e *Engine) exposedVar(name string) (*exposedVar, error) {
	x := e.exposed[name]
	if x == nil {
		return nil, nameError("engine %d exposes no variable %q (exposed: %s)", e.ID(), name, exposedNames(e.exposed))
	}
	return x, nil
}

// assign sets a scalar variable to g, the Go form of a Starlark value
// (int64, float64, bool, string), if it fits.
func (x *exposedVar) assign(g any) error {
	t := x.v.Type()
	v := reflect.ValueOf(g)
	fail := func() error { return typeError("cannot assign %v (%T) to a %s", g, g, t) }
	if !v.IsValid() {
		return fail()
	}
	switch {
	case t.Kind() == reflect.Bool && v.Kind() == reflect.Bool, t.Kind() == reflect.String && v.Kind() == reflect.String:
		x.v.Set(v.Convert(t))
	case v.Kind() == reflect.Int64 && (x.v.CanInt() || x.v.CanUint()):
		n := v.Int()
		if x.v.CanInt() && x.v.OverflowInt(n) || x.v.CanUint() && (n < 0 || x.v.OverflowUint(uint64(n))) {
			return typeError("%d does not fit a %s", n, t)
		}
		x.v.Set(v.Convert(t))
	case (v.Kind() == reflect.Int64 || v.Kind() == reflect.Float64) && x.v.CanFloat():
		x.v.Set(v.Convert(t))
	default:
		return fail()
	}
	return nil
}

// exposedNames lists the names of exposed variables, sorted, for messages.
func exposedNames(m map[string]*exposedVar) string {
	if len(m) == 0 {
		return "none"
	}
	return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}
