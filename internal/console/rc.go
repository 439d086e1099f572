package console

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.starlark.net/starlark"

	"github.com/ipcluster/ipcluster/client"
	"github.com/ipcluster/ipcluster/engine/cell"
)

// rcValue is rc in the console: the connected client. rc[i] and rc[i:j]
// are views of engines (by position among the registered ids, which are
// usually the ids themselves); rc.ids, rc.jobs(), rc.job(n) and the view
// methods on every engine.
type rcValue struct{ s *Session }

var (
	_ starlark.HasAttrs  = (*rcValue)(nil)
	_ starlark.Indexable = (*rcValue)(nil)
	_ starlark.Sliceable = (*rcValue)(nil)
)

func (r *rcValue) String() string        { return fmt.Sprintf("<client of engines %v>", r.s.c.IDs()) }
func (r *rcValue) Type() string          { return "client" }
func (r *rcValue) Freeze()               {}
func (r *rcValue) Truth() starlark.Bool  { return true }
func (r *rcValue) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable type: client") }
func (r *rcValue) Len() int              { return len(r.s.c.IDs()) }

func (r *rcValue) Index(i int) starlark.Value {
	id := r.s.c.IDs()[i]
	return &viewValue{s: r.s, t: client.Engines(id)}
}

func (r *rcValue) Slice(start, end, step int) starlark.Value {
	ids := r.s.c.IDs()
	var sel []int
	for i := start; (step > 0 && i < end) || (step < 0 && i > end); i += step {
		sel = append(sel, ids[i])
	}
	if start == 0 && end == len(ids) && step == 1 {
		return &viewValue{s: r.s, t: client.All}
	}
	return &viewValue{s: r.s, t: client.Engines(sel...)}
}

func (r *rcValue) AttrNames() []string {
	return slices.Sorted(slices.Values(append([]string{"ids", "jobs", "job", "wait"}, viewMethods...)))
}

func (r *rcValue) Attr(name string) (starlark.Value, error) {
	switch name {
	case "ids":
		ids := r.s.c.IDs()
		l := make([]starlark.Value, len(ids))
		for i, id := range ids {
			l[i] = starlark.MakeInt(id)
		}
		return starlark.NewList(l), nil
	case "jobs":
		return builtin("rc.jobs", func(_ *starlark.Thread, args starlark.Tuple) (starlark.Value, error) {
			var out []any
			for _, j := range r.s.c.Jobs() {
				out = append(out, map[string]any{"id": int64(j.ID), "size": int64(j.Size), "engines": toAny(j.Engines),
					"ranks": toAny(j.Ranks), "hosts": toAnyStr(j.Hosts)})
			}
			return cell.ToStarlark(out)
		}, 0), nil
	case "job":
		return starlark.NewBuiltin("rc.job", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var n int
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &n); err != nil {
				return nil, err
			}
			return newJobValue(r.s, n), nil
		}), nil
	case "wait":
		return builtin("rc.wait", func(thread *starlark.Thread, args starlark.Tuple) (starlark.Value, error) {
			var n int
			if err := starlark.UnpackPositionalArgs("rc.wait", args, nil, 1, &n); err != nil {
				return nil, err
			}
			return starlark.None, r.s.c.WaitForEngines(threadContext(thread), n)
		}, -1), nil
	}
	return (&viewValue{s: r.s, t: client.All}).Attr(name)
}

// viewValue is a set of engines in the console: rc[:], rc[0], rc.job(1).
type viewValue struct {
	s *Session
	t client.Target
}

var viewMethods = []string{"abort", "apply", "execute", "interrupt", "pull", "push", "targets"}

func (v *viewValue) String() string        { return fmt.Sprintf("<view of %s>", v.t) }
func (v *viewValue) Type() string          { return "view" }
func (v *viewValue) Freeze()               {}
func (v *viewValue) Truth() starlark.Bool  { return true }
func (v *viewValue) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable type: view") }
func (v *viewValue) AttrNames() []string   { return viewMethods }

