package scheduler

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestProperties drives schedulers with thousands of random events and
// checks, after every event, the actions against an independent model of
// task states and the scheduler's introspection against that model.
func TestProperties(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			log1 := runRandom(t, seed, 10_000)
			if log2 := runRandom(t, seed, 10_000); !slices.Equal(log1, log2) {
				t.Fatal("same events, different actions: not deterministic")
			}
		})
	}
}

type taskState int

const (
	statePending taskState = iota
	stateOutstanding
	stateDying // on a removed engine with no retries: must get Fail{EngineDied}
	stateOver
)

// mtask is the model's view of a task.
type mtask struct {
	Task
	state   taskState
	engine  int
	avoid   []int
	attempt int
}

type model struct {
	t          *testing.T
	s          *Scheduler
	cfg        Config
	registered []int // sorted
	tasks      map[string]*mtask
	order      []*mtask // every task submitted, for deterministic random choice
	live       []*mtask // those not over yet, in submission order
	aborting   string   // the task an Abort just removed
	direct     [maxEngine]int
	last       [maxEngine]int // assignment clock at each engine's last assignment
	clock      int
	log        []Action
}

const maxEngine = 10 // engine ids are 0..maxEngine-1

func runRandom(t *testing.T, seed uint64, events int) []Action {
	rng := rand.New(rand.NewPCG(seed, 42))
	cfg := Config{Policy: Policy(seed % 2), MinDepth: 1 + rng.IntN(3), Target: 5 * time.Millisecond}
	cfg.MaxDepth = cfg.MinDepth + rng.IntN(6)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := &model{t: t, s: s, cfg: cfg, tasks: map[string]*mtask{}}
	runs := []time.Duration{0, time.Microsecond, time.Millisecond, 5 * time.Millisecond, time.Second}
	next := 0
	for i := range events {
		var what string
		switch k := rng.IntN(100); {
		case k < 6:
			id := rng.IntN(maxEngine)
			what = fmt.Sprint("AddEngine ", id)
			s.AddEngine(id)
			if !slices.Contains(m.registered, id) {
				m.direct[id], m.last[id] = 0, 0
				m.registered = append(m.registered, id)
				slices.Sort(m.registered)
			}
		case k < 10:
			id := rng.IntN(maxEngine)
			what = fmt.Sprint("RemoveEngine ", id)
			s.RemoveEngine(id)
			m.registered = slices.DeleteFunc(m.registered, func(e int) bool { return e == id })
			for _, mt := range m.live {
				if mt.state == stateOutstanding && mt.engine == id {
					m.requeueOrDie(mt)
				}
			}
		case k < 40 && len(m.live) < []int{60, 4, 12}[i/500%3]: // bursts; bounded load that varies
			what = "Submit"
			for range 1 + rng.IntN(4) {
				tk := Task{ID: fmt.Sprint("t", next), Retries: rng.IntN(3)}
				next++
				if rng.IntN(4) == 0 {
					for range 1 + rng.IntN(3) {
						tk.Targets = append(tk.Targets, rng.IntN(maxEngine+2)) // may be never registered
					}
				}
				what += fmt.Sprintf(" %+v", tk)
				s.Submit(tk)
				mt := &mtask{Task: tk}
				m.tasks[tk.ID] = mt
				m.order = append(m.order, mt)
				m.live = append(m.live, mt)
			}
		case k < 80:
			mt := m.random(rng, stateOutstanding)
			failed := rng.IntN(3) == 0
			run := runs[rng.IntN(len(runs))]
			what = fmt.Sprintf("Finished %s failed=%v run=%v", mt.ID, failed, run)
			got := s.Finished(mt.ID, failed, run)
			want := mt.state == stateOutstanding && failed && mt.Retries > 0
			if got != want {
				t.Fatalf("event %d %s: retrying = %v, want %v", i, what, got, want)
			}
			switch {
			case want:
				m.requeueOrDie(mt)
			case mt.state == stateOutstanding:
				mt.state = stateOver
			}
		case k < 87:
			mt := m.random(rng, statePending)
			what = "Abort " + mt.ID
			got := s.Abort(mt.ID)
			if want := mt.state == statePending; got != want {
				t.Fatalf("event %d %s: pending = %v, want %v", i, what, got, want)
			}
			m.aborting = mt.ID
		case k < 95:
			e := rng.IntN(maxEngine)
			what = fmt.Sprint("DirectSent ", e)
			s.DirectSent(e)
			if slices.Contains(m.registered, e) {
				m.direct[e]++
			}
		default:
			e := rng.IntN(maxEngine)
			what = fmt.Sprint("DirectDone ", e)
			s.DirectDone(e)
			if slices.Contains(m.registered, e) && m.direct[e] > 0 {
				m.direct[e]--
			}
		}
		m.apply(s.Actions(), fmt.Sprintf("event %d %s", i, what))
	}
	return m.log
}

