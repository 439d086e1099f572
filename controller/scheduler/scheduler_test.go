package scheduler

import (
	"strings"
	"testing"
	"time"
)

func TestScenarios(t *testing.T) {
	lru := Config{Policy: LRU}
	depth1 := Config{MinDepth: 1, MaxDepth: 1}
	tests := []struct {
		name string
		cfg  Config
		run  func(h *harness)
	}{
		{"least-load spreads evenly", Config{}, func(h *harness) {
			h.addEngine(0, 1, 2)
			h.submit("a", "b", "c", "d", "e", "f")
			h.expect(assign("a", 0), assign("b", 1), assign("c", 2),
				assign("d", 0), assign("e", 1), assign("f", 2))
			h.finish("b")
			h.submit("g")
			h.expectAssign("g", 1) // the only engine with one task
		}},
		{"depth starts at MinDepth and limits outstanding", Config{}, func(h *harness) {
			h.addEngine(0)
			h.expectDepth(0, 2)
			h.submit("a", "b", "c")
			h.expect(assign("a", 0), assign("b", 0))
			h.expectOutstanding(0, 2)
			h.expectPending(1)
			h.finish("a")
			h.expectAssign("c", 0)
			h.expectPending(0)
		}},
		{"depth grows to MaxDepth for microsecond tasks", Config{}, func(h *harness) {
			h.addEngine(0)
			for _, id := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j",
				"k", "l", "m", "n", "o", "p", "q", "r", "s", "t"} {
				h.submit(id)
			}
			h.expect(assign("a", 0), assign("b", 0))
			h.finishRun("a", 0) // counts as 1µs: ceil(5ms/1µs)+1 > 16
			h.expectDepth(0, 16)
			h.expectOutstanding(0, 16)
			h.expectPending(3)
			h.s.Actions()
		}},
		{"depth stays at MinDepth for second-long tasks", Config{}, func(h *harness) {
			h.addEngine(0)
			h.submit("a", "b", "c", "d")
			h.expect(assign("a", 0), assign("b", 0))
			h.finishRun("a", time.Second)
			h.expectDepth(0, 2)
			h.expectAssign("c", 0)
			h.finishRun("b", 2*time.Second)
			h.expectDepth(0, 2)
			h.expectAssign("d", 0)
		}},
		{"depth follows the moving average", Config{}, func(h *harness) {
			h.addEngine(0)
			h.submit("a", "b")
			h.s.Actions()
			h.finishRun("a", time.Millisecond) // avg 1ms: ceil(5)+1
			h.expectDepth(0, 6)
			h.finishRun("b", 6*time.Millisecond) // avg 1ms+0.2*5ms = 2ms: ceil(2.5)+1
			h.expectDepth(0, 4)
		}},
		{"shrinking depth stops assignments until below it", Config{}, func(h *harness) {
			h.addEngine(0)
			h.submit("a", "b", "c", "d", "e")
			h.s.Actions()
			h.finishRun("a", 0)
			h.expect(assign("c", 0), assign("d", 0), assign("e", 0))
			h.finishRun("b", 10*time.Second) // avg ~2s: the formula gives 2...
			h.expectDepth(0, 3)              // ...but c, d, e are outstanding
			h.submit("f", "g")
			h.expectNoActions()
			h.finish("c")
			h.expectDepth(0, 2)
			h.expectNoActions() // d and e still outstanding
			h.finish("d")
			h.expectAssign("f", 0)
		}},
		{"LRU picks the least recently assigned", lru, func(h *harness) {
			h.addEngine(0, 1)
			h.submit("a", "b")
			h.expect(assign("a", 0), assign("b", 1))
			h.finish("b")
			h.submit("c", "d", "e")
			// LeastLoad would pick 1 (idle); LRU picks 0, assigned longest ago.
			h.expect(assign("c", 0), assign("d", 1), assign("e", 1))
		}},
		{"ties go to the lowest id whatever the order of registration", Config{}, func(h *harness) {
			h.addEngine(5, 2, 9)
			h.submit("a", "b", "c", "d")
			h.expect(assign("a", 2), assign("b", 5), assign("c", 9), assign("d", 2))
		}},
		{"LRU ties go to the lowest id", lru, func(h *harness) {
			h.addEngine(7, 3)
			h.submit("a", "b")
			h.expect(assign("a", 3), assign("b", 7))
		}},
		{"direct load steers least-load but not the depth limit", Config{}, func(h *harness) {
			h.addEngine(0, 1)
			h.s.DirectSent(0)
			h.s.DirectSent(0)
			h.s.DirectSent(42) // unknown: ignored
			h.submit("a", "b", "c", "d", "e")
			h.expect(assign("a", 1), assign("b", 1), assign("c", 0), assign("d", 0))
			h.expectPending(1)
			h.s.DirectDone(0)
			h.s.DirectDone(0)
			h.s.DirectDone(0) // never below zero
			h.expectNoActions()
			h.finish("a")
			h.expectAssign("e", 1)
			h.finish("c")
			h.submit("f")
			h.expectAssign("f", 0) // load 1 (d) vs 2 (b, e): direct count is back to 0
		}},
		{"direct load is ignored by LRU", lru, func(h *harness) {
			h.addEngine(0, 1)
			h.s.DirectSent(0)
			h.submit("a")
			h.expectAssign("a", 0)
		}},
		{"retry goes to another engine at the front of the queue", depth1, func(h *harness) {
			h.addEngine(0, 1)
			h.submitTask(Task{ID: "a", Retries: 1})
			h.submit("b", "c", "d")
			h.expect(assign("a", 0), assign("b", 1))
			h.fail("a", true)
			// a avoids 0 and waits for 1 without blocking c.
			h.expectAssign("c", 0)
			h.expectPending(2)
			h.finish("b")
			h.expect(retry("a", 1, 2)) // before d
			h.expectOn("a", 1)
			h.fail("a", false) // retries used up: over
			h.expectAssign("d", 1)
			h.expectPending(0)
		}},
		{"retry falls back to the same engine when it is the only one", Config{}, func(h *harness) {
			h.addEngine(0)
			h.submitTask(Task{ID: "a", Retries: 2})
			h.expectAssign("a", 0)
			h.fail("a", true)
			h.expect(retry("a", 0, 2))
			h.fail("a", true)
			h.expect(retry("a", 0, 3))
			h.fail("a", false)
			h.expectNoActions()
			h.expectPending(0)
			h.expectOutstanding(0, 0)
		}},
		{"retry avoids every engine it failed on", Config{}, func(h *harness) {
			h.addEngine(0, 1, 2)
			h.submitTask(Task{ID: "a", Retries: 3})
			h.expectAssign("a", 0)
			h.fail("a", true)
			h.expect(retry("a", 1, 2))
			h.fail("a", true)
			h.expect(retry("a", 2, 3))
			h.fail("a", true)
			h.expect(retry("a", 0, 4)) // all avoided: best of them
		}},
		{"engine death re-queues tasks with retries and fails the rest", Config{}, func(h *harness) {
			h.addEngine(0, 1)
			h.submitTask(Task{ID: "a", Retries: 1})
			h.submitTask(Task{ID: "b"})
			h.submitTask(Task{ID: "c", Retries: 1})
			h.submitTask(Task{ID: "d", Retries: 2})
			h.submitTask(Task{ID: "e"})
			h.expect(assign("a", 0), assign("b", 1), assign("c", 0), assign("d", 1))
			h.removeEngine(1)
			h.expect(died("b", 1))
			h.expectPending(2) // d at the front, then e
			h.expectDepth(1, 0)
			h.finish("a")
			h.expect(retry("d", 0, 2))
			h.finish("c")
			h.expectAssign("e", 0)
			h.removeEngine(0)
			h.expect(died("e", 0))
			h.expectPending(1) // d has one retry left
		}},
		{"re-queued tasks keep their order", Config{}, func(h *harness) {
			h.addEngine(0)
			h.submitTask(Task{ID: "a", Retries: 1})
			h.submitTask(Task{ID: "b", Retries: 1})
			h.submit("c")
			h.s.Actions()
			h.removeEngine(0)
			h.expectNoActions()
			h.addEngine(1)
			h.expect(retry("a", 1, 2), retry("b", 1, 2))
		}},
		{"targets restrict engines", Config{}, func(h *harness) {
			h.addEngine(0, 1, 2)
			h.submitTask(Task{ID: "a", Targets: []int{2}})
			h.submitTask(Task{ID: "b", Targets: []int{2, 7}})
			h.submitTask(Task{ID: "c", Targets: []int{1, 2}})
			h.expect(assign("a", 2), assign("b", 2), assign("c", 1))
			h.submitTask(Task{ID: "d", Targets: []int{2}})
			h.expectNoActions()
			h.finish("a")
			h.expectAssign("d", 2)
		}},
		{"no such engine at submit", Config{}, func(h *harness) {
			h.submitTask(Task{ID: "a", Targets: []int{7, 9}})
			h.expect(noSuchEngine("a", 7, 9))
			h.addEngine(0)
			h.submitTask(Task{ID: "a", Targets: []int{7, 9}}) // forgotten: id reusable
			h.expect(noSuchEngine("a", 7, 9))
			h.expectPending(0)
		}},
		{"no such engine when the last allowed engine goes", depth1, func(h *harness) {
			h.addEngine(0, 5, 6)
			h.submitTask(Task{ID: "x", Targets: []int{5}})
			h.submitTask(Task{ID: "y", Targets: []int{6}})
			h.submitTask(Task{ID: "r", Targets: []int{5, 6}})
			h.expect(assign("x", 5), assign("y", 6))
			h.removeEngine(5)
			h.expect(died("x", 5)) // r can still run on 6
			h.removeEngine(6)
			h.expect(died("y", 6), noSuchEngine("r", 5, 6))
		}},
		{"a task with retries whose only target dies", Config{}, func(h *harness) {
			h.addEngine(0, 3)
			h.submitTask(Task{ID: "a", Targets: []int{3}, Retries: 1})
			h.expectAssign("a", 3)
			h.removeEngine(3)
			h.expect(noSuchEngine("a", 3))
		}},
		{"no head-of-line blocking by a restricted task", depth1, func(h *harness) {
			h.addEngine(0, 1)
			h.submitTask(Task{ID: "x", Targets: []int{1}})
			h.submitTask(Task{ID: "r", Targets: []int{1}})
			h.submit("p")
			h.expect(assign("x", 1), assign("p", 0))
			h.finish("x")
			h.expectAssign("r", 1)
		}},
		{"submission order is kept when both queues could place", depth1, func(h *harness) {
			h.addEngine(0, 1)
			h.submit("a", "b")
			h.submitTask(Task{ID: "r", Targets: []int{0, 1}})
			h.submit("p")
			h.submitTask(Task{ID: "s", Targets: []int{0, 1}})
			h.s.Actions()
			h.finish("a")
			h.expectAssign("r", 0)
			h.finish("b")
			h.expectAssign("p", 1)
			h.finish("r")
			h.expectAssign("s", 0)
		}},
		{"tasks wait without engines and flow on AddEngine", Config{}, func(h *harness) {
			h.submit("a", "b", "c")
			h.submitTask(Task{ID: "r", Targets: []int{1}})
			h.expect(noSuchEngine("r", 1))
			h.expectPending(3)
			h.addEngine(0)
			h.expect(assign("a", 0), assign("b", 0))
			h.addEngine(0) // idempotent
			h.expectNoActions()
			h.addEngine(1)
			h.expectAssign("c", 1)
			h.expectPending(0)
		}},
		{"abort pending and outstanding", Config{}, func(h *harness) {
			h.addEngine(0)
			h.submit("a", "b", "c", "d")
			h.submitTask(Task{ID: "r", Targets: []int{0}})
			h.expect(assign("a", 0), assign("b", 0))
			h.abort("c", true)
			h.expect(aborted("c"))
			h.abort("r", true)
			h.expect(aborted("r"))
			h.abort("a", false) // outstanding: the controller tells the engine
			h.abort("zzz", false)
			h.abort("c", false) // already gone
			h.expectNoActions()
			h.expectPending(1)
			h.finish("a")
			h.expectAssign("d", 0)
			h.submit("c") // aborted id is reusable
			h.expectPending(1)
		}},
		{"unknown and pending replies are ignored", Config{}, func(h *harness) {
			h.addEngine(0)
			h.submit("a", "b", "c")
			h.s.Actions()
			if h.s.Finished("zzz", true, 0) || h.s.Finished("c", true, 0) {
				h.t.Fatal("Finished of a task not outstanding reported a retry")
			}
			h.expectNoActions()
			h.expectDepth(0, 2)
			if _, ok := h.s.EngineOf("c"); ok {
				h.t.Fatal("EngineOf(pending task) ok")
			}
			h.expectOn("b", 0)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(newHarness(t, tt.cfg))
		})
	}
}

