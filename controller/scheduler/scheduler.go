// Package scheduler is the controller's load-balancing task scheduler,
// written as a pure, deterministic state machine.
//
// # State machine
//
// A Scheduler owns no sockets, goroutines, clocks or random numbers. The
// controller feeds it events from a single goroutine (AddEngine,
// RemoveEngine, Submit, Finished, Abort, DirectSent, DirectDone), each of
// which may produce decisions; the controller drains them with Actions and
// carries them out (Assign: send the task to that engine; Fail: reply to
// the client with an error). Run times come in as arguments. Every decision
// depends only on the sequence of events, never on map iteration order, so
// a test harness can replay events and assert the exact actions, in the
// manner of Nomad's scheduler tests.
//
// # Adaptive depth
//
// Engines run one task at a time in arrival order. To keep an engine busy
// while its next task is in flight, the scheduler lets it hold a pipeline
// of up to Depth outstanding load-balanced tasks. The depth adapts to the
// engine's observed run times: with avg an exponentially weighted moving
// average (alpha 0.2) of the run times reported by Finished,
//
//	depth = clamp(ceil(Target/avg) + 1, MinDepth, MaxDepth)
//
// and depth is MinDepth until the first report. Microsecond tasks thus get
// a deep pipeline (MaxDepth) and second-long tasks a shallow one
// (MinDepth), which keeps long tasks balanced across engines. Should the
// formula drop below the tasks already outstanding, Depth reports their
// number instead and shrinks as they finish; no task is assigned meanwhile,
// exactly as with the bare formula, and Outstanding never exceeds Depth.
//
// # Policies
//
// LeastLoad (the default) picks the engine with room with the fewest
// outstanding tasks, counting direct (non-balanced) work reported with
// DirectSent and DirectDone; ties go to the least recently assigned engine,
// then to the lowest id. LRU picks the least recently assigned engine with
// room, ties to the lowest id. Engines with room live in a heap ordered by
// the policy, so placing an unrestricted task costs O(log E).
//
// # Queues and ordering
//
// Pending tasks live in two FIFO lists: plain tasks (no Targets, never
// failed) and "picky" tasks (with Targets, or retried and so avoiding the
// engines they failed on). Every pending task has a sequence key: new tasks
// get increasing keys at the back, retried tasks decreasing keys at the
// front (so the latest retry goes first), and both lists stay sorted.
// Dispatch, run at the end of every event that adds work or frees room,
// merges the two lists by key and places each task it can while any engine
// has room, skipping picky tasks that cannot be placed now. Hence a task is
// never assigned after a later-queued task unless it could not be placed
// when that task was, and a picky task never blocks the tasks behind it.
//
// A retried task prefers engines it has not failed on: it waits for one of
// them while any is registered (and allowed by its Targets), and falls back
// to the avoided ones only when none is.
//
// Costs: a plain task is placed in O(log E); each dispatch re-examines the
// blocked picky tasks ahead of the plain queue, at O(len(Targets)) or
// O(len(avoided) log E) each; RemoveEngine scans the picky list.
package scheduler

import (
	"container/heap"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Policy selects the engine for a task among those with room.
type Policy int

const (
	// LeastLoad picks the engine with the fewest outstanding tasks (direct
	// and balanced); ties go to the least recently assigned, then lowest id.
	LeastLoad Policy = iota
	// LRU picks the least recently assigned engine with room; ties go to
	// the lowest id.
	LRU
)

// ParsePolicy parses "least-load" or "lru".
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "least-load":
		return LeastLoad, nil
	case "lru":
		return LRU, nil
	}
	return 0, fmt.Errorf("scheduler: unknown policy %q (valid: \"least-load\", \"lru\")", s)
}

