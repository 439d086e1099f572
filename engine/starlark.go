package engine

import (
	"context"
	"fmt"
	"os"

	"go.starlark.net/starlark"

	"github.com/ipcluster/ipcluster/engine/cell"
	"github.com/ipcluster/ipcluster/mpi"
	"github.com/ipcluster/ipcluster/wire"
)

// cellBuiltins are what cells see besides their own variables: the
// modules engine and (in builds with MPI) mpi, fn (registered functions
// by attribute) and call (registered functions by name).
func (e *Engine) cellBuiltins() starlark.StringDict {
	b := starlark.StringDict{
		"engine": &module{name: "engine", attrs: e.engineAttrs},
		"fn":     &module{name: "fn", attrs: e.functionAttr, names: e.Functions},
		"call": starlark.NewBuiltin("call", func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if len(args) == 0 || len(kwargs) > 0 {
				return nil, fmt.Errorf("call: want a function name and its positional arguments")
			}
			name, ok := starlark.AsString(args[0])
			if !ok {
				return nil, fmt.Errorf("call: the function name must be a string, not %s", args[0].Type())
			}
			return e.callFromCell(thread, name, args[1:])
		}),
	}
	if mpi.Enabled {
		b["mpi"] = &module{name: "mpi", attrs: mpiAttr}
	}
	return b
}

// module is a Starlark module whose attributes are looked up when used, so
// that they are current (the engine id after registration, functions
// registered late).
type module struct {
	name  string
	attrs func(name string) (starlark.Value, error)
	names func() []string
}

func (m *module) String() string        { return "<module " + m.name + ">" }
func (m *module) Type() string          { return "module" }
func (m *module) Freeze()               {}
func (m *module) Truth() starlark.Bool  { return true }
func (m *module) Hash() (uint32, error) { return starlark.String(m.name).Hash() }
func (m *module) Attr(name string) (starlark.Value, error) {
	return m.attrs(name)
}
func (m *module) AttrNames() []string {
	if m.names != nil {
		return m.names()
	}
	return nil
}

// engineAttrs are the attributes of the engine module.
func (e *Engine) engineAttrs(name string) (starlark.Value, error) {
	switch name {
	case "id":
		return starlark.MakeInt(e.ID()), nil
	case "host":
		h, _ := os.Hostname()
		return starlark.String(h), nil
	case "pid":
		return starlark.MakeInt(os.Getpid()), nil
	case "job":
		return starlark.MakeInt(int(e.job.Load())), nil
	case "rank":
		return starlark.MakeInt(e.opts.Rank), nil
	case "size":
		return starlark.MakeInt(e.opts.Size), nil
	}
	return nil, nil // no such attribute
}

// functionAttr makes fn.name call the registered function name.
func (e *Engine) functionAttr(name string) (starlark.Value, error) {
	if _, err := e.lookup(name); err != nil {
		return nil, nil
	}
	return starlark.NewBuiltin(name, func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if len(kwargs) > 0 {
			return nil, fmt.Errorf("%s: registered functions take positional arguments only", name)
		}
		return e.callFromCell(thread, name, args)
	}), nil
}

// callFromCell calls a registered function with Starlark arguments and
// returns its result in Starlark form, as a client would see it.
func (e *Engine) callFromCell(thread *starlark.Thread, name string, args starlark.Tuple) (starlark.Value, error) {
	f, err := e.lookup(name)
	if err != nil {
		return nil, err
	}
	vals := make([]wire.Value, len(args))
	for i, a := range args {
		g, err := cell.FromStarlark(a)
		if err != nil {
			return nil, fmt.Errorf("%s: argument %d: %w", name, i+1, err)
		}
		if vals[i], err = valueOf(g); err != nil {
			return nil, fmt.Errorf("%s: argument %d: %w", name, i+1, err)
		}
	}
	res, err := f.call(cell.Context(thread), vals)
	if err != nil {
		return nil, err
	}
	// Through the wire's encoding, so that a struct arrives as the dict a
	// client would get.
	g, err := roundTrip(res)
	if err != nil {
		return nil, fmt.Errorf("%s: its result: %w", name, err)
	}
	return cell.ToStarlark(g)
}

// valueOf encodes a Go value as a wire.Value; a wire.Value stays itself.
func valueOf(g any) (wire.Value, error) {
	if v, ok := g.(wire.Value); ok {
		return v, nil
	}
	var bufs [][]byte
	raw, err := wire.AppendValue(nil, &bufs, g)
	return wire.Value{Raw: raw, Buffers: bufs}, err
}

// roundTrip returns the Go value a client would decode from v.
func roundTrip(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	val, err := valueOf(v)
	if err != nil {
		return nil, err
	}
	return val.Decode()
}