// random mostly returns a random live task in state st, else any task ever
// submitted or one never submitted.
func (m *model) random(rng *rand.Rand, st taskState) *mtask {
	var in []*mtask
	for _, mt := range m.live {
		if mt.state == st {
			in = append(in, mt)
		}
	}
	switch {
	case len(in) > 0 && rng.IntN(10) > 0:
		return in[rng.IntN(len(in))]
	case len(m.order) > 0 && rng.IntN(2) > 0:
		return m.order[rng.IntN(len(m.order))]
	}
	return &mtask{Task: Task{ID: "never-submitted"}, state: stateOver}
}

// requeueOrDie is what must become of an outstanding task whose engine
// failed it or died.
func (m *model) requeueOrDie(mt *mtask) {
	if mt.Retries == 0 {
		mt.state = stateDying
		return
	}
	mt.Retries--
	mt.state = statePending
	if !slices.Contains(mt.avoid, mt.engine) {
		mt.avoid = append(mt.avoid, mt.engine)
	}
}

// candidates returns the engines the rules allow mt on right now, ignoring
// room: registered, in Targets, and not avoided unless all of them are.
func (m *model) candidates(mt *mtask) []int {
	var all, preferred []int
	for _, e := range m.registered {
		if len(mt.Targets) == 0 || slices.Contains(mt.Targets, e) {
			all = append(all, e)
			if !slices.Contains(mt.avoid, e) {
				preferred = append(preferred, e)
			}
		}
	}
	if len(preferred) > 0 {
		return preferred
	}
	return all
}

func (m *model) hasRoom(e int) bool { return m.s.Outstanding(e) < m.s.Depth(e) }

func (m *model) outstanding(e int) int {
	n := 0
	for _, mt := range m.live {
		if mt.state == stateOutstanding && mt.engine == e {
			n++
		}
	}
	return n
}

// best returns the engine the policy prefers for mt as the actions so far
// left the engines (depths do not change while an event dispatches), or -1.
func (m *model) best(mt *mtask) int {
	best, bestKey := -1, [3]int{}
	for _, e := range m.candidates(mt) {
		out := m.outstanding(e)
		if out >= m.s.Depth(e) {
			continue
		}
		key := [3]int{out + m.direct[e], m.last[e], e}
		if m.cfg.Policy == LRU {
			key[0] = 0
		}
		if best < 0 || slices.Compare(key[:], bestKey[:]) < 0 {
			best, bestKey = e, key
		}
	}
	return best
}