// String returns the policy's name as accepted by ParsePolicy.
func (p Policy) String() string {
	switch p {
	case LeastLoad:
		return "least-load"
	case LRU:
		return "lru"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// before reports whether engine a is preferred to engine b under p.
func (p Policy) before(a, b *engine) bool {
	if p == LeastLoad {
		if la, lb := a.load(), b.load(); la != lb {
			return la < lb
		}
	}
	if a.last != b.last {
		return a.last < b.last
	}
	return a.id < b.id
}

// Config configures a Scheduler. Zero fields take their defaults.
type Config struct {
	Policy   Policy
	MinDepth int           // default 2 when 0; must be >= 1
	MaxDepth int           // default max(16, MinDepth) when 0; must be >= MinDepth
	Target   time.Duration // default 5ms when 0: run time worth of work to keep queued per engine
}

// Task is a load-balanced task submitted to the scheduler.
type Task struct {
	ID      string // unique among the tasks the scheduler knows
	Targets []int  // engines the task may run on; empty = any engine
	Retries int    // resubmissions allowed after a failure or an engine death
}

// Action is a decision of the scheduler: an Assign or a Fail.
type Action interface{ isAction() }

// Assign tells the controller to send a task to an engine.
type Assign struct {
	Task    string
	Engine  int
	Attempt int // 1 for the first try, 2 for the first retry, ...
}

// FailReason says why the scheduler gave up on a task.
type FailReason int

const (
	// EngineDied: the task's engine died and no retries were left.
	EngineDied FailReason = iota + 1
	// NoSuchEngine: none of the task's Targets is (or remains) registered.
	NoSuchEngine
	// Aborted: the task was aborted while pending in the scheduler.
	Aborted
)

// String describes the reason: "engine died", "no such engine" or "aborted".
func (r FailReason) String() string {
	switch r {
	case EngineDied:
		return "engine died"
	case NoSuchEngine:
		return "no such engine"
	case Aborted:
		return "aborted"
	}
	return fmt.Sprintf("FailReason(%d)", int(r))
}

// Fail tells the controller that a task is over without a result; the
// scheduler has forgotten it.
type Fail struct {
	Task   string
	Engine int // the engine it was on (EngineDied), or -1
	Reason FailReason
	Detail string // human-readable, e.g. "engine 3 died"
}

func (Assign) isAction() {}
func (Fail) isAction()   {}

// engine is a registered engine.
type engine struct {
	id     int
	direct int     // direct tasks outstanding
	tasks  []*task // balanced tasks outstanding, in assignment order
	depth  int     // current limit on len(tasks)
	avg    float64 // EWMA of run times in ns; 0 before the first report
	last   uint64  // assignment clock at the last assignment; 0 = never
	idx    int     // index in the room heap, or -1
	dead   bool    // removed
}

func (e *engine) load() int     { return e.direct + len(e.tasks) }
func (e *engine) hasRoom() bool { return !e.dead && len(e.tasks) < e.depth }

// observe folds a run time into the average and recomputes the depth,
// which never drops below the tasks already outstanding: it shrinks as they
// finish, admitting no new task meanwhile, exactly as the bare formula would.
func (e *engine) observe(run time.Duration, cfg *Config) {
	const alpha = 0.2
	if run <= 0 {
		run = time.Microsecond
	}
	if e.avg == 0 {
		e.avg = float64(run)
	} else {
		e.avg += alpha * (float64(run) - e.avg)
	}
	d := min(math.Ceil(float64(cfg.Target)/e.avg)+1, float64(cfg.MaxDepth))
	e.depth = max(int(d), cfg.MinDepth, len(e.tasks))
}

// task is a task the scheduler knows: pending (in a queue) or outstanding
// (on an engine).
type task struct {
	Task
	attempt    int
	avoid      []int   // engines it failed on, distinct
	on         *engine // engine it is outstanding on, or nil
	key        int64   // queue order while pending
	q          *queue  // queue it is pending in, or nil
	prev, next *task
}

func (t *task) picky() bool { return len(t.Targets) > 0 || len(t.avoid) > 0 }

// queue is an intrusive doubly linked list of pending tasks.
type queue struct {
	head, tail *task
	n          int
}

func (q *queue) pushBack(t *task) {
	t.q, t.prev, t.next = q, q.tail, nil
	if q.tail != nil {
		q.tail.next = t
	} else {
		q.head = t
	}
	q.tail = t
	q.n++
}

func (q *queue) pushFront(t *task) {
	t.q, t.prev, t.next = q, nil, q.head
	if q.head != nil {
		q.head.prev = t
	} else {
		q.tail = t
	}
	q.head = t
	q.n++
}

func (q *queue) remove(t *task) {
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		q.head = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	} else {
		q.tail = t.prev
	}
	t.q, t.prev, t.next = nil, nil, nil
	q.n--
}

// roomHeap holds the engines with room, best first under the policy.
type roomHeap struct {
	es     []*engine
	policy Policy
}

func (h *roomHeap) Len() int           { return len(h.es) }
func (h *roomHeap) Less(i, j int) bool { return h.policy.before(h.es[i], h.es[j]) }
func (h *roomHeap) Swap(i, j int) {
	h.es[i], h.es[j] = h.es[j], h.es[i]
	h.es[i].idx, h.es[j].idx = i, j
}
func (h *roomHeap) Push(x any) {
	e := x.(*engine)
	e.idx = len(h.es)
	h.es = append(h.es, e)
}
func (h *roomHeap) Pop() any {
	e := h.es[len(h.es)-1]
	h.es[len(h.es)-1] = nil
	h.es = h.es[:len(h.es)-1]
	e.idx = -1
	return e
}

// Scheduler is the load-balancing state machine. It is not safe for
// concurrent use.
type Scheduler struct {
	cfg         Config
	engines     map[int]*engine
	tasks       map[string]*task
	room        roomHeap
	plain       queue // pending tasks without Targets or avoided engines
	picky       queue // pending tasks with Targets or avoided engines
	front, back int64 // keys handed out at the front and back of the queues
	clock       uint64
	actions     []Action
}

// New returns a Scheduler for cfg after applying defaults; the error names
// the invalid field.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Policy != LeastLoad && cfg.Policy != LRU {
		return nil, fmt.Errorf("scheduler: invalid Config.Policy %v", cfg.Policy)
	}
	if cfg.MinDepth == 0 {
		cfg.MinDepth = 2
	}
	if cfg.MaxDepth == 0 {
		cfg.MaxDepth = max(16, cfg.MinDepth)
	}
	if cfg.Target == 0 {
		cfg.Target = 5 * time.Millisecond
	}
	switch {
	case cfg.MinDepth < 1:
		return nil, fmt.Errorf("scheduler: Config.MinDepth must be >= 1, got %d", cfg.MinDepth)
	case cfg.MaxDepth < cfg.MinDepth:
		return nil, fmt.Errorf("scheduler: Config.MaxDepth (%d) must be >= MinDepth (%d)", cfg.MaxDepth, cfg.MinDepth)
	case cfg.Target < 0:
		return nil, errors.New("scheduler: Config.Target must not be negative")
	}
	return &Scheduler{
		cfg:     cfg,
		engines: make(map[int]*engine),
		tasks:   make(map[string]*task),
		room:    roomHeap{policy: cfg.Policy},
	}, nil
}

