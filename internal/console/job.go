package console

import (
	"context"
	"fmt"
	"slices"

	"go.starlark.net/starlark"

	"github.com/ipcluster/ipcluster/client"
	"github.com/ipcluster/ipcluster/client/plot"
	"github.com/ipcluster/ipcluster/engine/cell"
	"github.com/ipcluster/ipcluster/wire"
)

// jobValue is rc.job(n): the job's engines as a view, and, when its
// program steers (engine.Steer), the steering calls: status, pause,
// resume, step, set, pull, gather, call, checkpoint. On a steering job,
// pull and execute act at a steering point, on the exposed variables.
type jobValue struct {
	viewValue
	job      *client.Job
	steering *bool // whether the job's program steers, once known: it does not change
}

var jobMethods = []string{"call", "checkpoint", "gather", "pause", "resume", "set", "status", "step"}

func newJobValue(s *Session, id int) *jobValue {
	return &jobValue{viewValue: viewValue{s: s, t: client.JobRanks(id)}, job: s.c.Job(id)}
}

func (j *jobValue) String() string { return fmt.Sprintf("<job %d>", j.job.ID()) }
func (j *jobValue) Type() string   { return "job" }
func (j *jobValue) AttrNames() []string {
	return slices.Sorted(slices.Values(append(slices.Clone(viewMethods), jobMethods...)))
}

func (j *jobValue) Attr(name string) (starlark.Value, error) {
	switch name {
	case "status":
		return builtin("status", func(thread *starlark.Thread, _ starlark.Tuple) (starlark.Value, error) {
			st, err := j.job.Status(threadContext(thread))
			if err != nil {
				return nil, err
			}
			out := make([]any, len(st))
			for i, s := range st {
				out[i] = map[string]any{"rank": int64(s.Rank), "engine": int64(s.Engine), "steering": s.Steering,
					"step": int64(s.Step), "paused": s.Paused, "steps_per_s": s.StepsPerSec, "pending": int64(s.Pending)}
			}
			return cell.ToStarlark(out)
		}, 0), nil
	case "pause", "resume":
		return builtin(name, func(thread *starlark.Thread, _ starlark.Tuple) (starlark.Value, error) {
			call := j.job.Pause
			if name == "resume" {
				call = j.job.Resume
			}
			return stepValue(call(threadContext(thread)))
		}, 0), nil
	case "step":
		return builtin("step", func(thread *starlark.Thread, args starlark.Tuple) (starlark.Value, error) {
			n := 1
			if err := starlark.UnpackPositionalArgs("step", args, nil, 0, &n); err != nil {
				return nil, err
			}
			return stepValue(j.job.Step(threadContext(thread), n))
		}, -1), nil
	case "checkpoint":
		return builtin("checkpoint", func(thread *starlark.Thread, args starlark.Tuple) (starlark.Value, error) {
			var dir string
			if err := starlark.UnpackPositionalArgs("checkpoint", args, nil, 1, &dir); err != nil {
				return nil, err
			}
			return stepValue(j.job.Checkpoint(threadContext(thread), dir))
		}, 1), nil
	case "set":
		return starlark.NewBuiltin("set", func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if len(args) > 0 || len(kwargs) == 0 {
				return nil, fmt.Errorf("set: give the variables as keywords: set(dt=0.1)")
			}
			vars := make(map[string]any, len(kwargs))
			for _, kv := range kwargs {
				g, err := cell.FromStarlark(kv[1])
				if err != nil {
					return nil, fmt.Errorf("set: %s: %w", kv[0], err)
				}
				vars[string(kv[0].(starlark.String))] = g
			}
			return stepValue(j.job.Set(threadContext(thread), vars))
		}), nil
	case "gather":
		return builtin("gather", func(thread *starlark.Thread, args starlark.Tuple) (starlark.Value, error) {
			var name string
			if err := starlark.UnpackPositionalArgs("gather", args, nil, 1, &name); err != nil {
				return nil, err
			}
			a, step, err := j.job.Gather(threadContext(thread), name)
			if err != nil {
				return nil, err
			}
			return newField(name, a, step)
		}, 1), nil
	case "call":
		return builtin("call", func(thread *starlark.Thread, args starlark.Tuple) (starlark.Value, error) {
			fn, in, err := callArgs("call", args)
			if err != nil {
				return nil, err
			}
			snap, err := j.job.Call(threadContext(thread), fn, in...)
			if err != nil {
				return nil, err
			}
			return byRank(snap, fn)
		}, -1), nil
	case "pull":
		return builtin("pull", func(thread *starlark.Thread, args starlark.Tuple) (starlark.Value, error) {
			names, err := stringArgs("pull", args)
			if err != nil {
				return nil, err
			}
			ctx := threadContext(thread)
			if !j.steers(ctx) {
				return j.viewValue.callAttr(thread, "pull", args)
			}
			snap, err := j.job.Pull(ctx, names...)
			if err != nil {
				return nil, err
			}
			if len(names) == 1 {
				return byRank(snap, names[0])
			}
			return byRank(snap, names...)
		}, -1), nil
	case "execute":
		return builtin("execute", func(thread *starlark.Thread, args starlark.Tuple) (starlark.Value, error) {
			var code string
			if err := starlark.UnpackPositionalArgs("execute", args, nil, 1, &code); err != nil {
				return nil, err
			}
			ctx := threadContext(thread)
			if !j.steers(ctx) {
				return j.viewValue.callAttr(thread, "execute", args)
			}
			snap, err := j.job.Execute(ctx, code)
			if err != nil {
				return nil, err
			}
			return byRank(snap, "_")
		}, 1), nil
	}
	return j.viewValue.Attr(name)
}

