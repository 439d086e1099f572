package engine

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipcluster/ipcluster/engine/cell"
	"github.com/ipcluster/ipcluster/wire"
)

// Steering lets clients look into a program that runs its own loop, such
// as a simulation's time steps, and change it, at the points where the
// program calls Steer. Requests wait on the engine between steering
// points; a request addressed to several engines (every rank of a job) is
// applied by all of them at the same step, which they agree on through the
// controller without the program's involvement (docs/architecture.md,
// "Steering").
//
// The agreement works so: when a request arrives, the engine's I/O
// goroutine tells the controller a horizon, the step before which the
// program can still apply it (the next steering point, or, at full speed,
// about ten milliseconds of steps later), and the program promises not to
// pass its horizon before it learns the agreed step. The controller
// answers every engine with the largest horizon, which none of them has
// passed. A program blocked in MPI waiting for a neighbour still has its
// I/O goroutine answer for it, so the agreement never waits on the
// simulation itself.

// steering is the steering state shared by the program's goroutine, in
// Steer, and the engine's I/O goroutines.
type steering struct {
	// step is the step of the last steering point, wire.NoStep before
	// the first; pending is set while Steer must look at the state: a
	// request is queued, or the program is paused or counting steps.
	// Steer reads them without the lock: see receive for why that is
	// safe.
	step    atomic.Int64
	pending atomic.Bool

	mu       sync.Mutex
	wake     *sync.Cond
	ctx      context.Context // the engine's Run, for calls made at steering points
	holding  bool            // the program waits in Steer
	queue    []*steerTask    // received, not yet applied, in order of arrival
	paused   bool
	stepping int        // steering points still to pass after a step request; 0 for none
	stepper  *steerTask // the step request to answer when they have passed
	closed   bool       // the engine has stopped: Steer returns at once
	stopped  bool       // a stop request was applied: Steer returns false
	rate     rateMeter
}

// steerTask is one request waiting for its steering point.
type steerTask struct {
	m         *wire.Message
	req       wire.SteerRequest
	horizon   int64 // the program holds at the first steering point at or after it until committed
	at        int64 // the agreed step
	committed bool
}

// leadTime is how far ahead, in time, a running program's horizon lies: a
// request is applied that much later, and the agreement has that long to
// finish before the program has to wait for it.
const leadTime = 10 * time.Millisecond

// maxLead bounds the horizon's distance in steps.
const maxLead = 1 << 20

func (s *steering) init() {
	s.wake = sync.NewCond(&s.mu)
	s.step.Store(wire.NoStep)
}

// open readies the state for a Run.
func (s *steering) open(ctx context.Context) {
	s.mu.Lock()
	s.ctx, s.closed = ctx, false
	s.mu.Unlock()
}

// close releases a program waiting in Steer and drops what is queued, as
// the engine stops: its replies could not be sent. A paused program runs
// on: with no controller, nobody could resume it.
func (s *steering) close() {
	s.mu.Lock()
	s.closed = true
	s.queue, s.paused, s.stepping, s.stepper = nil, false, 0, nil
	s.pending.Store(s.stopped) // a stopped program keeps hearing so
	s.wake.Broadcast()
	s.mu.Unlock()
}

// horizon returns the step the program will not pass before the request
// received now is committed. Called with s.mu held, after pending is set.
func (s *steering) horizon(now time.Time) int64 {
	// Steer stores the step, then loads pending; receive stores pending,
	// then loads the step. So a steering point that missed the request
	// has a step no greater than the one loaded here, and every later one
	// sees it: cur+1 is safe. While the program holds in Steer, or is
	// paused there (it may be between answering the pause and holding),
	// it will look again before it leaves: cur itself is, and must be, or
	// a paused job could never reach the agreed step.
	cur := s.step.Load()
	switch {
	case cur == wire.NoStep:
		return wire.NoStep
	case s.holding || s.paused:
		return cur
	}
	return cur + s.rate.lead(now, cur)
}

// mustHold reports whether the program, at step, must wait: paused, or a
// request not yet committed has a horizon at or before step, or a
// committed one is due (applied by the caller's next round). Called with
// s.mu held.
func (s *steering) mustHold(step int64) bool {
	if s.closed || s.stopped {
		return false
	}
	if s.paused {
		return true
	}
	for _, t := range s.queue {
		if !t.committed && step >= t.horizon || t.committed && t.at <= step {
			return true
		}
	}
	return false
}

// due removes and returns the first queued request if it is committed to
// a step at or before step. Called with s.mu held.
func (s *steering) due(step int64) *steerTask {
	if s.closed || len(s.queue) == 0 {
		return nil
	}
	t := s.queue[0]
	if !t.committed || t.at > step {
		return nil
	}
	s.queue[0] = nil
	s.queue = s.queue[1:]
	return t
}

