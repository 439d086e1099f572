package client

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/ipcluster/ipcluster/wire"
)

// AsyncResult is the future result of one call: one task on each target
// engine, or one balanced task. Its methods are safe for concurrent use.
type AsyncResult struct {
	c         *Client
	kind      wire.Type
	single    bool // a Pull of one name: its value rather than a list
	ids       []string
	submitted time.Time
	onDone    func() // called once, when the last task finishes

	mu    sync.Mutex
	tasks []*taskState
	index map[taskKey]*taskState // of many tasks: the first of each key
	left  int
	done  chan struct{}
}

// taskKey finds a task: its request id and engine (-1 for a balanced
// task, whose engine is known only from its reply).
type taskKey struct {
	id     string
	engine int
}

// indexFrom is how many tasks a result has before find looks them up in
// an index rather than going through them all: a request to a thousand
// engines gets a thousand replies.
const indexFrom = 16

type taskState struct {
	id       string
	engine   int // -1 until a balanced task's reply names its engine
	balanced bool
	reply    *wire.Message
	err      error
	received time.Time
	stdout   []byte
	stderr   []byte
}

func newResult(c *Client, kind wire.Type) *AsyncResult {
	return &AsyncResult{c: c, kind: kind, submitted: time.Now(), done: make(chan struct{})}
}

// add expects a reply to request id from engine (-1: a balanced task).
func (r *AsyncResult) add(id string, engine int) {
	if len(r.ids) == 0 || r.ids[len(r.ids)-1] != id {
		r.ids = append(r.ids, id)
	}
	t := &taskState{id: id, engine: engine, balanced: engine < 0}
	r.tasks = append(r.tasks, t)
	r.left++
	if r.index != nil {
		r.indexTask(t)
	}
}

func (r *AsyncResult) indexTask(t *taskState) {
	k := taskKey{t.id, wire.NoEngine}
	if !t.balanced {
		k.engine = t.engine
	}
	if _, ok := r.index[k]; !ok {
		r.index[k] = t
	}
}

func (r *AsyncResult) requests() []string { return r.ids }

// find returns the task a message about request id from engine is for.
func (r *AsyncResult) find(id string, engine int) *taskState {
	match := func(t *taskState) bool {
		return t.id == id && (t.engine == engine || (t.balanced && t.reply == nil && t.err == nil))
	}
	if len(r.tasks) < indexFrom {
		for _, t := range r.tasks {
			if match(t) {
				return t
			}
		}
		return nil
	}
	if r.index == nil {
		r.index = make(map[taskKey]*taskState, len(r.tasks))
		for _, t := range r.tasks {
			r.indexTask(t)
		}
	}
	if t := r.index[taskKey{id, engine}]; t != nil && !t.balanced {
		return t
	}
	if t := r.index[taskKey{id, wire.NoEngine}]; t != nil && match(t) {
		return t
	}
	return nil
}

func (r *AsyncResult) deliver(m *wire.Message) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch m.Type {
	case wire.TaskReply:
		t := r.find(m.Parent, m.Engine)
		if t == nil || t.reply != nil || t.err != nil {
			return r.left == 0
		}
		if m.Engine >= 0 {
			t.engine = m.Engine
		}
		t.reply, t.received = m, time.Now()
		if m.Status != wire.StatusOK {
			var info wire.ErrorInfo
			if err := wire.DecodeContent(m, &info); err != nil {
				info = wire.ErrorInfo{Type: "ProtocolError", Message: err.Error()}
			}
			t.err = taskErr(m.Engine, m.Parent, info)
		}
		r.finishOne()
	case wire.Error: // the controller refused the request as a whole
		var info wire.ErrorInfo
		wire.DecodeContent(m, &info)
		err := &ControllerError{Type: info.Type, Message: info.Message}
		for _, t := range r.tasks {
			if t.id == m.Parent && t.reply == nil && t.err == nil {
				t.err, t.received = err, time.Now()
				r.finishOne()
			}
		}
	}
	return r.left == 0
}

// finishOne counts a finished task. Called with r.mu held.
func (r *AsyncResult) finishOne() {
	r.left--
	if r.left == 0 {
		close(r.done)
		if r.onDone != nil {
			r.onDone()
		}
	}
}

func (r *AsyncResult) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range r.tasks {
		if t.reply == nil && t.err == nil {
			t.err = err
			r.finishOne()
		}
	}
}

func (r *AsyncResult) output(o Output) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.find(o.TaskID, o.Engine)
	if t == nil {
		return
	}
	if o.Stream == "stderr" {
		t.stderr = append(t.stderr, o.Data...)
	} else {
		t.stdout = append(t.stdout, o.Data...)
	}
}

// ID returns the request's message id (the first, for a Scatter).
func (r *AsyncResult) ID() string { return r.ids[0] }

// IDs returns the message ids of the request's messages.
func (r *AsyncResult) IDs() []string { return append([]string(nil), r.ids...) }

// Done is closed when every task has finished.
func (r *AsyncResult) Done() <-chan struct{} { return r.done }

// Ready reports whether every task has finished.
func (r *AsyncResult) Ready() bool { return closed(r.done) }

// Wait waits until every task has finished, or ctx ends (a *TimeoutError
// for a deadline). Task failures are reported by Get, not Wait.
func (r *AsyncResult) Wait(ctx context.Context) error {
	if err := r.c.await(ctx, r.done); err != nil {
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return ctx.Err()
		}
		r.mu.Lock()
		n, left := len(r.tasks), r.left
		r.mu.Unlock()
		return &TimeoutError{Engine: -1, TaskID: r.ids[0], Message: fmt.Sprintf("%d of %d tasks finished", n-left, n), err: ctx.Err()}
	}
	return nil
}