// steers reports whether the job's program steers; when that cannot be
// told, the steering call reports the error.
func (j *jobValue) steers(ctx context.Context) bool {
	if j.steering != nil {
		return *j.steering
	}
	ok, err := j.job.Steers(ctx)
	if err != nil {
		return true
	}
	j.steering = &ok
	return ok
}

// callAttr calls the view's method name with args.
func (v *viewValue) callAttr(thread *starlark.Thread, name string, args starlark.Tuple) (starlark.Value, error) {
	m, err := v.Attr(name)
	if err != nil {
		return nil, err
	}
	return starlark.Call(thread, m, args, nil)
}

func stepValue(step int, err error) (starlark.Value, error) {
	if err != nil {
		return nil, err
	}
	return starlark.MakeInt(step), nil
}

// byRank returns a snapshot's values as {rank: value}, or with several
// names {rank: [values]}.
func byRank(snap *client.Snapshot, names ...string) (starlark.Value, error) {
	d := starlark.NewDict(len(snap.Ranks))
	for _, r := range snap.Ranks {
		vals := make([]starlark.Value, len(names))
		for i, n := range names {
			g, err := snap.Value(r, n)
			if err != nil {
				return nil, err
			}
			if vals[i], err = toStarlark(g); err != nil {
				return nil, err
			}
		}
		v := starlark.Value(starlark.NewList(vals))
		if len(names) == 1 {
			v = vals[0]
		}
		d.SetKey(starlark.MakeInt(r), v)
	}
	return d, nil
}

// toStarlark converts a pulled value, keeping an array's shape.
func toStarlark(g any) (starlark.Value, error) {
	if a, ok := g.(wire.Array); ok {
		return newField("", a, -1)
	}
	sv, err := cell.ToStarlark(g)
	if err != nil {
		return starlark.String(fmt.Sprint(g)), nil
	}
	return sv, nil
}

func stringArgs(what string, args starlark.Tuple) ([]string, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("%s: want at least one name", what)
	}
	out := make([]string, len(args))
	for i, a := range args {
		s, ok := starlark.AsString(a)
		if !ok {
			return nil, fmt.Errorf("%s: names are strings, not %s", what, a.Type())
		}
		out[i] = s
	}
	return out, nil
}

// callArgs reads a function name and its arguments, in their Go forms.
func callArgs(what string, args starlark.Tuple) (fn string, in []any, err error) {
	if len(args) == 0 {
		return "", nil, fmt.Errorf("%s: want a function name and its arguments", what)
	}
	fn, ok := starlark.AsString(args[0])
	if !ok {
		return "", nil, fmt.Errorf("%s: the function name is a string, not %s", what, args[0].Type())
	}
	in = make([]any, len(args)-1)
	for i, a := range args[1:] {
		g, err := cell.FromStarlark(a)
		if err != nil {
			return "", nil, fmt.Errorf("%s: argument %d: %w", what, i+1, err)
		}
		in[i] = g
	}
	return fn, in, nil
}

