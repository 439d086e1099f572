package client_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipcluster/ipcluster/client"
	"github.com/ipcluster/ipcluster/controller"
	"github.com/ipcluster/ipcluster/engine"
	"github.com/ipcluster/ipcluster/internal/clustertest"
	"github.com/ipcluster/ipcluster/transport"
	"github.com/ipcluster/ipcluster/transport/zmqnet"
	"github.com/ipcluster/ipcluster/wire"
)

// testFunctions are registered on every engine of the test clusters.
// "block" reports its engine on started (if not nil) once it runs, then
// waits until it is interrupted.
func testFunctions(flaky *atomic.Int32, started chan<- int) func(int, *engine.Engine) error {
	return func(_ int, e *engine.Engine) error {
		for name, fn := range map[string]any{
			"block": func(ctx context.Context) error {
				if started != nil {
					started <- e.ID()
				}
				<-ctx.Done()
				return context.Cause(ctx)
			},
			"square": func(x int) int { return x * x },
			"add":    func(a, b float64) float64 { return a + b },
			"sum": func(xs []float64) float64 {
				s := 0.0
				for _, x := range xs {
					s += x
				}
				return s
			},
			"fail":   func(msg string) error { return errors.New(msg) },
			"boom":   func() int { var m map[string]int; m["x"] = 1; return 0 },
			"whoami": func(ctx context.Context) int { return e.ID() },
			"flaky": func() (int, error) { // fails the first time in the whole cluster
				if flaky != nil && flaky.Add(1) == 1 {
					return 0, errors.New("first call fails")
				}
				return e.ID(), nil
			},
			"point": func(x, y int) point { return point{X: x, Y: y} },
		} {
			if err := e.Register(name, fn); err != nil {
				return err
			}
		}
		return nil
	}
}

type point struct{ X, Y int }

func start(t *testing.T, engines int) (*clustertest.Cluster, *client.Client) {
	c, cl, _ := startWatched(t, engines)
	return c, cl
}

// startWatched also returns the channel on which "block" reports that it
// has started, and on which engine.
func startWatched(t *testing.T, engines int) (*clustertest.Cluster, *client.Client, <-chan int) {
	return startOn(t, nil, engines)
}

// startOn starts a cluster on the network n (nil: in memory).
func startOn(t *testing.T, n transport.Network, engines int) (*clustertest.Cluster, *client.Client, <-chan int) {
	var flaky atomic.Int32
	started := make(chan int, 16)
	c := clustertest.Start(t, clustertest.Options{Engines: engines, Network: n, Setup: testFunctions(&flaky, started)})
	return c, c.Connect(t), started
}

