package engine

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"strings"

	"github.com/ipcluster/ipcluster/wire"
)

// Native is the fastest shape a registered function can have: it gets
// its arguments undecoded and is called without reflection. Builtins use
// it; so may any function for which call overhead matters.
type Native = func(ctx context.Context, args []wire.Value) (any, error)

// function is a registered Go function, prepared for calls by name with
// encoded arguments.
type function struct {
	name     string
	native   Native // set for functions of the Native shape
	fn       reflect.Value
	ctx      bool           // the first parameter is a context.Context
	params   []reflect.Type // after the context, if any
	variadic bool
	result   bool // returns a value besides an error
	err      bool // the last result is an error

	// Storage for arguments, reused from call to call: calls happen one
	// at a time, and the function gets copies of the values.
	in   []reflect.Value
	args []reflect.Value
	busy bool
}

var (
	contextType = reflect.TypeFor[context.Context]()
	errorType   = reflect.TypeFor[error]()
	valueType   = reflect.TypeFor[wire.Value]()
)

// newFunction checks that fn is a function of a supported shape:
// an optional context.Context first, then any parameters, and as results
// nothing, an error, a value, or a value and an error.
func newFunction(name string, fn any) (*function, error) {
	if name == "" {
		return nil, errors.New("engine: a function needs a name")
	}
	if n, ok := fn.(Native); ok && n != nil {
		return &function{name: name, native: n}, nil
	}
	v := reflect.ValueOf(fn)
	if v.Kind() != reflect.Func {
		return nil, fmt.Errorf("engine: %s: %T is not a function", name, fn)
	}
	if v.IsNil() {
		return nil, fmt.Errorf("engine: %s: the function (%T) is nil", name, fn)
	}
	t := v.Type()
	f := &function{name: name, fn: v, variadic: t.IsVariadic()}
	for i := range t.NumIn() {
		p := t.In(i)
		if i == 0 && p == contextType {
			f.ctx = true
			continue
		}
		if p == contextType {
			return nil, fmt.Errorf("engine: %s: a context.Context must be the first parameter", name)
		}
		f.params = append(f.params, p)
	}
	switch n := t.NumOut(); {
	case n == 0:
	case n == 1 && t.Out(0) == errorType:
		f.err = true
	case n == 1:
		f.result = true
	case n == 2 && t.Out(1) == errorType:
		f.result, f.err = true, true
	default:
		return nil, fmt.Errorf("engine: %s: results must be (), (error), (T) or (T, error), not %s", name, t)
	}
	return f, nil
}

// signature describes the function for error messages.
func (f *function) signature() string {
	var b strings.Builder
	b.WriteString(f.name)
	b.WriteByte('(')
	for i, p := range f.params {
		if i > 0 {
			b.WriteString(", ")
		}
		if f.variadic && i == len(f.params)-1 {
			b.WriteString("..." + p.Elem().String())
		} else {
			b.WriteString(p.String())
		}
	}
	b.WriteByte(')')
	return b.String()
}

// call decodes args into the parameters, calls the function and returns
// its result. A panic in the function becomes a *taskError of type Panic.
func (f *function) call(ctx context.Context, args []wire.Value) (result any, err error) {
	if f.native != nil {
		defer func() {
			if p := recover(); p != nil {
				result, err = nil, &taskError{kind: "Panic", msg: fmt.Sprint(p), stack: string(debug.Stack())}
			}
		}()
		return f.native(ctx, args)
	}
	n := len(f.params)
	if f.variadic {
		if len(args) < n-1 {
			return nil, typeError("%s takes at least %s, got %d", f.signature(), arguments(n-1), len(args))
		}
	} else if len(args) != n {
		return nil, typeError("%s takes %s, got %d", f.signature(), arguments(n), len(args))
	}
	if f.busy { // a call within a call: use storage of its own
		g := *f
		g.in, g.args, g.busy = nil, nil, false
		return g.call(ctx, args)
	}
	f.busy = true
	defer func() { f.busy = false }()
	in := f.in[:0]
	if f.ctx {
		in = append(in, reflect.ValueOf(ctx))
	}
	for i, a := range args {
		if i == len(f.args) {
			f.args = append(f.args, reflect.New(f.paramType(i)).Elem())
		}
		v := f.args[i]
		v.SetZero() // decoding into a map or slice would otherwise merge
		if v.Type() == valueType {
			v.Set(reflect.ValueOf(a))
		} else if err := a.DecodeValue(v); err != nil {
			return nil, typeError("argument %d of %s: %v", i+1, f.signature(), err)
		}
		in = append(in, v)
	}
	f.in = in
	defer func() {
		if p := recover(); p != nil {
			result, err = nil, &taskError{kind: "Panic", msg: fmt.Sprint(p), stack: string(debug.Stack())}
		}
	}()
	out := f.fn.Call(in)
	clear(in) // drop references to the arguments until the next call
	for _, v := range f.args[:len(args)] {
		v.SetZero()
	}
	if f.err {
		if e, _ := out[len(out)-1].Interface().(error); e != nil {
			return nil, e
		}
	}
	if f.result {
		return out[0].Interface(), nil
	}
	return nil, nil
}

func arguments(n int) string {
	if n == 1 {
		return "1 argument"
	}
	return fmt.Sprintf("%d arguments", n)
}

func (f *function) paramType(i int) reflect.Type {
	if f.variadic && i >= len(f.params)-1 {
		return f.params[len(f.params)-1].Elem()
	}
	return f.params[i]
}

// taskError is an error with a type name for the client, such as
// "NameError" or "TypeError", and optionally a stack.
type taskError struct {
	kind  string
	msg   string
	stack string
}

func (e *taskError) Error() string { return e.msg }

func typeError(format string, args ...any) error {
	return &taskError{kind: "TypeError", msg: fmt.Sprintf(format, args...)}
}

func nameError(format string, args ...any) error {
	return &taskError{kind: "NameError", msg: fmt.Sprintf(format, args...)}
}

// TypedError lets a function's error choose the type name clients see
// (RemoteError.Type); otherwise the Go type's name is used.
type TypedError interface {
	error
	ErrorType() string
}

// errorInfo describes err for a task reply. It survives an error whose
// methods panic, such as a nil *T returned as an error whose Error method
// reads the struct.
func errorInfo(err error) (info wire.ErrorInfo) {
	defer func() {
		if p := recover(); p != nil {
			info = wire.ErrorInfo{Type: errorTypeName(err),
				Message: fmt.Sprintf("the error's methods panicked: %v", p), Traceback: string(debug.Stack())}
		}
	}()
	var te *taskError
	if errors.As(err, &te) {
		return wire.ErrorInfo{Type: te.kind, Message: te.msg, Traceback: te.stack}
	}
	var typed TypedError
	if errors.As(err, &typed) {
		return wire.ErrorInfo{Type: typed.ErrorType(), Message: err.Error()}
	}
	return wire.ErrorInfo{Type: errorTypeName(err), Message: err.Error()}
}

// errorTypeName returns the name of err's Go type, without a pointer's
// star, or "Error" for the types of errors.New, fmt.Errorf and errors.Join.
func errorTypeName(err error) string {
	name := reflect.TypeOf(err).String()
	name = strings.TrimPrefix(name, "*")
	switch name {
	case "errors.errorString", "fmt.wrapError", "fmt.wrapErrors", "errors.joinError", "context.deadlineExceededError":
		name = "Error"
	}
	return name
}