func (m *model) apply(actions []Action, event string) {
	t := m.t
	m.log = append(m.log, actions...)
	for _, a := range actions {
		switch a := a.(type) {
		case Assign:
			mt := m.tasks[a.Task]
			switch {
			case mt == nil:
				t.Fatalf("%s: %+v of an unknown task", event, a)
			case mt.state != statePending:
				t.Fatalf("%s: %+v of a task in state %d", event, a, mt.state)
			case a.Engine != m.best(mt):
				t.Fatalf("%s: %+v, want engine %d of allowed %v (targets %v, avoid %v)",
					event, a, m.best(mt), m.candidates(mt), mt.Targets, mt.avoid)
			case a.Attempt != mt.attempt+1:
				t.Fatalf("%s: %+v, want attempt %d", event, a, mt.attempt+1)
			}
			mt.state, mt.engine, mt.attempt = stateOutstanding, a.Engine, a.Attempt
			m.clock++
			m.last[a.Engine] = m.clock
		case Fail:
			mt := m.tasks[a.Task]
			if mt == nil {
				t.Fatalf("%s: %+v of an unknown task", event, a)
			}
			ok := false
			switch a.Reason {
			case EngineDied:
				ok = mt.state == stateDying && a.Engine == mt.engine &&
					a.Detail == fmt.Sprintf("engine %d died", mt.engine)
			case NoSuchEngine:
				ok = mt.state == statePending && a.Engine == -1 && len(mt.Targets) > 0 &&
					!slices.ContainsFunc(mt.Targets, func(e int) bool { return slices.Contains(m.registered, e) })
			case Aborted:
				ok = mt.state == statePending && a.Engine == -1 && a.Task == m.aborting
			}
			if !ok {
				t.Fatalf("%s: unexpected %+v (task state %d engine %d)", event, a, mt.state, mt.engine)
			}
			mt.state = stateOver
		default:
			t.Fatalf("%s: unknown action %T", event, a)
		}
	}
	m.aborting = ""
	m.live = slices.DeleteFunc(m.live, func(mt *mtask) bool { return mt.state == stateOver })
	m.check(event)
}

// check compares the scheduler with the model after an event.
func (m *model) check(event string) {
	t := m.t
	pending := 0
	outstanding := make([]int, maxEngine)
	for _, mt := range m.live {
		got, ok := m.s.EngineOf(mt.ID)
		switch mt.state {
		case stateDying:
			t.Fatalf("%s: %s died with its engine but got no Fail", event, mt.ID)
		case statePending:
			pending++
			// Dispatch is maximal: no pending task could be placed now.
			for _, e := range m.candidates(mt) {
				if m.hasRoom(e) {
					t.Fatalf("%s: %s (targets %v, avoid %v) pending while engine %d has room",
						event, mt.ID, mt.Targets, mt.avoid, e)
				}
			}
			if len(m.candidates(mt)) == 0 && len(mt.Targets) > 0 {
				t.Fatalf("%s: %s pending with none of its targets %v registered", event, mt.ID, mt.Targets)
			}
		case stateOutstanding:
			outstanding[mt.engine]++
			if !ok || got != mt.engine {
				t.Fatalf("%s: EngineOf(%s) = %d, %v; want %d", event, mt.ID, got, ok, mt.engine)
			}
			continue
		}
		if ok {
			t.Fatalf("%s: EngineOf(%s) = %d for a task in state %d", event, mt.ID, got, mt.state)
		}
	}
	if got := m.s.Pending(); got != pending {
		t.Fatalf("%s: Pending() = %d, model has %d", event, got, pending)
	}
	for e := range maxEngine {
		o, d := m.s.Outstanding(e), m.s.Depth(e)
		if o != outstanding[e] {
			t.Fatalf("%s: Outstanding(%d) = %d, model has %d", event, e, o, outstanding[e])
		}
		if o > d {
			t.Fatalf("%s: Outstanding(%d) = %d > Depth %d", event, e, o, d)
		}
		if reg := slices.Contains(m.registered, e); reg && (d < m.cfg.MinDepth || d > m.cfg.MaxDepth) || !reg && d != 0 {
			t.Fatalf("%s: Depth(%d) = %d, registered %v, config %+v", event, e, d, reg, m.cfg)
		}
	}
}