func (s *steering) find(id string) int {
	return slices.IndexFunc(s.queue, func(t *steerTask) bool { return t.m.ID == id })
}

// rateMeter estimates the rate of steering points from samples of the
// step, taken by the I/O goroutine (at heartbeats and requests).
type rateMeter struct {
	t0   time.Time
	s0   int64
	rate float64 // steps per second, 0 until measured
}

// sample notes the step at now.
func (r *rateMeter) sample(now time.Time, step int64) {
	switch {
	case step == wire.NoStep:
	case r.t0.IsZero() || step < r.s0:
		r.t0, r.s0 = now, step
	case now.Sub(r.t0) >= 100*time.Millisecond:
		r.rate = float64(step-r.s0) / now.Sub(r.t0).Seconds()
		r.t0, r.s0 = now, step
	}
}

// lead is how many steps ahead of step a horizon lies: leadTime's worth at
// the measured rate, at least 1.
func (r *rateMeter) lead(now time.Time, step int64) int64 {
	r.sample(now, step)
	return min(maxLead, 1+int64(r.rate*leadTime.Seconds()))
}

// Steer is a steering point: call it from the program's loop, with a step
// number that increases from call to call, and from one goroutine. It
// applies the steering requests due at this step: reading and assigning
// exposed variables, calls of registered functions, Starlark cells,
// checkpoints, pause and resume. It holds while the program is paused,
// and, briefly, when a request for several engines reaches this step
// before they have agreed when to apply it.
//
// Steer returns false once a client has asked the job to stop (as
// client.Job.Stop does): at the same step on every rank, so that the
// ranks leave their loop together, as an MPI program must.
//
//	for step := 1; eng.Steer(step); step++ { sim.Advance() }
//
// With nothing to do, Steer costs a few nanoseconds, and it never waits
// for a client: only a pause, which a client asked for, holds the program
// for long.
func (e *Engine) Steer(step int) bool {
	s := &e.steer
	s.step.Store(int64(step))
	if !s.pending.Load() {
		return true
	}
	return e.steerSlow(int64(step))
}

// steerSlow is Steer with something to do.
func (e *Engine) steerSlow(step int64) bool {
	s := &e.steer
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	if s.stepping > 0 {
		if s.stepping--; s.stepping == 0 {
			s.paused = true
			if t := s.stepper; t != nil {
				s.stepper = nil
				s.mu.Unlock()
				e.replySteer(t, step, time.Now(), nil)
				s.mu.Lock()
			}
		}
	}
	for {
		for t := s.due(step); t != nil; t = s.due(step) {
			s.mu.Unlock()
			e.applySteer(t, step)
			s.mu.Lock()
		}
		if !s.mustHold(step) {
			s.pending.Store(s.stopped || !s.closed && (len(s.queue) > 0 || s.paused || s.stepping > 0))
			if s.stopped {
				e.refuseQueued(step)
			}
			return !s.stopped
		}
		s.holding = true
		s.wake.Wait()
		s.holding = false
	}
}

// refuseQueued answers the requests still queued when the program stopped
// steering at step. Called with e.steer.mu held.
func (e *Engine) refuseQueued(step int64) {
	s := &e.steer
	for _, t := range s.queue {
		e.courier.Flush(steerError(e, t.m.ID, time.Now(), e.stoppedError(step)))
	}
	s.queue = nil
}

// stoppedError is the answer to a request that came after a stop.
func (e *Engine) stoppedError(step int64) error {
	return &taskError{kind: "SteerStopped", msg: fmt.Sprintf("engine %d's program has stopped steering (at step %d)", e.ID(), step)}
}

// steerable reports whether the program may call Steer: the engine was
// made by Start, or the program has exposed variables or reached a
// steering point.
func (e *Engine) steerable() bool {
	if e.background != nil || e.steer.step.Load() != wire.NoStep {
		return true
	}
	e.xmu.RLock()
	defer e.xmu.RUnlock()
	return len(e.exposed) > 0 || e.checkpoint != nil
}