// zeroMQ returns a ZeroMQ network closed when the test ends.
func zeroMQ(t *testing.T) transport.Network {
	n, err := zmqnet.New(zmqnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// Over real sockets, the engine's two goroutines and the client's waiting
// callers take turns at the connections (transport.Poller): a task that
// blocks must leave the engine answering (an interrupt reaches it, the
// controller hears heartbeats), and replies must reach callers that wait
// while others read the connection.
func TestTakingTurnsOverZeroMQ(t *testing.T) {
	started := make(chan int, 16)
	cluster := clustertest.Start(t, clustertest.Options{Engines: 2, Network: zeroMQ(t), Setup: testFunctions(nil, started),
		Controller: controller.Config{HeartbeatPeriod: 20 * time.Millisecond, HeartbeatMisses: 10}})
	c := cluster.Connect(t)
	ctx := ctx(t)
	v := c.DirectView(client.Engines(0))
	long, err := v.Apply(ctx, "block")
	if err != nil {
		t.Fatal(err)
	}
	<-started
	// Work queued behind the blocked task, and a heartbeat period or more
	// of silence from its goroutine: the engine must stay registered.
	queued, err := v.Apply(ctx, "echo", "after")
	if err != nil {
		t.Fatal(err)
	}
	other := c.DirectView(client.Engines(1))
	for i := range 50 {
		if v, err := other.Apply(ctx, "square", i); err != nil {
			t.Fatal(err)
		} else if got, err := v.Value(ctx); err != nil || got != int64(i*i) {
			t.Fatalf("square(%d) on the other engine = %v, %v", i, got, err)
		}
	}
	// Heartbeats go on while the task blocks: the controller sees new ones.
	seen := map[int64]bool{}
	for len(seen) < 4 {
		infos, err := c.Engines(ctx)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(infos, func(e wire.EngineInfo) bool { return e.ID == 0 })
		if i < 0 || infos[i].State == "dead" || infos[i].Running != long.IDs()[0] {
			t.Fatalf("engine 0 while its task blocks: %+v", infos)
		}
		seen[infos[i].LastHeartbeat] = true
	}
	if err := v.Interrupt(ctx); err != nil {
		t.Fatal(err)
	}
	var re *client.RemoteError
	if _, err := long.Value(ctx); !errors.As(err, &re) || re.Type != "Interrupted" {
		t.Fatalf("interrupted task: %v", err)
	}
	if got, err := queued.Value(ctx); err != nil || got != "after" {
		t.Fatalf("task queued behind it = %v, %v", got, err)
	}
	// Many callers waiting at once: one reads, the others are handed
	// their replies.
	var wg sync.WaitGroup
	all := c.DirectView(client.All)
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				r, err := all.Apply(ctx, "square", g*100+i)
				if err != nil {
					t.Error(err)
					return
				}
				got, err := client.Results[int](ctx, r)
				if err != nil || got[0] != (g*100+i)*(g*100+i) || got[1] != got[0] {
					t.Errorf("square(%d) = %v, %v", g*100+i, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestHelloWorld(t *testing.T) {
	_, c := start(t, 4)
	if got := c.IDs(); !reflect.DeepEqual(got, []int{0, 1, 2, 3}) {
		t.Fatalf("IDs() = %v", got)
	}
	res, err := c.Apply(ctx(t), "echo", []any{"Hello, World"}, client.Targets(client.All), client.Block)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]any{0: "Hello, World", 1: "Hello, World", 2: "Hello, World", 3: "Hello, World"}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("Apply = %v", res)
	}
}

func TestDirectView(t *testing.T) {
	_, c := start(t, 3)
	ctx := ctx(t)
	v := c.DirectView(client.All)

	r, err := v.Apply(ctx, "whoami")
	if err != nil {
		t.Fatal(err)
	}
	got, err := client.Results[int](ctx, r)
	if err != nil || !reflect.DeepEqual(got, map[int]int{0: 0, 1: 1, 2: 2}) {
		t.Fatalf("whoami = %v, %v", got, err)
	}

	if r, err = v.Push(ctx, map[string]any{"a": 10, "xs": []float64{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err = v.Pull(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Get(ctx); err != nil || !reflect.DeepEqual(got, map[int]any{0: int64(10), 1: int64(10), 2: int64(10)}) {
		t.Fatalf("pull a = %v, %v", got, err)
	}
	if r, err = v.Pull(ctx, "a", "xs"); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Get(ctx); err != nil || !reflect.DeepEqual(got[1], []any{int64(10), []float64{1, 2, 3}}) {
		t.Fatalf("pull a, xs = %v, %v", got, err)
	}
	// A namespace reference passes a pushed variable to a function.
	if r, err = v.Apply(ctx, "sum", wire.Ref("xs")); err != nil {
		t.Fatal(err)
	}
	if got, err := client.Results[float64](ctx, r); err != nil || got[2] != 6 {
		t.Fatalf("sum(xs) = %v, %v", got, err)
	}

	data := make([]float64, 10)
	for i := range data {
		data[i] = float64(i)
	}
	if r, err = v.Scatter(ctx, "part", data); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err = v.Pull(ctx, "part"); err != nil {
		t.Fatal(err)
	}
	parts, err := client.Results[[]float64](ctx, r)
	if err != nil || len(parts[0]) != 4 || len(parts[1]) != 3 || len(parts[2]) != 3 {
		t.Fatalf("scattered parts = %v, %v", parts, err)
	}
	gathered, err := v.Gather(ctx, "part")
	if err != nil || !reflect.DeepEqual(gathered, data) {
		t.Fatalf("Gather = %v, %v", gathered, err)
	}

	if r, err = v.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	r.Get(ctx)
	r, _ = v.Pull(ctx, "a")
	_, err = r.Get(ctx)
	var ce *client.CompositeError
	var re *client.RemoteError
	if !errors.As(err, &ce) || len(ce.Errors) != 3 || !errors.As(err, &re) || re.Type != "NameError" {
		t.Fatalf("pull after clear: %v", err)
	}

	m, err := v.Map(ctx, "square", []int{1, 2, 3, 4, 5, 6, 7})
	if err != nil {
		t.Fatal(err)
	}
	sq, err := client.Collect[int](ctx, m)
	if err != nil || !reflect.DeepEqual(sq, []int{1, 4, 9, 16, 25, 36, 49}) {
		t.Fatalf("direct map = %v, %v", sq, err)
	}
}

func TestLoadBalanced(t *testing.T) {
	_, c := start(t, 3)
	ctx := ctx(t)
	lv := c.LoadBalancedView()
	r, err := lv.Apply(ctx, "add", 1.5, 2)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := r.Value(ctx); err != nil || v != 3.5 {
		t.Fatalf("add = %v, %v", v, err)
	}
	md := r.Metadata()
	if len(md) != 1 || md[0].Engine < 0 || md[0].Status != "ok" || md[0].Started.IsZero() || md[0].Completed.Before(md[0].Started) {
		t.Fatalf("metadata = %+v", md)
	}

	items := make([]int, 1000)
	for i := range items {
		items[i] = i
	}
	for _, tc := range []struct {
		name string
		opts []client.MapOption
	}{
		{"auto chunks", nil},
		{"chunks of 7", []client.MapOption{client.ChunkSize(7)}},
		{"one per task", []client.MapOption{client.ChunkSize(1)}},
		{"unordered", []client.MapOption{client.ChunkSize(50), client.Ordered(false)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := lv.Map(ctx, "square", items, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			seen := make([]bool, len(items))
			for it, err := range m.Items(ctx) {
				if err != nil {
					t.Fatal(err)
				}
				if it.Value != int64(it.Index*it.Index) || seen[it.Index] {
					t.Fatalf("item %d = %v (seen %v)", it.Index, it.Value, seen[it.Index])
				}
				seen[it.Index] = true
			}
			if slices.Contains(seen, false) {
				t.Fatal("an item is missing")
			}
			got, err := client.Collect[int](ctx, m)
			if err != nil || got[999] != 999*999 {
				t.Fatalf("Collect = %v, %v", got[990:], err)
			}
		})
	}

	// Restricted to one engine.
	r, err = lv.With(client.Targets(client.Engines(2))).Apply(ctx, "whoami")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := client.Result[int](ctx, r); err != nil || v != 2 {
		t.Fatalf("restricted whoami = %v, %v", v, err)
	}
}

func TestRemoteErrors(t *testing.T) {
	_, c := start(t, 2)
	ctx := ctx(t)
	one := c.DirectView(client.Engines(1))
	tests := []struct {
		name     string
		fn       string
		args     []any
		wantType string
		wantMsg  string
	}{
		{"error", "fail", []any{"it broke"}, "Error", "it broke"},
		{"unknown function", "nope", nil, "NameError", `no function "nope" is registered on engine 1`},
		{"wrong argument type", "square", []any{"x"}, "TypeError", "argument 1 of square(int)"},
		{"wrong argument count", "add", []any{1.0}, "TypeError", "add(float64, float64) takes 2 arguments, got 1"},
		{"panic", "boom", nil, "Panic", "assignment to entry in nil map"},
		{"unknown name", "sum", []any{wire.Ref("missing")}, "NameError", `name "missing" is not defined on engine 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := one.Apply(ctx, tt.fn, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.Value(ctx)
			var re *client.RemoteError
			if !errors.As(err, &re) {
				t.Fatalf("err = %#v, want a *RemoteError", err)
			}
			if re.Engine != 1 || re.Type != tt.wantType || !strings.Contains(re.Message, tt.wantMsg) {
				t.Fatalf("RemoteError = %+v, want type %s and %q", re, tt.wantType, tt.wantMsg)
			}
			if tt.wantType == "Panic" && !strings.Contains(re.Traceback, "client_test.go") {
				t.Errorf("panic traceback does not show where: %s", re.Traceback)
			}
		})
	}
	// On several engines, failures make a CompositeError.
	_, err := c.Apply(ctx, "fail", []any{"everywhere"})
	var ce *client.CompositeError
	if !errors.As(err, &ce) || len(ce.Errors) != 2 || ce.Tasks != 2 {
		t.Fatalf("err = %v", err)
	}
	// The controller refuses a target that does not exist.
	_, err = c.Apply(ctx, "echo", []any{1}, client.Targets(client.Engines(7)))
	if err == nil || !strings.Contains(err.Error(), "engine 7 is not registered") {
		t.Fatalf("unknown target: %v", err)
	}
}

func TestInterruptTimeoutAbort(t *testing.T) {
	_, c, started := startWatched(t, 1)
	ctx := ctx(t)
	v := c.DirectView(client.Engines(0))

	long, err := v.Apply(ctx, "block")
	if err != nil {
		t.Fatal(err)
	}
	<-started
	var queued []*client.AsyncResult
	for range 3 {
		r, err := v.Apply(ctx, "echo", "queued")
		if err != nil {
			t.Fatal(err)
		}
		queued = append(queued, r)
	}
	for _, r := range queued[:2] {
		if err := r.Abort(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.Interrupt(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = long.Value(ctx)
	var re *client.RemoteError
	if !errors.As(err, &re) || re.Type != "Interrupted" {
		t.Fatalf("interrupted sleep: %v", err)
	}
	for _, r := range queued[:2] {
		_, err := r.Value(ctx)
		var ae *client.AbortedError
		if !errors.As(err, &ae) || ae.Engine != 0 {
			t.Fatalf("aborted task: %v", err)
		}
	}
	if v, err := queued[2].Value(ctx); err != nil || v != "queued" {
		t.Fatalf("task after the aborted ones = %v, %v", v, err)
	}

	r, err := v.With(client.Timeout(20*time.Millisecond)).Apply(ctx, "sleep", 3600.0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Value(ctx)
	var te *client.TimeoutError
	if !errors.As(err, &te) || te.Engine != 0 {
		t.Fatalf("timed-out task: %v", err)
	}

	// A wait that ends first is a TimeoutError too, wrapping the deadline.
	r, _ = v.Apply(ctx, "sleep", 3600.0)
	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	if _, err := r.Get(short); !errors.As(err, &te) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait timeout: %v", err)
	}
	c.Interrupt(ctx, client.All)
	r.Wait(ctx)
}

func TestRetries(t *testing.T) {
	_, c := start(t, 2)
	ctx := ctx(t)
	r, err := c.LoadBalancedView().With(client.Retries(1)).Apply(ctx, "flaky")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Value(ctx); err != nil {
		t.Fatalf("a retried task failed: %v", err)
	}
	st, err := c.TaskStatus(ctx, r.ID())
	if err != nil || len(st) != 1 || st[0].State != wire.TaskDone || st[0].Attempts != 2 {
		t.Fatalf("status = %+v, %v", st, err)
	}
	// Without retries the failure is the result.
	r, _ = c.LoadBalancedView().Apply(ctx, "fail", "no retry")
	if _, err := r.Value(ctx); err == nil {
		t.Fatal("a failing task succeeded")
	}
}

func TestSeveralClients(t *testing.T) {
	cl, a := start(t, 2)
	b := cl.Connect(t)
	ctx := ctx(t)
	if !reflect.DeepEqual(a.IDs(), b.IDs()) {
		t.Fatalf("clients disagree: %v %v", a.IDs(), b.IDs())
	}
	ra, _ := a.DirectView(client.All).Apply(ctx, "echo", "from a")
	rb, _ := b.DirectView(client.All).Apply(ctx, "echo", "from b")
	ga, err1 := ra.Get(ctx)
	gb, err2 := rb.Get(ctx)
	if err1 != nil || err2 != nil || ga[0] != "from a" || gb[1] != "from b" {
		t.Fatalf("a got %v, b got %v", ga, gb)
	}
	// A new engine is seen by both.
	cl.AddEngine(t, testFunctions(nil, nil))
	if err := cl.Controller.WaitEngines(ctx, 3); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client.Client{a, b} {
		engines, err := c.Engines(ctx)
		if err != nil || len(engines) != 3 || !slices.Equal(c.IDs(), []int{0, 1, 2}) {
			t.Fatalf("engines = %v, %v", engines, err)
		}
	}
	// b asks about a's task.
	st, err := b.TaskStatus(ctx, ra.ID())
	if err != nil || len(st) != 2 || st[0].State != wire.TaskDone {
		t.Fatalf("status of another client's task = %+v, %v", st, err)
	}
}

func TestTypedResults(t *testing.T) {
	_, c := start(t, 2)
	ctx := ctx(t)
	r, _ := c.DirectView(client.Engines(0)).Apply(ctx, "point", 3, 4)
	p, err := client.Result[point](ctx, r)
	if err != nil || p != (point{3, 4}) {
		t.Fatalf("point = %+v, %v", p, err)
	}
	if _, err := client.Result[string](ctx, r); err == nil {
		t.Fatal("a struct decoded into a string")
	}
	r, _ = c.DirectView(client.All).Apply(ctx, "echo", []float64{1, 2})
	if _, err := r.Value(ctx); err == nil {
		t.Fatal("Value accepted a two-task result")
	}
	arrays, err := client.Results[[]float64](ctx, r)
	if err != nil || !reflect.DeepEqual(arrays[1], []float64{1, 2}) {
		t.Fatalf("arrays = %v, %v", arrays, err)
	}
}

func TestEngineLeaves(t *testing.T) {
	cl, c, started := startWatched(t, 2)
	ctx := ctx(t)
	r, _ := c.DirectView(client.Engines(1)).Apply(ctx, "block")
	if e := <-started; e != 1 {
		t.Fatalf("block started on engine %d", e)
	}
	cl.StopEngine(1)
	_, err := r.Value(ctx)
	var ee *client.EngineError
	if !errors.As(err, &ee) || ee.Engine != 1 || !strings.Contains(ee.Reason, "shut down") {
		t.Fatalf("task of a stopping engine: %v", err)
	}
	engines, err := c.Engines(ctx)
	for len(engines) != 1 && err == nil {
		engines, err = c.Engines(ctx)
	}
	if err != nil || engines[0].ID != 0 {
		t.Fatalf("engines after one left = %v, %v", engines, err)
	}
	_, err = c.Apply(ctx, "echo", []any{1}, client.Targets(client.Engines(1)))
	if err == nil || !strings.Contains(err.Error(), "not registered") {
		t.Fatalf("apply on a gone engine: %v", err)
	}
}

func TestWaitForEngines(t *testing.T) {
	cl, c := start(t, 1)
	ctx := ctx(t)
	if err := c.WaitForEngines(ctx, 1); err != nil {
		t.Fatalf("waiting for the engine already there: %v", err)
	}
	short, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.WaitForEngines(short, 2); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "1 registered") {
		t.Fatalf("waiting with a cancelled context: %v", err)
	}
	for range 3 {
		cl.AddEngine(t, nil)
	}
	if err := c.WaitForEngines(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if ids := c.IDs(); len(ids) != 4 {
		t.Fatalf("after waiting for 4 engines the client knows %v", ids)
	}
	c.Close()
	if err := c.WaitForEngines(ctx, 5); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("waiting on a closed client: %v", err)
	}
}
