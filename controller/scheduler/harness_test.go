package scheduler

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// harness drives a Scheduler with events and asserts the actions it
// decides, in the manner of Nomad's scheduler test harness. After every
// event it checks that no known engine holds more tasks than its depth.
type harness struct {
	t       *testing.T
	s       *Scheduler
	run     time.Duration // run time reported by finish and fail
	engines []int         // every engine ever added, for the depth check
}

func newHarness(t *testing.T, cfg Config, engines ...int) *harness {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	h := &harness{t: t, s: s, run: time.Second}
	h.addEngine(engines...)
	return h
}

func (h *harness) check() {
	h.t.Helper()
	for _, e := range h.engines {
		if o, d := h.s.Outstanding(e), h.s.Depth(e); o > d {
			h.t.Fatalf("engine %d: Outstanding %d > Depth %d", e, o, d)
		}
	}
}

func (h *harness) addEngine(ids ...int) {
	h.t.Helper()
	for _, id := range ids {
		if !slices.Contains(h.engines, id) {
			h.engines = append(h.engines, id)
		}
		h.s.AddEngine(id)
		h.check()
	}
}

func (h *harness) removeEngine(ids ...int) {
	h.t.Helper()
	for _, id := range ids {
		h.s.RemoveEngine(id)
		h.check()
	}
}

// submit queues plain tasks: any engine, no retries.
func (h *harness) submit(ids ...string) {
	h.t.Helper()
	for _, id := range ids {
		h.submitTask(Task{ID: id})
	}
}

func (h *harness) submitTask(t Task) {
	h.t.Helper()
	h.s.Submit(t)
	h.check()
}

// finish reports success of id after h.run.
func (h *harness) finish(id string) {
	h.t.Helper()
	h.finishRun(id, h.run)
}

// finishRun reports success of id after run.
func (h *harness) finishRun(id string, run time.Duration) {
	h.t.Helper()
	if h.s.Finished(id, false, run) {
		h.t.Fatalf("Finished(%q, ok) = retrying", id)
	}
	h.check()
}

// fail reports failure of id and checks whether the scheduler retries it.
func (h *harness) fail(id string, wantRetry bool) {
	h.t.Helper()
	if got := h.s.Finished(id, true, h.run); got != wantRetry {
		h.t.Fatalf("Finished(%q, failed) = %v, want %v", id, got, wantRetry)
	}
	h.check()
}

func (h *harness) abort(id string, wantPending bool) {
	h.t.Helper()
	if got := h.s.Abort(id); got != wantPending {
		h.t.Fatalf("Abort(%q) = %v, want %v", id, got, wantPending)
	}
	h.check()
}

// expect drains the actions and requires exactly want, in order.
func (h *harness) expect(want ...Action) {
	h.t.Helper()
	got := h.s.Actions()
	if !slices.Equal(got, want) {
		h.t.Fatalf("actions:\n got  %s\n want %s", fmtActions(got), fmtActions(want))
	}
}

// expectAssign requires exactly one first-attempt Assign of task to engine.
func (h *harness) expectAssign(task string, engine int) {
	h.t.Helper()
	h.expect(assign(task, engine))
}

func (h *harness) expectNoActions() {
	h.t.Helper()
	h.expect()
}

func (h *harness) expectPending(n int) {
	h.t.Helper()
	if got := h.s.Pending(); got != n {
		h.t.Fatalf("Pending() = %d, want %d", got, n)
	}
}

func (h *harness) expectOutstanding(engine, n int) {
	h.t.Helper()
	if got := h.s.Outstanding(engine); got != n {
		h.t.Fatalf("Outstanding(%d) = %d, want %d", engine, got, n)
	}
}

func (h *harness) expectDepth(engine, d int) {
	h.t.Helper()
	if got := h.s.Depth(engine); got != d {
		h.t.Fatalf("Depth(%d) = %d, want %d", engine, got, d)
	}
}

func (h *harness) expectOn(task string, engine int) {
	h.t.Helper()
	if got, ok := h.s.EngineOf(task); !ok || got != engine {
		h.t.Fatalf("EngineOf(%q) = %d, %v; want %d, true", task, got, ok, engine)
	}
}

func assign(task string, engine int) Action { return Assign{task, engine, 1} }

func retry(task string, engine, attempt int) Action { return Assign{task, engine, attempt} }

func died(task string, engine int) Action {
	return Fail{task, engine, EngineDied, fmt.Sprintf("engine %d died", engine)}
}

func noSuchEngine(task string, targets ...int) Action {
	return Fail{task, -1, NoSuchEngine, fmt.Sprintf("none of engines %v is registered", targets)}
}

func aborted(task string) Action {
	return Fail{task, -1, Aborted, "aborted while pending"}
}

func fmtActions(as []Action) string {
	if len(as) == 0 {
		return "(none)"
	}
	s := ""
	for _, a := range as {
		s += fmt.Sprintf("%+v ", a)
	}
	return s
}