// receiveSteer takes a Steer request from the controller, on the I/O
// goroutine: a status request is answered at once; others are queued for
// the program's steering points, and acknowledged with a horizon.
func (e *Engine) receiveSteer(m *wire.Message) {
	now := time.Now()
	req, err := wire.DecodeSteer(m)
	if err == nil && !e.steerable() {
		err = &taskError{kind: "NotSteering", msg: fmt.Sprintf("engine %d does not steer: its program serves "+
			"work without steering points (a steered program makes its engine with engine.Start and calls Steer in its loop)", e.ID())}
	}
	if err != nil {
		e.post(steerError(e, m.ID, now, err))
		return
	}
	s := &e.steer
	if req.Op == wire.SteerStatus {
		s.mu.Lock()
		s.rate.sample(now, s.step.Load())
		st := e.steerStatus()
		s.mu.Unlock()
		content, bufs, err := wire.EncodeResults([]any{st})
		if err != nil {
			e.post(steerError(e, m.ID, now, err))
			return
		}
		h := e.header(wire.TaskReply, m.ID)
		h.Status, h.Started, h.Completed = wire.StatusOK, now.UnixNano(), time.Now().UnixNano()
		e.post(&wire.Message{Header: h, Content: content, Buffers: bufs})
		return
	}
	s.mu.Lock()
	if s.closed || s.stopped {
		err := error(errStopping)
		if s.stopped {
			err = e.stoppedError(s.step.Load())
		}
		s.mu.Unlock()
		e.post(steerError(e, m.ID, now, err))
		return
	}
	s.pending.Store(true) // before the horizon reads the step
	t := &steerTask{m: m, req: req, horizon: s.horizon(now)}
	s.queue = append(s.queue, t)
	s.mu.Unlock()
	content, _ := wire.EncodeContent(wire.SteerAckContent{Horizon: t.horizon})
	e.post(&wire.Message{Header: e.header(wire.SteerAck, m.ID), Content: content})
}

// commitSteer takes the controller's decision on a queued request: the
// step to apply it at, or its cancellation.
func (e *Engine) commitSteer(m *wire.Message) {
	var c wire.SteerCommitContent
	if err := wire.DecodeContent(m, &c); err != nil {
		e.log.Warn("bad steering commit", "err", err)
		return
	}
	s := &e.steer
	s.mu.Lock()
	i := s.find(m.Parent)
	if i < 0 {
		s.mu.Unlock()
		e.log.Warn("a steering commit for no queued request", "request", m.Parent)
		return
	}
	t := s.queue[i]
	if c.Cancel != "" {
		s.queue = slices.Delete(s.queue, i, i+1)
		s.wake.Broadcast()
		s.mu.Unlock()
		e.post(steerError(e, t.m.ID, time.Now(), &taskError{kind: "SteerCancelled", msg: c.Cancel}))
		return
	}
	if c.At < t.horizon {
		e.log.Warn("a steering commit before the horizon", "request", m.Parent, "at", c.At, "horizon", t.horizon)
	}
	t.at, t.committed = c.At, true
	s.wake.Broadcast()
	s.mu.Unlock()
}

// steerStatus reports the steering state. Called with e.steer.mu held.
func (e *Engine) steerStatus() wire.SteerStatusContent {
	s := &e.steer
	step := s.step.Load()
	st := wire.SteerStatusContent{Steering: step != wire.NoStep, Paused: s.paused, Pending: len(s.queue),
		StepsPerSec: s.rate.rate, Waiting: s.holding && !s.paused, Stopped: s.stopped}
	if st.Steering {
		st.Step = step
	}
	e.xmu.RLock()
	for _, name := range slices.Sorted(maps.Keys(e.exposed)) {
		x := e.exposed[name]
		st.Exposed = append(st.Exposed, wire.ExposedVar{Name: name, Type: x.v.Type().String(), Shape: x.shape, ReadOnly: x.readOnly})
	}
	st.Checkpointer = e.checkpoint != nil
	e.xmu.RUnlock()
	return st
}

// applySteer carries out a request at step, on the program's goroutine,
// and answers it. Called without e.steer.mu.
func (e *Engine) applySteer(t *steerTask, step int64) {
	start := time.Now()
	s := &e.steer
	var out []any
	var err error
	switch t.req.Op {
	case wire.SteerGet:
		out, err = e.getExposed(t.req.Names)
	case wire.SteerSet:
		err = e.setExposed(t.req.Names, t.req.Values)
	case wire.SteerCall:
		var v any
		if v, err = e.steerCall(t); err == nil {
			out = []any{v}
		}
	case wire.SteerExec:
		var v any
		if v, err = e.steerCell(t); err == nil {
			out = []any{v}
		}
	case wire.SteerCheckpoint:
		err = e.runCheckpoint(t.req.Dir)
	case wire.SteerPause, wire.SteerResume, wire.SteerStep, wire.SteerStop:
		s.mu.Lock()
		if s.stepper != nil { // a pause, resume or stop ends a step request early
			stepper := s.stepper
			s.stepper = nil
			defer e.replySteer(stepper, step, start, nil)
		}
		s.paused, s.stepping = t.req.Op == wire.SteerPause, 0
		s.stopped = s.stopped || t.req.Op == wire.SteerStop
		if t.req.Op == wire.SteerStep {
			s.stepping, s.stepper = t.req.Steps, t
		}
		s.mu.Unlock()
		if t.req.Op == wire.SteerStep {
			return // answered when the steps have passed
		}
	default:
		err = fmt.Errorf("steering operation %q is not applied at steering points", t.req.Op)
	}
	e.replySteer(t, step, start, err, out...)
}