// AddEngine registers engine id (a no-op if it is registered) and
// dispatches pending work to it.
func (s *Scheduler) AddEngine(id int) {
	if s.engines[id] != nil {
		return
	}
	e := &engine{id: id, depth: s.cfg.MinDepth, idx: -1}
	s.engines[id] = e
	s.update(e)
	s.dispatch()
}

// RemoveEngine unregisters engine id because it died or left. Each
// balanced task outstanding on it is re-queued at the front if it has
// retries left (Retries decremented, the engine avoided), else failed with
// EngineDied, in assignment order. Then pending tasks none of whose Targets
// remains registered fail with NoSuchEngine, in queue order.
func (s *Scheduler) RemoveEngine(id int) {
	e := s.engines[id]
	if e == nil {
		return
	}
	delete(s.engines, id)
	e.dead = true
	s.update(e)
	for _, t := range e.tasks {
		if t.Retries == 0 {
			t.on = nil
			delete(s.tasks, t.ID)
			s.emit(Fail{t.ID, id, EngineDied, fmt.Sprintf("engine %d died", id)})
		}
	}
	for _, t := range slices.Backward(e.tasks) { // keep their order at the front
		if t.on != nil {
			s.requeue(t)
		}
	}
	e.tasks = nil
	for t := s.picky.head; t != nil; {
		next := t.next
		if len(t.Targets) > 0 && !s.anyRegistered(t.Targets) {
			s.picky.remove(t)
			s.fail(t, NoSuchEngine)
		}
		t = next
	}
	s.dispatch()
}