func (v *viewValue) Attr(name string) (starlark.Value, error) {
	dv := v.s.c.DirectView(v.t)
	switch name {
	case "targets":
		ids, err := dv.Targets()
		if err != nil {
			return nil, err
		}
		return cell.ToStarlark(toAny(ids))
	case "pull":
		return builtin("pull", func(thread *starlark.Thread, args starlark.Tuple) (starlark.Value, error) {
			names, err := stringArgs("pull", args)
			if err != nil {
				return nil, err
			}
			return v.s.byEngine(thread, v.t, func(ctx context.Context) (*client.AsyncResult, error) { return dv.Pull(ctx, names...) })
		}, -1), nil
	case "push":
		return builtin("push", func(thread *starlark.Thread, args starlark.Tuple) (starlark.Value, error) {
			if len(args) != 1 {
				return nil, fmt.Errorf("push: want one dict of names to values")
			}
			g, err := cell.FromStarlark(args[0])
			m, ok := g.(map[string]any)
			if err != nil || !ok {
				return nil, fmt.Errorf("push: want a dict with string keys, not %s", args[0].Type())
			}
			if _, err := v.s.byEngine(thread, v.t, func(ctx context.Context) (*client.AsyncResult, error) { return dv.Push(ctx, m) }); err != nil {
				return nil, err
			}
			return starlark.None, nil
		}, -1), nil
	case "apply":
		return builtin("apply", func(thread *starlark.Thread, args starlark.Tuple) (starlark.Value, error) {
			fn, in, err := callArgs("apply", args)
			if err != nil {
				return nil, err
			}
			return v.s.byEngine(thread, v.t, func(ctx context.Context) (*client.AsyncResult, error) { return dv.Apply(ctx, fn, in...) })
		}, -1), nil
	case "execute":
		return builtin("execute", func(thread *starlark.Thread, args starlark.Tuple) (starlark.Value, error) {
			var code string
			if err := starlark.UnpackPositionalArgs("execute", args, nil, 1, &code); err != nil {
				return nil, err
			}
			return v.s.byEngine(thread, v.t, func(ctx context.Context) (*client.AsyncResult, error) { return dv.Execute(ctx, code) })
		}, -1), nil
	case "interrupt":
		return builtin("interrupt", func(thread *starlark.Thread, _ starlark.Tuple) (starlark.Value, error) {
			return starlark.None, dv.Interrupt(threadContext(thread))
		}, 0), nil
	case "abort":
		return builtin("abort", func(thread *starlark.Thread, _ starlark.Tuple) (starlark.Value, error) {
			return starlark.None, dv.Abort(threadContext(thread))
		}, 0), nil
	}
	return nil, nil
}

// byEngine waits for a call from the console (Ctrl-C interrupts it) and
// returns its results as a dict by engine id; output the engines printed
// goes to the console first.
func (s *Session) byEngine(thread *starlark.Thread, t client.Target, call func(context.Context) (*client.AsyncResult, error)) (starlark.Value, error) {
	streamed := s.begin(t)
	defer s.end()
	r, err := call(threadContext(thread))
	if err != nil {
		return nil, err
	}
	ctx := threadContext(thread)
	if err := s.wait(ctx, r); err != nil {
		return nil, err
	}
	for _, md := range r.Metadata() {
		if md.Stdout != "" && !streamed {
			fmt.Fprint(s.out, prefixLines(fmt.Sprintf("[%d] ", md.Engine), md.Stdout))
		}
	}
	values, err := client.Results[any](ctx, r)
	if err != nil {
		return nil, err
	}
	d := starlark.NewDict(len(values))
	ids := make([]int, 0, len(values))
	for id := range values {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		sv, err := cell.ToStarlark(values[id])
		if err != nil {
			sv = starlark.String(fmt.Sprint(values[id]))
		}
		d.SetKey(starlark.MakeInt(id), sv)
	}
	return d, nil
}

// prefixLines puts prefix before each line of text.
func prefixLines(prefix, text string) string {
	var b strings.Builder
	for line := range strings.Lines(text) {
		b.WriteString(prefix)
		b.WriteString(strings.TrimSuffix(line, "\n"))
		b.WriteByte('\n')
	}
	return b.String()
}

// builtin makes a Starlark builtin of positional arguments; n is their
// number, or -1 for any.
func builtin(name string, f func(*starlark.Thread, starlark.Tuple) (starlark.Value, error), n int) *starlark.Builtin {
	return starlark.NewBuiltin(name, func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if len(kwargs) > 0 {
			return nil, fmt.Errorf("%s: takes no keyword arguments", name)
		}
		if n >= 0 && len(args) != n {
			return nil, fmt.Errorf("%s: takes %d arguments, got %d", name, n, len(args))
		}
		return f(thread, args)
	})
}

// threadContext is the context of the input being evaluated.
func threadContext(thread *starlark.Thread) context.Context {
	if ctx, ok := thread.Local("ctx").(context.Context); ok {
		return ctx
	}
	return context.Background()
}

func toAny(ids []int) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = int64(id)
	}
	return out
}

func toAnyStr(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