// replySteer answers a request applied at step: its result is the step
// followed by values, or err. The reply leaves before this returns, so
// values may view memory the program changes afterwards.
func (e *Engine) replySteer(t *steerTask, step int64, start time.Time, err error, values ...any) {
	if err != nil {
		e.courier.Flush(steerError(e, t.m.ID, start, err))
		return
	}
	content, bufs, err := wire.EncodeResults(append([]any{step}, values...))
	if err != nil {
		e.courier.Flush(steerError(e, t.m.ID, start, typeError("cannot send the result: %v", err)))
		return
	}
	h := e.header(wire.TaskReply, t.m.ID)
	h.Status, h.Started, h.Completed = wire.StatusOK, start.UnixNano(), time.Now().UnixNano()
	e.courier.Flush(&wire.Message{Header: h, Content: content, Buffers: bufs})
}

// steerError is the error reply to steering request id.
func steerError(e *Engine, id string, start time.Time, err error) *wire.Message {
	h := e.header(wire.TaskReply, id)
	h.Status, h.Started, h.Completed = wire.StatusError, start.UnixNano(), time.Now().UnixNano()
	content, _ := wire.EncodeContent(errorInfo(err))
	return &wire.Message{Header: h, Content: content}
}

// steerCall calls a registered function at a steering point.
func (e *Engine) steerCall(t *steerTask) (v any, err error) {
	f, err := e.lookup(t.req.Fn)
	if err != nil {
		return nil, err
	}
	defer func() {
		if p := recover(); p != nil {
			v, err = nil, &taskError{kind: "Panic", msg: fmt.Sprint(p)}
		}
	}()
	return f.call(e.steerContext(), t.req.Args)
}

// steerContext is the context of calls made at steering points: the
// engine's Run.
func (e *Engine) steerContext() context.Context {
	e.steer.mu.Lock()
	defer e.steer.mu.Unlock()
	if e.steer.ctx == nil {
		return context.Background()
	}
	return e.steer.ctx
}

// runCheckpoint calls the program's checkpoint function.
func (e *Engine) runCheckpoint(dir string) (err error) {
	e.xmu.RLock()
	fn := e.checkpoint
	e.xmu.RUnlock()
	if fn == nil {
		return &taskError{kind: "NotSupported", msg: fmt.Sprintf("engine %d's program sets no checkpoint function (engine.OnCheckpoint)", e.ID())}
	}
	defer func() {
		if p := recover(); p != nil {
			err = &taskError{kind: "Panic", msg: fmt.Sprintf("the checkpoint function panicked: %v", p)}
		}
	}()
	return fn(e.steerContext(), dir)
}

// steerCell runs a Starlark cell at a steering point, in a namespace of
// its own (work on the engine's queue runs meanwhile, in the other), with
// the exposed variables as globals: arrays view the program's memory, and
// scalars the cell assigns are written back.
func (e *Engine) steerCell(t *steerTask) (any, error) {
	e.xmu.RLock()
	exposed := maps.Clone(e.exposed)
	e.xmu.RUnlock()
	ns := e.steerNS
	before := make(map[string]any, len(exposed))
	for name, x := range exposed {
		ns.Set(name, x.v.Interface())
		before[name], _, _ = ns.Get(name) // as the cell's own values read back
	}
	e.steerCells++
	file := fmt.Sprintf("<steering cell %d>", e.steerCells)
	out, err := ns.Exec(e.steerContext(), file, t.req.Code, func(line string) {
		e.emitOutput(t.m.ID, "stdout", []byte(line+"\n"))
	})
	if ce, ok := err.(*cell.Error); ok {
		err = &taskError{kind: ce.Kind, msg: ce.Message, stack: ce.Backtrace}
	}
	// Write back what the cell assigned, even if it failed afterwards, as
	// a cell's other effects stay.
	for name, x := range exposed {
		g, ok, gerr := ns.Get(name)
		if !ok || gerr != nil || x.v.Kind() == reflect.Slice || reflect.DeepEqual(g, before[name]) {
			continue
		}
		if x.readOnly {
			err = typeError("variable %q is read-only", name)
			continue
		}
		if serr := x.assign(g); serr != nil && err == nil {
			err = serr
		}
	}
	return out, err
}