// Submit queues t and dispatches it if some engine has room. A task whose
// Targets are all unregistered fails at once with NoSuchEngine. Submitting
// the ID of a task that is pending or outstanding panics.
func (s *Scheduler) Submit(t Task) {
	if s.tasks[t.ID] != nil {
		panic(fmt.Sprintf("scheduler: duplicate task ID %q", t.ID))
	}
	tk := &task{Task: t}
	tk.Targets = slices.Clone(t.Targets)
	if len(t.Targets) > 0 && !s.anyRegistered(t.Targets) {
		s.fail(tk, NoSuchEngine)
		return
	}
	s.tasks[t.ID] = tk
	s.back++
	tk.key = s.back
	if tk.picky() {
		s.picky.pushBack(tk)
	} else {
		s.plain.pushBack(tk)
	}
	s.dispatch()
}

// Finished records the reply for outstanding task id, folding run into its
// engine's run-time average. If failed and the task has retries left, it
// is re-queued at the front (Retries decremented, the engine avoided) and
// Finished returns true; otherwise the task is forgotten. An id that is not
// outstanding is ignored.
func (s *Scheduler) Finished(id string, failed bool, run time.Duration) (retrying bool) {
	t := s.tasks[id]
	if t == nil || t.on == nil {
		return false
	}
	e := t.on
	i := slices.Index(e.tasks, t)
	e.tasks = slices.Delete(e.tasks, i, i+1)
	e.observe(run, &s.cfg)
	retrying = failed && t.Retries > 0
	if retrying {
		s.requeue(t)
	} else {
		t.on = nil
		delete(s.tasks, id)
	}
	s.update(e)
	s.dispatch()
	return retrying
}

// Abort removes pending task id with Fail{Aborted} and returns true. An
// outstanding or unknown task is left alone and Abort returns false.
func (s *Scheduler) Abort(id string) (pending bool) {
	t := s.tasks[id]
	if t == nil || t.q == nil {
		return false
	}
	t.q.remove(t)
	s.fail(t, Aborted)
	return true
}

// DirectSent counts one more direct task on engine; unknown engines are
// ignored.
func (s *Scheduler) DirectSent(engine int) {
	if e := s.engines[engine]; e != nil {
		e.direct++
		s.update(e)
	}
}

// DirectDone counts one direct task fewer on engine (never below zero).
func (s *Scheduler) DirectDone(engine int) {
	if e := s.engines[engine]; e != nil && e.direct > 0 {
		e.direct--
		s.update(e)
		s.dispatch()
	}
}

// Actions returns and clears the actions decided so far, in order.
func (s *Scheduler) Actions() []Action {
	a := s.actions
	s.actions = nil
	return a
}

// Pending returns the number of tasks waiting in the scheduler.
func (s *Scheduler) Pending() int { return s.plain.n + s.picky.n }

// Outstanding returns the number of balanced tasks assigned to engine and
// not finished.
func (s *Scheduler) Outstanding(engine int) int {
	if e := s.engines[engine]; e != nil {
		return len(e.tasks)
	}
	return 0
}

// Depth returns engine's current depth limit, or 0 if it is unknown.
func (s *Scheduler) Depth(engine int) int {
	if e := s.engines[engine]; e != nil {
		return e.depth
	}
	return 0
}

