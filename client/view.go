package client

import (
	"context"
	"fmt"
	"reflect"
	"slices"

	"github.com/ipcluster/ipcluster/wire"
)

// DirectView addresses a fixed set of engines: every call runs on each of
// them. Methods return at once; the AsyncResult collects the answers.
type DirectView struct {
	c       *Client
	targets Target
	opts    callOptions
}

// DirectView returns a view of the target engines (All if t is nil). The
// target is resolved at each call, so All means the engines registered then.
func (c *Client) DirectView(t Target) *DirectView {
	if t == nil {
		t = All
	}
	return &DirectView{c: c, targets: t}
}

// With returns a copy of the view whose calls use opts (Timeout).
func (v *DirectView) With(opts ...Option) *DirectView {
	cp := *v
	for _, o := range opts {
		o.apply(&cp.opts)
	}
	return &cp
}

// Targets returns the engine ids the view names now.
func (v *DirectView) Targets() ([]int, error) { return v.c.resolve(v.targets) }

// request builds a work message.
func (c *Client) request(kind wire.Type, targets []int, balanced bool, o callOptions, content []byte, bufs [][]byte) *wire.Message {
	h := c.session.Header(kind)
	h.Targets, h.Balanced, h.Timeout = targets, balanced, o.timeout
	if balanced {
		h.Retries = o.retries
	}
	return &wire.Message{Header: h, Content: content, Buffers: bufs}
}

// fanOut sends one request to every target.
func (v *DirectView) fanOut(ctx context.Context, kind wire.Type, content []byte, bufs [][]byte, single bool) (*AsyncResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ids, err := v.Targets()
	if err != nil {
		return nil, err
	}
	m := v.c.request(kind, ids, false, v.opts, content, bufs)
	r := newResult(v.c, kind)
	r.single = single
	for _, e := range ids {
		r.add(m.ID, e)
	}
	return r, v.c.submit(r, m)
}

// Apply calls the registered function fn with args on each target, or,
// where no function of that name is registered, the Starlark function fn
// that a cell defined.
func (v *DirectView) Apply(ctx context.Context, fn string, args ...any) (*AsyncResult, error) {
	content, bufs, err := wire.EncodeApply(fn, args)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return v.fanOut(ctx, wire.Apply, content, bufs, false)
}

// Push assigns the variables in each target's namespace. Numeric slices
// are sent as raw arrays without copying: do not change them until the
// result is ready.
func (v *DirectView) Push(ctx context.Context, vars map[string]any) (*AsyncResult, error) {
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range vars {
			if !yield(k) {
				return
			}
		}
	})
	values := make([]any, len(names))
	for i, n := range names {
		values[i] = vars[n]
	}
	content, bufs, err := wire.EncodePush(names, values)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return v.fanOut(ctx, wire.Push, content, bufs, false)
}

// Pull reads variables from each target's namespace: for one name its
// value, for several a list of values in the order asked.
func (v *DirectView) Pull(ctx context.Context, names ...string) (*AsyncResult, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("client: Pull needs at least one name")
	}
	return v.fanOut(ctx, wire.Pull, wire.EncodePull(names), nil, len(names) == 1)
}

// Execute runs a Starlark code cell on each target, in the engine's
// namespace: variables a cell assigns stay for later cells and for Pull,
// and pushed values are variables of cells (numeric slices as arrays over
// the same memory). What the cell prints streams to the client as the
// cell runs (Options.OnOutput, and Metadata's Stdout); if the last
// statement is an expression, its value is the result. A cell that fails
// raises a *RemoteError with the Starlark backtrace; an interrupt ends a
// running cell.
//
// Cells see the modules engine (id, host, pid, job, rank, size) and, in
// builds with MPI, mpi (rank, size, barrier, bcast, allreduce, gather,
// allgather); registered functions as fn.name(...) or call("name", ...).
func (v *DirectView) Execute(ctx context.Context, code string) (*AsyncResult, error) {
	return v.fanOut(ctx, wire.Execute, wire.EncodeExecute("", code), nil, false)
}