// Get waits for the results and returns them keyed by engine id. If tasks
// failed, it returns the results of the others and an error: the task's
// own error for a single task, or a *CompositeError.
func (r *AsyncResult) Get(ctx context.Context) (map[int]any, error) {
	return Results[any](ctx, r)
}

// Value waits for the result of a single-task call (a balanced task, or a
// direct call on one engine).
func (r *AsyncResult) Value(ctx context.Context) (any, error) {
	var v any
	err := r.decodeSingle(ctx, reflect.ValueOf(&v).Elem())
	return v, err
}

func (r *AsyncResult) decodeSingle(ctx context.Context, dst reflect.Value) error {
	if len(r.tasks) != 1 {
		return fmt.Errorf("client: the call ran %d tasks; use Get for results by engine", len(r.tasks))
	}
	if err := r.Wait(ctx); err != nil {
		return err
	}
	t := r.tasks[0]
	if t.err != nil {
		return t.err
	}
	return r.decode(t, dst)
}

func (r *AsyncResult) combine(errs []error) error {
	switch {
	case len(errs) == 0:
		return nil
	case len(r.tasks) == 1:
		return errs[0]
	}
	return &CompositeError{Errors: errs, Tasks: len(r.tasks)}
}

// decode decodes a finished task's result into dst.
func (r *AsyncResult) decode(t *taskState, dst reflect.Value) error {
	res, err := wire.DecodeResult(t.reply)
	if err != nil {
		return err
	}
	switch {
	case res.Value != nil:
		return res.Value.DecodeValue(dst)
	case res.List != nil && r.single:
		if len(res.List) != 1 {
			return fmt.Errorf("client: %d values for one name", len(res.List))
		}
		return res.List[0].DecodeValue(dst)
	case res.List != nil:
		return decodeList(res.List, dst)
	}
	return nil // Push and Clear return nothing
}

// decodeList decodes values into dst, a slice or an interface (which gets
// a []any).
func decodeList(vals []wire.Value, dst reflect.Value) error {
	st := dst.Type()
	if dst.Kind() == reflect.Interface {
		st = reflect.TypeFor[[]any]()
	}
	if st.Kind() != reflect.Slice {
		return fmt.Errorf("client: a list of %d values cannot be decoded into %s", len(vals), dst.Type())
	}
	s := reflect.MakeSlice(st, len(vals), len(vals))
	for i, v := range vals {
		if err := v.DecodeValue(s.Index(i)); err != nil {
			return fmt.Errorf("item %d: %w", i, err)
		}
	}
	dst.Set(s)
	return nil
}

// Metadata describes one task of a call.
type Metadata struct {
	TaskID    string
	Engine    int    // -1 while a balanced task has no answer
	Status    string // "pending", "ok", "error" or "aborted"
	Submitted time.Time
	Started   time.Time // on the engine
	Completed time.Time // on the engine
	Received  time.Time
	Stdout    string // captured output
	Stderr    string
	Err       error
}

// Metadata returns what is known of each task so far, in target order.
func (r *AsyncResult) Metadata() []Metadata {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Metadata, len(r.tasks))
	for i, t := range r.tasks {
		md := Metadata{TaskID: t.id, Engine: t.engine, Status: "pending", Submitted: r.submitted,
			Received: t.received, Stdout: string(t.stdout), Stderr: string(t.stderr), Err: t.err}
		if t.reply != nil {
			md.Status = string(t.reply.Status)
			if t.reply.Started != 0 {
				md.Started = time.Unix(0, t.reply.Started)
			}
			if t.reply.Completed != 0 {
				md.Completed = time.Unix(0, t.reply.Completed)
			}
		} else if t.err != nil {
			md.Status = "error"
		}
		out[i] = md
	}
	return out
}

// Abort asks the controller to drop the call's tasks that have not
// started yet.
func (r *AsyncResult) Abort(ctx context.Context) error {
	return r.c.Abort(ctx, r.ids...)
}

// Result waits for a single-task call and decodes its result into a T.
func Result[T any](ctx context.Context, r *AsyncResult) (T, error) {
	var v T
	err := r.decodeSingle(ctx, reflect.ValueOf(&v).Elem())
	return v, err
}

// Results waits for a call and decodes each engine's result into a T.
func Results[T any](ctx context.Context, r *AsyncResult) (map[int]T, error) {
	if err := r.Wait(ctx); err != nil {
		return nil, err
	}
	out := make(map[int]T, len(r.tasks))
	var errs []error
	for _, t := range r.tasks {
		if t.err != nil {
			errs = append(errs, t.err)
			continue
		}
		var v T
		if err := r.decode(t, reflect.ValueOf(&v).Elem()); err != nil {
			errs = append(errs, fmt.Errorf("engine %d: %w", t.engine, err))
			continue
		}
		out[t.engine] = v
	}
	return out, r.combine(errs)
}

// ResultList waits for a call and decodes its results into a list in
// target order: rank order for a job's view. Like Results, it returns what
// succeeded (zero values in the places of failed tasks) and an error.
func ResultList[T any](ctx context.Context, r *AsyncResult) ([]T, error) {
	if err := r.Wait(ctx); err != nil {
		return nil, err
	}
	out := make([]T, len(r.tasks))
	var errs []error
	for i, t := range r.tasks {
		if t.err != nil {
			errs = append(errs, t.err)
			continue
		}
		if err := r.decode(t, reflect.ValueOf(&out[i]).Elem()); err != nil {
			errs = append(errs, fmt.Errorf("engine %d: %w", t.engine, err))
		}
	}
	return out, r.combine(errs)
}