// fieldValue is a numeric array in the console, with its shape: what
// job.gather returns, and plot draws.
type fieldValue struct {
	name string
	a    wire.Array
	data []float64
	step int // -1 if unknown
}

var fieldAttrs = []string{"data", "max", "mean", "min", "shape", "step"}

func newField(name string, a wire.Array, step int) (*fieldValue, error) {
	if a.DType != wire.Float64 {
		return nil, fmt.Errorf("a %s array: the console shows and plots float64 arrays", a.DType)
	}
	data, err := wire.SliceOf[float64](a)
	if err != nil {
		return nil, err
	}
	return &fieldValue{name: name, a: a, data: data, step: step}, nil
}

func (f *fieldValue) String() string {
	s := fmt.Sprintf("<%s array %v", f.a.DType, f.a.Shape)
	if f.step >= 0 {
		s += fmt.Sprintf(" at step %d", f.step)
	}
	return s + ">"
}
func (f *fieldValue) Type() string          { return "field" }
func (f *fieldValue) Freeze()               {}
func (f *fieldValue) Truth() starlark.Bool  { return len(f.data) > 0 }
func (f *fieldValue) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable type: field") }
func (f *fieldValue) Len() int              { return len(f.data) }
func (f *fieldValue) AttrNames() []string   { return fieldAttrs }

func (f *fieldValue) Attr(name string) (starlark.Value, error) {
	switch name {
	case "shape":
		return cell.ToStarlark(toAny(f.a.Shape))
	case "step":
		return starlark.MakeInt(f.step), nil
	case "data":
		return cell.ToStarlark(f.data)
	case "min", "max", "mean":
		return builtin(name, func(*starlark.Thread, starlark.Tuple) (starlark.Value, error) {
			if len(f.data) == 0 {
				return nil, fmt.Errorf("%s of an empty array", name)
			}
			switch name {
			case "min":
				return starlark.Float(slices.Min(f.data)), nil
			case "max":
				return starlark.Float(slices.Max(f.data)), nil
			}
			sum := 0.0
			for _, v := range f.data {
				sum += v
			}
			return starlark.Float(sum / float64(len(f.data))), nil
		}, 0), nil
	}
	return nil, nil
}

// plotBuiltin is plot(x, path, title=""): it writes a PNG heat map of a
// 2-D field, or a line plot of a 1-D field or a list of numbers.
func plotBuiltin() *starlark.Builtin {
	return starlark.NewBuiltin("plot", func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var x starlark.Value
		var path, title string
		if err := starlark.UnpackArgs("plot", args, kwargs, "x", &x, "path", &path, "title?", &title); err != nil {
			return nil, err
		}
		var data []float64
		var shape []int
		switch x := x.(type) {
		case *fieldValue:
			data, shape = x.data, x.a.Shape
			if title == "" {
				title = x.name
				if x.step >= 0 {
					title = fmt.Sprintf("%s at step %d", x.name, x.step)
				}
			}
		default:
			g, err := cell.FromStarlark(x)
			if err != nil {
				return nil, fmt.Errorf("plot: %w", err)
			}
			if data, err = floats(g); err != nil {
				return nil, fmt.Errorf("plot: want a field (job.gather) or a list of numbers, not %s", x.Type())
			}
		}
		if err := plot.WriteFile(path, data, shape, plot.Options{Title: title}); err != nil {
			return nil, err
		}
		return starlark.None, nil
	})
}

// floats converts a list of numbers to []float64.
func floats(g any) ([]float64, error) {
	switch g := g.(type) {
	case []float64:
		return g, nil
	case []any:
		out := make([]float64, len(g))
		for i, v := range g {
			switch v := v.(type) {
			case float64:
				out[i] = v
			case int64:
				out[i] = float64(v)
			default:
				return nil, fmt.Errorf("item %d is a %T", i, v)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("a %T", g)
}