// mpiAttr are the attributes of the mpi module: rank and size of
// MPI_COMM_WORLD, and collectives over numbers and arrays, which end when
// the cell is interrupted (see package mpi for what that leaves).
func mpiAttr(name string) (starlark.Value, error) {
	w := mpi.World()
	switch name {
	case "rank", "size":
		if !mpi.Initialized() { // an engine that is not a rank: a world of one
			return starlark.MakeInt(map[string]int{"rank": 0, "size": 1}[name]), nil
		}
		if name == "rank" {
			return starlark.MakeInt(w.Rank()), nil
		}
		return starlark.MakeInt(w.Size()), nil
	}
	if _, err := world(); err != nil {
		return nil, err
	}
	switch name {
	case "barrier":
		return starlark.NewBuiltin("mpi.barrier", func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
				return nil, err
			}
			return starlark.None, w.Barrier(cell.Context(thread))
		}), nil
	case "allreduce":
		return starlark.NewBuiltin("mpi.allreduce", func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var v starlark.Value
			op := "sum"
			if err := starlark.UnpackArgs(b.Name(), args, kwargs, "value", &v, "op?", &op); err != nil {
				return nil, err
			}
			o, err := mpi.ParseOp(op)
			if err != nil {
				return nil, err
			}
			return collective(v, func(send, recv []float64) error { return mpi.Allreduce(cell.Context(thread), w, send, recv, o) },
				func(send, recv []int64) error { return mpi.Allreduce(cell.Context(thread), w, send, recv, o) }, 1)
		}), nil
	case "bcast":
		return starlark.NewBuiltin("mpi.bcast", func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var v starlark.Value
			root := 0
			if err := starlark.UnpackArgs(b.Name(), args, kwargs, "value", &v, "root?", &root); err != nil {
				return nil, err
			}
			return collective(v, func(send, recv []float64) error {
				copy(recv, send)
				return mpi.Bcast(cell.Context(thread), w, recv, root)
			},
				func(send, recv []int64) error {
					copy(recv, send)
					return mpi.Bcast(cell.Context(thread), w, recv, root)
				}, 1)
		}), nil
	case "allgather":
		return starlark.NewBuiltin("mpi.allgather", func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var v starlark.Value
			if err := starlark.UnpackArgs(b.Name(), args, kwargs, "value", &v); err != nil {
				return nil, err
			}
			return collective(v, func(send, recv []float64) error { return mpi.Allgather(cell.Context(thread), w, send, recv) },
				func(send, recv []int64) error { return mpi.Allgather(cell.Context(thread), w, send, recv) }, w.Size())
		}), nil
	case "gather":
		return starlark.NewBuiltin("mpi.gather", func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var v starlark.Value
			root := 0
			if err := starlark.UnpackArgs(b.Name(), args, kwargs, "value", &v, "root?", &root); err != nil {
				return nil, err
			}
			out, err := collective(v, func(send, recv []float64) error { return mpi.Gather(cell.Context(thread), w, send, recv, root) },
				func(send, recv []int64) error { return mpi.Gather(cell.Context(thread), w, send, recv, root) }, w.Size())
			if err != nil || w.Rank() == root {
				return out, err
			}
			return starlark.None, nil // only the root gets the data
		}), nil
	}
	return nil, nil
}

// collective runs an MPI collective on a number or an array (ints as
// int64, floats as float64); recv holds factor times the send's length.
// A number comes back a number when factor is 1, else an array.
func collective(v starlark.Value, floats func(send, recv []float64) error, ints func(send, recv []int64) error, factor int) (starlark.Value, error) {
	g, err := cell.FromStarlark(v)
	if err != nil {
		return nil, err
	}
	scalar := false
	switch x := g.(type) {
	case int64:
		g, scalar = []int64{x}, true
	case float64:
		g, scalar = []float64{x}, true
	case []float32, []int32, []int16, []int8, []uint64, []uint32, []uint16, []int, []uint:
		return nil, fmt.Errorf("MPI collectives from cells take numbers, or arrays of float64 or int64, not %T", g)
	}
	var out any
	switch s := g.(type) {
	case []float64:
		recv := make([]float64, factor*len(s))
		if err := floats(s, recv); err != nil {
			return nil, err
		}
		out = recv
		if scalar && factor == 1 {
			out = recv[0]
		}
	case []int64:
		recv := make([]int64, factor*len(s))
		if err := ints(s, recv); err != nil {
			return nil, err
		}
		out = recv
		if scalar && factor == 1 {
			out = recv[0]
		}
	default:
		return nil, fmt.Errorf("MPI collectives from cells take a number or an array, not %s", v.Type())
	}
	return cell.ToStarlark(out)
}

// runCell runs an Execute request's cell; what it prints goes to the
// task's client as stdout.
func (e *Engine) runCell(ctx context.Context, m *wire.Message) (any, error) {
	file, code, err := wire.DecodeExecute(m)
	if err != nil {
		return nil, err
	}
	e.cells++
	if file == "" {
		file = fmt.Sprintf("<cell %d>", e.cells)
	}
	out, err := e.ns.Exec(ctx, file, code, func(line string) {
		e.emitOutput(m.ID, "stdout", []byte(line+"\n"))
	})
	if ce, ok := err.(*cell.Error); ok {
		return nil, &taskError{kind: ce.Kind, msg: ce.Message, stack: ce.Backtrace}
	}
	return out, err
}

// lookupOrCell finds the registered function name or, failing that, a
// Starlark function of that name that a cell defined.
func (e *Engine) lookupOrCell(name string) (*function, error) {
	f, err := e.lookup(name)
	if err == nil || !e.ns.Callable(name) {
		return f, err
	}
	return &function{name: name, native: func(ctx context.Context, args []wire.Value) (any, error) {
		in := make([]any, len(args))
		for i, a := range args {
			g, err := a.Decode()
			if err != nil {
				return nil, typeError("%s: argument %d: %v", name, i+1, err)
			}
			in[i] = g
		}
		task := e.currentID()
		out, err := e.ns.Call(ctx, name, in, func(line string) { e.emitOutput(task, "stdout", []byte(line+"\n")) })
		if ce, ok := err.(*cell.Error); ok {
			return nil, &taskError{kind: ce.Kind, msg: ce.Message, stack: ce.Backtrace}
		}
		return out, err
	}}, nil
}