func TestDuplicateIDPanics(t *testing.T) {
	h := newHarness(t, Config{})
	h.submit("a")
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), `"a"`) {
			t.Fatalf("recover() = %v, want a panic naming the id", r)
		}
	}()
	h.submit("a")
}

func TestConfig(t *testing.T) {
	for _, tt := range []struct {
		cfg   Config
		field string // in the error; "" for valid
	}{
		{Config{}, ""},
		{Config{Policy: LRU, MinDepth: 1, MaxDepth: 1, Target: time.Second}, ""},
		{Config{MinDepth: 20}, ""},
		{Config{MinDepth: -1}, "MinDepth"},
		{Config{MinDepth: 4, MaxDepth: 3}, "MaxDepth"},
		{Config{MaxDepth: 1}, "MaxDepth"},
		{Config{Target: -time.Millisecond}, "Target"},
		{Config{Policy: 7}, "Policy"},
	} {
		_, err := New(tt.cfg)
		if tt.field == "" && err != nil || tt.field != "" && (err == nil || !strings.Contains(err.Error(), tt.field)) {
			t.Errorf("New(%+v) = %v, want error naming %q", tt.cfg, err, tt.field)
		}
	}

	// Defaults: MinDepth 2, MaxDepth 16 (or MinDepth if larger).
	for _, tt := range []struct {
		cfg           Config
		minDep, maxDe int
	}{{Config{}, 2, 16}, {Config{MinDepth: 20}, 20, 20}} {
		h := newHarness(t, tt.cfg, 0)
		h.expectDepth(0, tt.minDep)
		h.submit("a")
		h.finishRun("a", 0)
		h.expectDepth(0, tt.maxDe)
	}
}

func TestParsePolicy(t *testing.T) {
	for _, p := range []Policy{LeastLoad, LRU} {
		if got, err := ParsePolicy(p.String()); got != p || err != nil {
			t.Errorf("ParsePolicy(%q) = %v, %v", p.String(), got, err)
		}
	}
	_, err := ParsePolicy("fifo")
	if err == nil {
		t.Fatal(`ParsePolicy("fifo") succeeded`)
	}
	for _, s := range []string{`"fifo"`, "least-load", "lru"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("ParsePolicy error %q does not mention %s", err, s)
		}
	}
	if s := Policy(9).String(); s != "Policy(9)" {
		t.Errorf("Policy(9).String() = %q", s)
	}
}

func TestFailReasonString(t *testing.T) {
	for r, want := range map[FailReason]string{
		EngineDied: "engine died", NoSuchEngine: "no such engine", Aborted: "aborted", 0: "FailReason(0)",
	} {
		if got := r.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(r), got, want)
		}
	}
}