// ExecuteNamed is Execute with the name that errors and backtraces give
// the cell, such as the file its code came from.
func (v *DirectView) ExecuteNamed(ctx context.Context, name, code string) (*AsyncResult, error) {
	return v.fanOut(ctx, wire.Execute, wire.EncodeExecute(name, code), nil, false)
}

// Clear empties each target's namespace.
func (v *DirectView) Clear(ctx context.Context) (*AsyncResult, error) {
	return v.fanOut(ctx, wire.Clear, nil, nil, false)
}

// Scatter splits the slice items into one contiguous part per target, in
// target order, as evenly as possible, and assigns each part to name on
// its engine. Parts of numeric slices travel as raw arrays.
func (v *DirectView) Scatter(ctx context.Context, name string, items any) (*AsyncResult, error) {
	ids, parts, err := v.split(ctx, items)
	if err != nil {
		return nil, err
	}
	r := newResult(v.c, wire.Push)
	msgs := make([]*wire.Message, len(ids))
	for i, e := range ids {
		content, bufs, err := wire.EncodePush([]string{name}, []any{parts[i].Interface()})
		if err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
		msgs[i] = v.c.request(wire.Push, []int{e}, false, v.opts, content, bufs)
		r.add(msgs[i].ID, e)
	}
	return r, v.c.submit(r, msgs...)
}

// split resolves the targets and cuts items into one part for each.
func (v *DirectView) split(ctx context.Context, items any) ([]int, []reflect.Value, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	ids, err := v.Targets()
	if err != nil {
		return nil, nil, err
	}
	parts, err := split(items, len(ids))
	return ids, parts, err
}

// split cuts a slice into n contiguous parts whose lengths differ by at
// most one, the longer ones first.
func split(items any, n int) ([]reflect.Value, error) {
	s := reflect.ValueOf(items)
	if s.Kind() != reflect.Slice && s.Kind() != reflect.Array {
		return nil, fmt.Errorf("client: %T is not a slice", items)
	}
	parts := make([]reflect.Value, n)
	lo := 0
	for i := range n {
		size := s.Len() / n
		if i < s.Len()%n {
			size++
		}
		parts[i] = s.Slice(lo, lo+size)
		lo += size
	}
	return parts, nil
}

// Gather pulls name from each target and concatenates the values in
// target order: slices of one type make a slice of that type, anything
// else a []any.
func (v *DirectView) Gather(ctx context.Context, name string) (any, error) {
	r, err := v.Pull(ctx, name)
	if err != nil {
		return nil, err
	}
	res, err := r.Get(ctx)
	if err != nil {
		return nil, err
	}
	ids, _ := v.Targets()
	var parts []any
	for _, e := range ids {
		if p, ok := res[e]; ok {
			parts = append(parts, p)
		}
	}
	return concat(parts), nil
}

// concat joins slices of one type, or lists the values.
func concat(parts []any) any {
	if len(parts) == 0 {
		return []any{}
	}
	t := reflect.TypeOf(parts[0])
	same := t != nil && t.Kind() == reflect.Slice
	for _, p := range parts {
		same = same && reflect.TypeOf(p) == t
	}
	if same {
		out := reflect.MakeSlice(t, 0, 0)
		for _, p := range parts {
			out = reflect.AppendSlice(out, reflect.ValueOf(p))
		}
		return out.Interface()
	}
	var out []any
	for _, p := range parts {
		if s := reflect.ValueOf(p); s.Kind() == reflect.Slice && s.Type().Elem().Kind() == reflect.Interface {
			for i := range s.Len() {
				out = append(out, s.Index(i).Interface())
			}
		} else {
			out = append(out, p)
		}
	}
	return out
}

// Map calls fn on each item of the slice items: the items are split into
// one contiguous part per target, each engine maps its part, and the
// results come back in input order.
func (v *DirectView) Map(ctx context.Context, fn string, items any) (*MapResult, error) {
	ids, parts, err := v.split(ctx, items)
	if err != nil {
		return nil, err
	}
	mr := newMapResult(len(ids), false)
	start := 0
	for i, e := range ids {
		part := toAny(parts[i])
		content, bufs, err := wire.EncodeMap(fn, part)
		if err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
		m := v.c.request(wire.Map, []int{e}, false, v.opts, content, bufs)
		r := mr.chunk(i, start, len(part), v.c)
		r.add(m.ID, e)
		if err := v.c.submit(r, m); err != nil {
			return nil, err
		}
		start += len(part)
	}
	return mr, nil
}

