package engine

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipcluster/ipcluster/wire"
)

// newTestEngine returns an engine that is not connected: tests drive its
// queue and executor by hand, and replace what it posts messages with.
func newTestEngine(t *testing.T) *Engine {
	t.Helper()
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.post = func(...*wire.Message) {}
	return e
}

// work returns a work request without buffers (whose digests only a
// sealed message has).
func work(t *testing.T, kind wire.Type, id, fn string, args ...any) *wire.Message {
	t.Helper()
	var content []byte
	var bufs [][]byte
	var err error
	if kind == wire.Map {
		content, bufs, err = wire.EncodeMap(fn, args)
	} else {
		content, bufs, err = wire.EncodeApply(fn, args)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(bufs) != 0 {
		t.Fatal("work() cannot make a request with buffers")
	}
	return &wire.Message{Header: wire.Header{ID: id, Type: kind}, Content: content}
}

// outcome returns the error type of a task reply, or "" for success, and
// its message.
func outcome(t *testing.T, reply *wire.Message) (string, string) {
	t.Helper()
	if reply.Type != wire.TaskReply {
		t.Fatalf("reply of type %s", reply.Type)
	}
	if reply.Status == wire.StatusOK {
		return "", ""
	}
	var info wire.ErrorInfo
	if err := wire.DecodeContent(reply, &info); err != nil {
		t.Fatal(err)
	}
	return info.Type, info.Message
}

func popRun(t *testing.T, e *Engine, ctx context.Context) *wire.Message {
	t.Helper()
	m := e.queue.take()
	if m == nil {
		t.Fatal("nothing to run")
	}
	defer e.queue.done()
	return e.run(ctx, m)
}

// The controller counts a task as running once it sent it, so a client
// may interrupt it before the engine took it from its queue. It must still
// be interrupted, and not run at all.
func TestInterruptBeforeStart(t *testing.T) {
	e := newTestEngine(t)
	var calls atomic.Int32
	if err := e.Register("count", func() int { return int(calls.Add(1)) }); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	e.queue.push(work(t, wire.Apply, "t1", "count"))
	e.queue.push(work(t, wire.Apply, "t2", "count"))
	e.interrupt(errInterrupted)
	if typ, msg := outcome(t, popRun(t, e, ctx)); typ != "Interrupted" || !strings.Contains(msg, "interrupted") {
		t.Fatalf("task interrupted before it started: %q %q", typ, msg)
	}
	if typ, _ := outcome(t, popRun(t, e, ctx)); typ != "" {
		t.Fatalf("the interrupt also hit the next task: %q", typ)
	}
	if calls.Load() != 1 {
		t.Fatalf("count ran %d times, want once (the interrupted task must not run)", calls.Load())
	}
	if e.currentID() != "" {
		t.Fatalf("currentID() = %q after the task finished", e.currentID())
	}

	// Taken from the queue but not yet started.
	e.queue.push(work(t, wire.Apply, "t3", "count"))
	m := e.queue.take()
	e.interrupt(errInterrupted)
	if typ, _ := outcome(t, e.run(ctx, m)); typ != "Interrupted" {
		t.Fatalf("task interrupted between take and start: %q", typ)
	}
	e.queue.done()

	// With nothing running or queued, an interrupt has nothing to stop,
	// and later work is not affected.
	e.interrupt(errInterrupted)
	e.queue.push(work(t, wire.Apply, "t4", "count"))
	if typ, _ := outcome(t, popRun(t, e, ctx)); typ != "" {
		t.Fatalf("an interrupt of an idle engine hit a later task: %q", typ)
	}

	// Once a task has finished, an interrupt is for the next one queued.
	e.queue.push(work(t, wire.Apply, "t4b", "count"))
	e.interrupt(errInterrupted)
	if typ, _ := outcome(t, popRun(t, e, ctx)); typ != "Interrupted" {
		t.Fatalf("interrupt after a finished task, with one queued: %q", typ)
	}

	// Given ids, only those tasks are interrupted.
	e.queue.push(work(t, wire.Apply, "t4c", "count"))
	e.interrupt(errInterrupted, "t4b") // finished already
	if typ, _ := outcome(t, popRun(t, e, ctx)); typ != "" {
		t.Fatalf("an interrupt of a finished task hit the next one: %q", typ)
	}
	e.queue.push(work(t, wire.Apply, "t4d", "count"))
	e.interrupt(errInterrupted, "t4c", "t4d")
	if typ, _ := outcome(t, popRun(t, e, ctx)); typ != "Interrupted" {
		t.Fatalf("interrupt naming a queued task: %q", typ)
	}

	// An interrupt for a task that is then aborted lapses.
	e.queue.push(work(t, wire.Apply, "t5", "count"))
	e.queue.push(work(t, wire.Apply, "t6", "count"))
	e.interrupt(errInterrupted)
	if got := e.queue.remove([]string{"t5"}); len(got) != 1 {
		t.Fatalf("abort removed %d tasks", len(got))
	}
	if typ, _ := outcome(t, popRun(t, e, ctx)); typ != "" {
		t.Fatalf("the interrupt of an aborted task hit the next one: %q", typ)
	}
}

func TestInterruptRunning(t *testing.T) {
	e := newTestEngine(t)
	running := make(chan context.Context)
	if err := e.Register("wait", func(ctx context.Context) error {
		running <- ctx
		<-ctx.Done()
		return ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	e.queue.push(work(t, wire.Apply, "t1", "wait"))
	go func() {
		ctx := <-running
		if e.currentID() != "t1" {
			t.Errorf("currentID() = %q while t1 runs", e.currentID())
		}
		e.interrupt(errInterrupted, "t0") // another task: t1 goes on
		if ctx.Err() != nil {
			t.Error("an interrupt naming another task stopped the running one")
		}
		e.interrupt(errInterrupted)
	}()
	m := e.queue.take()
	reply := within(t, "an interrupted task", func() *wire.Message { return e.run(context.Background(), m) })
	if typ, _ := outcome(t, reply); typ != "Interrupted" {
		t.Fatalf("interrupted task: %q", typ)
	}
}

func TestTaskTimeout(t *testing.T) {
	e := newTestEngine(t)
	m := work(t, wire.Apply, "t1", "sleep", 3600.0)
	m.Timeout = time.Millisecond
	e.queue.push(m)
	m = e.queue.take()
	reply := within(t, "a task with a timeout", func() *wire.Message { return e.run(context.Background(), m) })
	if typ, msg := outcome(t, reply); typ != "TimeoutError" || !strings.Contains(msg, "timeout of 1ms") {
		t.Fatalf("timed-out task: %q %q", typ, msg)
	}
}

// Once the engine stops, it starts nothing more, even with work queued,
// and a task taken but not started ends with the engine's stop.
func TestStoppedEngineStartsNothing(t *testing.T) {
	e := newTestEngine(t)
	var calls atomic.Int32
	e.Register("count", func() { calls.Add(1) })
	ctx, stop := context.WithCancelCause(context.Background())
	e.queue.push(work(t, wire.Apply, "t1", "count"))
	e.queue.push(work(t, wire.Apply, "t2", "count"))
	m := e.queue.take()
	e.queue.close()
	stop(errStopping)
	if typ, msg := outcome(t, e.run(ctx, m)); typ != "EngineError" || !strings.Contains(msg, "shut down") {
		t.Fatalf("task of a stopped engine: %q %q", typ, msg)
	}
	if m := e.queue.next(); m != nil {
		t.Fatalf("a stopped engine took %s", m.ID)
	}
	if m := e.queue.take(); m != nil {
		t.Fatalf("a stopped engine let %s be taken", m.ID)
	}
	if calls.Load() != 0 || e.queue.len() != 1 {
		t.Fatalf("%d calls, %d queued; want none run and t2 left", calls.Load(), e.queue.len())
	}
}

func TestMapStopsWhenInterrupted(t *testing.T) {
	e := newTestEngine(t)
	var calls atomic.Int32
	e.Register("step", func(i int) int { // ignores its context
		calls.Add(1)
		if i == 2 {
			e.interrupt(errInterrupted)
		}
		return i
	})
	e.Register("check", func(i int) (int, error) {
		if i == 3 {
			return 0, valueError{"three"}
		}
		return i, nil
	})
	e.queue.push(work(t, wire.Map, "m1", "step", 0, 1, 2, 3, 4, 5))
	if typ, _ := outcome(t, popRun(t, e, context.Background())); typ != "Interrupted" {
		t.Fatalf("interrupted map: %q", typ)
	}
	if calls.Load() != 3 {
		t.Fatalf("the map ran %d items, want 3: the items after the interrupt must not run", calls.Load())
	}
	e.queue.push(work(t, wire.Map, "m2", "check", 0, 1, 2, 3, 4))
	if typ, msg := outcome(t, popRun(t, e, context.Background())); typ != "ValueError" || msg != "item 3: bad value: three" {
		t.Fatalf("failed map item: %q %q", typ, msg)
	}
}

type panickyResult struct{ X int }

func (panickyResult) MarshalMsgpack() ([]byte, error) { panic("cannot marshal") }

// Whatever a function returns, describing the result or error must not
// crash the engine.
func TestBadResults(t *testing.T) {
	e := newTestEngine(t)
	e.Register("bad_result", func() panickyResult { return panickyResult{} })
	e.Register("nil_error", func() error { var p *ptrError; return p })
	e.Register("chan", func() chan int { return make(chan int) })
	for _, tt := range []struct{ fn, typ, msg string }{
		{"bad_result", "Panic", "cannot marshal"},
		{"nil_error", "engine.ptrError", "panicked"},
		{"chan", "TypeError", "cannot send the result"},
	} {
		e.queue.push(work(t, wire.Apply, tt.fn, tt.fn))
		if typ, msg := outcome(t, popRun(t, e, context.Background())); typ != tt.typ || !strings.Contains(msg, tt.msg) {
			t.Errorf("%s: %q %q; want %q %q", tt.fn, typ, msg, tt.typ, tt.msg)
		}
	}
}

// A task that ends its goroutine (runtime.Goexit, as t.FailNow does) fails,
// and the engine goes on running work.
func TestGoexitInTask(t *testing.T) {
	e := newTestEngine(t)
	e.Register("goexit", func() { runtime.Goexit() })
	sent := make(chan *wire.Message, 10)
	e.post = func(ms ...*wire.Message) {
		for _, m := range ms {
			sent <- m
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	var replace func()
	replace = func() { wg.Go(func() { e.work(context.Background(), e.queue.take(), replace) }) }
	e.queue.push(work(t, wire.Apply, "t1", "goexit"))
	e.queue.push(work(t, wire.Apply, "t2", "echo", "still here"))
	replace()
	var replies []*wire.Message
	for len(replies) < 2 {
		select {
		case m := <-sent:
			replies = append(replies, m)
		case <-time.After(30 * time.Second):
			t.Fatalf("the engine stopped answering after a Goexit; replies: %d", len(replies))
		}
	}
	if replies[0].Parent != "t1" || replies[1].Parent != "t2" {
		t.Fatalf("replies to %s, %s", replies[0].Parent, replies[1].Parent)
	}
	if typ, msg := outcome(t, replies[0]); typ != "Panic" || !strings.Contains(msg, "Goexit") {
		t.Errorf("task that called Goexit: %q %q", typ, msg)
	}
	if typ, _ := outcome(t, replies[1]); typ != "" {
		t.Errorf("task after the Goexit: %q", typ)
	}
}