// EngineOf returns the engine task id is outstanding on.
func (s *Scheduler) EngineOf(id string) (engine int, ok bool) {
	if t := s.tasks[id]; t != nil && t.on != nil {
		return t.on.id, true
	}
	return 0, false
}

func (s *Scheduler) emit(a Action) { s.actions = append(s.actions, a) }

// fail forgets t, which is in no queue, and emits a Fail for it.
func (s *Scheduler) fail(t *task, r FailReason) {
	delete(s.tasks, t.ID)
	detail := "aborted while pending"
	if r == NoSuchEngine {
		detail = fmt.Sprintf("none of engines %v is registered", t.Targets)
	}
	s.emit(Fail{t.ID, -1, r, detail})
}

// update puts e in the room heap, fixes its place or takes it out.
func (s *Scheduler) update(e *engine) {
	switch in, room := e.idx >= 0, e.hasRoom(); {
	case in && room:
		heap.Fix(&s.room, e.idx)
	case in:
		heap.Remove(&s.room, e.idx)
	case room:
		heap.Push(&s.room, e)
	}
}

// requeue puts outstanding task t back at the front of the picky queue,
// avoiding its engine. The caller takes t off the engine's list.
func (s *Scheduler) requeue(t *task) {
	t.Retries--
	if !slices.Contains(t.avoid, t.on.id) {
		t.avoid = append(t.avoid, t.on.id)
	}
	t.on = nil
	s.front--
	t.key = s.front
	s.picky.pushFront(t)
}

func (s *Scheduler) anyRegistered(ids []int) bool {
	return slices.ContainsFunc(ids, func(id int) bool { return s.engines[id] != nil })
}

// dispatch assigns pending tasks in key order while some engine has room;
// picky tasks that cannot be placed are skipped.
func (s *Scheduler) dispatch() {
	r := s.picky.head
	for s.room.Len() > 0 {
		p := s.plain.head
		switch {
		case p != nil && (r == nil || p.key < r.key):
			s.assign(p, s.room.es[0])
		case r != nil:
			t := r
			r = r.next
			if e := s.pick(t); e != nil {
				s.assign(t, e)
			}
		default:
			return
		}
	}
}

// pick chooses an engine with room for a picky task, or nil. Engines the
// task avoids are used only if every registered engine it may run on is
// avoided.
func (s *Scheduler) pick(t *task) *engine {
	if len(t.Targets) == 0 {
		avoided := 0
		for _, id := range t.avoid {
			if s.engines[id] != nil {
				avoided++
			}
		}
		if avoided == len(s.engines) {
			return s.room.es[0]
		}
		// Pop avoided engines off the heap until a preferred one shows.
		var skipped []*engine
		var best *engine
		for s.room.Len() > 0 {
			e := s.room.es[0]
			if !slices.Contains(t.avoid, e.id) {
				best = e
				break
			}
			skipped = append(skipped, heap.Pop(&s.room).(*engine))
		}
		for _, e := range skipped {
			heap.Push(&s.room, e)
		}
		return best
	}
	var best, fallback *engine
	preferred := false
	for _, id := range t.Targets {
		e := s.engines[id]
		if e == nil {
			continue
		}
		avoid := slices.Contains(t.avoid, id)
		preferred = preferred || !avoid
		switch {
		case !e.hasRoom():
		case !avoid && (best == nil || s.cfg.Policy.before(e, best)):
			best = e
		case avoid && (fallback == nil || s.cfg.Policy.before(e, fallback)):
			fallback = e
		}
	}
	if preferred {
		return best
	}
	return fallback
}

// assign takes pending t out of its queue and makes it outstanding on e.
func (s *Scheduler) assign(t *task, e *engine) {
	t.q.remove(t)
	t.attempt++
	t.on = e
	e.tasks = append(e.tasks, t)
	s.clock++
	e.last = s.clock
	s.update(e)
	s.emit(Assign{t.ID, e.id, t.attempt})
}