func toAny(s reflect.Value) []any {
	out := make([]any, s.Len())
	for i := range out {
		out[i] = s.Index(i).Interface()
	}
	return out
}

// Interrupt stops the task running on each target.
func (v *DirectView) Interrupt(ctx context.Context) error { return v.c.Interrupt(ctx, v.targets) }

// Abort drops every task queued on the targets and not started.
func (v *DirectView) Abort(ctx context.Context) error {
	ids, err := v.Targets()
	if err != nil {
		return err
	}
	return v.c.control(ctx, wire.Abort, ids, nil, nil)
}

// Shutdown stops the target engines.
func (v *DirectView) Shutdown(ctx context.Context) error { return v.c.Shutdown(ctx, v.targets) }

// LoadBalancedView sends each task to one engine chosen by the
// controller's scheduler.
type LoadBalancedView struct {
	c       *Client
	targets Target // nil: any engine
	opts    callOptions
}

// LoadBalancedView returns a view whose tasks may run on any engine.
func (c *Client) LoadBalancedView() *LoadBalancedView {
	return &LoadBalancedView{c: c}
}

// With returns a copy of the view whose tasks use opts: Targets restricts
// the engines the scheduler may choose, Timeout and Retries apply to each
// task.
func (v *LoadBalancedView) With(opts ...Option) *LoadBalancedView {
	cp := *v
	for _, o := range opts {
		if t, ok := o.(targetsOption); ok {
			cp.targets = t.t
			if t.t == All {
				cp.targets = nil
			}
			continue
		}
		o.apply(&cp.opts)
	}
	return &cp
}

func (v *LoadBalancedView) allowed() ([]int, error) {
	if v.targets == nil {
		return nil, nil
	}
	return v.c.resolve(v.targets)
}

// Apply runs fn with args on one engine.
func (v *LoadBalancedView) Apply(ctx context.Context, fn string, args ...any) (*AsyncResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	allowed, err := v.allowed()
	if err != nil {
		return nil, err
	}
	content, bufs, err := wire.EncodeApply(fn, args)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	m := v.c.request(wire.Apply, allowed, true, v.opts, content, bufs)
	r := newResult(v.c, wire.Apply)
	r.add(m.ID, -1)
	return r, v.c.submit(r, m)
}

// Map calls fn on each item of the slice items, sending the items in
// chunks, each to one engine chosen by the scheduler.
func (v *LoadBalancedView) Map(ctx context.Context, fn string, items any, opts ...MapOption) (*MapResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var mo mapOptions
	for _, o := range opts {
		o.applyMap(&mo)
	}
	allowed, err := v.allowed()
	if err != nil {
		return nil, err
	}
	s := reflect.ValueOf(items)
	if s.Kind() != reflect.Slice && s.Kind() != reflect.Array {
		return nil, fmt.Errorf("client: %T is not a slice", items)
	}
	n := s.Len()
	chunk := mo.chunk
	if chunk <= 0 {
		engines := len(allowed)
		if engines == 0 {
			engines = max(1, len(v.c.IDs()))
		}
		chunk = min(max(1, (n+4*engines-1)/(4*engines)), 10000)
	}
	nchunks := (n + chunk - 1) / chunk
	mr := newMapResult(nchunks, mo.unordered)
	msgs := make([]*wire.Message, 0, nchunks)
	for i := range nchunks {
		lo, hi := i*chunk, min(n, (i+1)*chunk)
		content, bufs, err := wire.EncodeMap(fn, toAny(s.Slice(lo, hi)))
		if err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
		m := v.c.request(wire.Map, allowed, true, v.opts, content, bufs)
		r := mr.chunk(i, lo, hi-lo, v.c)
		r.add(m.ID, -1)
		msgs = append(msgs, m)
		if err := v.c.submit(r, m); err != nil {
			return nil, err
		}
	}
	return mr, nil
}
