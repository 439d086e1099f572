package engine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ipcluster/ipcluster/client"
	"github.com/ipcluster/ipcluster/engine"
	"github.com/ipcluster/ipcluster/internal/clustertest"
	"github.com/ipcluster/ipcluster/transport"
	"github.com/ipcluster/ipcluster/transport/memnet"
	"github.com/ipcluster/ipcluster/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var builtinNames = []string{"echo", "getenv", "hostname", "mpi.allreduce", "mpi.barrier", "mpi.bcast", "mpi.info", "noop", "pid", "sh", "sleep"}

func TestRegister(t *testing.T) {
	e, err := engine.New(engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Functions(); !reflect.DeepEqual(got, builtinNames) {
		t.Fatalf("Functions() of a new engine = %v, want the builtins %v", got, builtinNames)
	}
	for _, name := range builtinNames {
		err := e.Register(name, func() {})
		if err == nil || !strings.Contains(err.Error(), `"`+name+`" is already registered`) {
			t.Errorf("Register(%q) over a builtin: %v", name, err)
		}
	}
	if err := e.Register("zeta", func(x int) int { return x }); err != nil {
		t.Fatal(err)
	}
	if err := e.Register("alpha", func() {}); err != nil {
		t.Fatal(err)
	}
	if err := e.Register("zeta", func() {}); err == nil || !strings.Contains(err.Error(), `"zeta" is already registered`) {
		t.Errorf("a second zeta: %v", err)
	}
	if err := e.Register("bad", 42); err == nil || !strings.Contains(err.Error(), "bad") {
		t.Errorf("Register of a non-function: %v", err)
	}
	got := e.Functions()
	want := append([]string{"alpha"}, builtinNames...)
	want = append(want, "zeta")
	if !reflect.DeepEqual(got, want) || !slices.IsSorted(got) {
		t.Fatalf("Functions() = %v, want %v", got, want)
	}
	if slices.Contains(got, "bad") {
		t.Error("a refused function is listed")
	}
}

func TestNewOptions(t *testing.T) {
	if _, err := engine.New(engine.Options{Timeout: -time.Second}); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("negative timeout: %v", err)
	}
}

// runEngine runs e until the test ends, then stops it and checks that Run
// ended in an orderly way.
func runEngine(t *testing.T, e *engine.Engine) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

func waitRegistered(t *testing.T, e *engine.Engine) {
	t.Helper()
	select {
	case <-e.Registered():
	case <-time.After(30 * time.Second):
		t.Fatal("the engine did not register")
	}
}

func TestID(t *testing.T) {
	cl := clustertest.Start(t, clustertest.Options{Engines: 1})
	e, err := engine.New(engine.Options{Connection: cl.Controller.EngineInfo(), Network: cl.Net})
	if err != nil {
		t.Fatal(err)
	}
	if e.ID() != -1 {
		t.Fatalf("ID() before registration = %d", e.ID())
	}
	select {
	case <-e.Registered():
		t.Fatal("Registered() is closed before Run")
	default:
	}
	runEngine(t, e)
	waitRegistered(t, e)
	if e.ID() != 1 {
		t.Fatalf("ID() = %d, want 1 (the cluster's second engine)", e.ID())
	}
	c := cl.Connect(t)
	ctx := testCtx(t)
	engines, err := c.Engines(ctx)
	if err != nil || len(engines) != 2 || engines[1].ID != 1 || !reflect.DeepEqual(engines[1].Functions, builtinNames) {
		t.Fatalf("engines = %+v, %v", engines, err)
	}
	r, err := c.DirectView(client.Engines(1)).Apply(ctx, "pid")
	if err != nil {
		t.Fatal(err)
	}
	if pid, err := client.Result[int](ctx, r); err != nil || pid != os.Getpid() {
		t.Fatalf("pid on engine 1 = %v, %v", pid, err)
	}
}

func testFunctions(_ int, e *engine.Engine) error {
	for name, fn := range map[string]any{
		"inverse": func(x float64) (float64, error) {
			if x == 0 {
				return 0, errors.New("division by zero")
			}
			return 1 / x, nil
		},
		"sum": func(xs []float64) float64 {
			s := 0.0
			for _, x := range xs {
				s += x
			}
			return s
		},
		"scale": func(xs []float64, k float64) []float64 {
			out := make([]float64, len(xs))
			for i, x := range xs {
				out[i] = k * x
			}
			return out
		},
	} {
		if err := e.Register(name, fn); err != nil {
			return err
		}
	}
	return nil
}

func TestMapItemError(t *testing.T) {
	cl := clustertest.Start(t, clustertest.Options{Engines: 1, Setup: testFunctions})
	c := cl.Connect(t)
	ctx := testCtx(t)
	m, err := c.DirectView(client.Engines(0)).Map(ctx, "inverse", []float64{1, 2, 0, 4})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Get(ctx)
	var re *client.RemoteError
	if !errors.As(err, &re) || re.Type != "Error" || !strings.HasPrefix(re.Message, "item 2: ") ||
		!strings.Contains(re.Message, "division by zero") {
		t.Fatalf("map with a failing item: %v", err)
	}
	// An item that cannot be decoded names its index too.
	m, err = c.DirectView(client.Engines(0)).Map(ctx, "sum", []any{[]float64{1}, "not an array"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Get(ctx)
	if !errors.As(err, &re) || re.Type != "TypeError" || !strings.HasPrefix(re.Message, "item 1: argument 1 of sum([]float64)") {
		t.Fatalf("map with an item of the wrong type: %v", err)
	}
	got, err := client.Collect[float64](ctx, mustMap(t, c, ctx, "inverse", []float64{1, 2, 4}))
	if err != nil || !reflect.DeepEqual(got, []float64{1, 0.5, 0.25}) {
		t.Fatalf("map = %v, %v", got, err)
	}
}

func mustMap(t *testing.T, c *client.Client, ctx context.Context, fn string, items any) *client.MapResult {
	t.Helper()
	m, err := c.DirectView(client.Engines(0)).Map(ctx, fn, items)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestNamespace(t *testing.T) {
	cl := clustertest.Start(t, clustertest.Options{Engines: 2, Setup: testFunctions})
	c := cl.Connect(t)
	ctx := testCtx(t)
	v := c.DirectView(client.All)
	data := []float64{1, 2, 3, 4.5}
	r, err := v.Push(ctx, map[string]any{"xs": data, "k": 2.0})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx); err != nil {
		t.Fatal(err)
	}
	data[0] = 100 // the engines hold their own copy

	r, err = v.Apply(ctx, "sum", wire.Ref("xs"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := client.Results[float64](ctx, r); err != nil || !reflect.DeepEqual(got, map[int]float64{0: 10.5, 1: 10.5}) {
		t.Fatalf("sum(xs) = %v, %v", got, err)
	}
	r, err = v.Apply(ctx, "scale", wire.Ref("xs"), wire.Ref("k"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := client.Results[[]float64](ctx, r); err != nil || !reflect.DeepEqual(got[1], []float64{2, 4, 6, 9}) {
		t.Fatalf("scale(xs, k) = %v, %v", got, err)
	}
	r, err = v.Pull(ctx, "xs")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := client.Results[[]float64](ctx, r); err != nil || !reflect.DeepEqual(got[0], []float64{1, 2, 3, 4.5}) {
		t.Fatalf("pull xs = %v, %v", got, err)
	}

	one := c.DirectView(client.Engines(1))
	r, err = one.Pull(ctx, "missing")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Get(ctx)
	var re *client.RemoteError
	if !errors.As(err, &re) || re.Type != "NameError" || re.Engine != 1 || !strings.Contains(re.Message, `name "missing" is not defined on engine 1`) {
		t.Fatalf("pull of a missing name: %v", err)
	}
	r, err = one.Apply(ctx, "sum", wire.Ref("missing"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err = r.Value(ctx); !errors.As(err, &re) || re.Type != "NameError" {
		t.Fatalf("apply with a missing reference: %v", err)
	}
}

// engineConnection returns a well-formed engine credential for endpoint.
func engineConnection(t testing.TB, endpoint string) *wire.ConnectionInfo {
	t.Helper()
	server, err := wire.NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	own, err := wire.NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	ci := &wire.ConnectionInfo{Version: wire.Version, Role: wire.RoleEngine, Endpoint: endpoint,
		ControllerKey: server.Public, KeyPair: own, HMACKey: wire.NewHMACKey(), ClusterID: "test"}
	if err := ci.Check(); err != nil {
		t.Fatal(err)
	}
	return ci
}

func TestNoController(t *testing.T) {
	ci := engineConnection(t, "tcp://127.0.0.1:1")
	e, err := engine.New(engine.Options{Connection: ci, Network: memnet.New(), Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = within(t, "Run without a controller", func() error { return e.Run(context.Background()) })
	if !errors.Is(err, engine.ErrControllerLost) || !strings.Contains(err.Error(), "no answer to registration") {
		t.Fatalf("Run without a controller = %v, want ErrControllerLost", err)
	}
	if e.ID() != -1 {
		t.Fatalf("ID() = %d", e.ID())
	}
}

func within[T any](t *testing.T, what string, fn func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- fn() }()
	select {
	case v := <-done:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not return", what)
		panic("unreachable")
	}
}

func TestConnectionRole(t *testing.T) {
	cl := clustertest.Start(t, clustertest.Options{Engines: 0})
	e, err := engine.New(engine.Options{Connection: cl.Controller.ClientInfo(), Network: cl.Net})
	if err != nil {
		t.Fatal(err)
	}
	err = e.Run(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), "the connection info is for a client, not an engine") {
		t.Fatalf("Run with a client's credential = %v", err)
	}
}

func TestConnectionSources(t *testing.T) {
	cl := clustertest.Start(t, clustertest.Options{Engines: 0})
	ci := cl.Controller.EngineInfo()
	data, err := ci.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "engine.json")
	if err := wire.WriteConnectionFile(file, ci); err != nil {
		t.Fatal(err)
	}
	c := cl.Connect(t)
	n := 0
	for _, tt := range []struct {
		name string
		env  map[string]string
		opts engine.Options
	}{
		{"IPCLUSTER_CONNECTION", map[string]string{engine.ConnectionEnv: string(data)}, engine.Options{}},
		{"ConnectionFile", nil, engine.Options{ConnectionFile: file}},
		{"IPCLUSTER_CONNECTION_FILE", map[string]string{engine.ConnectionFileEnv: file}, engine.Options{}},
		{"the variable before the file", map[string]string{engine.ConnectionEnv: string(data)}, engine.Options{ConnectionFile: "/nonexistent"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			tt.opts.Network = cl.Net
			e, err := engine.New(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			runEngine(t, e)
			waitRegistered(t, e)
			n++
			if e.ID() != n-1 {
				t.Fatalf("ID() = %d, want %d", e.ID(), n-1)
			}
			ctx := testCtx(t)
			// The client learns of the engine from an event of the controller.
			deadline := time.Now().Add(30 * time.Second)
			for !slices.Contains(c.IDs(), e.ID()) {
				if time.Now().After(deadline) {
					t.Fatalf("the client never saw engine %d: %v", e.ID(), c.IDs())
				}
				time.Sleep(time.Millisecond) // polling a condition
			}
			r, err := c.DirectView(client.Engines(e.ID())).Apply(ctx, "echo", tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if v, err := r.Value(ctx); err != nil || v != tt.name {
				t.Fatalf("echo = %v, %v", v, err)
			}
		})
	}

	for _, tt := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"none", nil, "no connection info"},
		{"bad JSON", map[string]string{engine.ConnectionEnv: "{"}, "$" + engine.ConnectionEnv},
		{"bad credential", map[string]string{engine.ConnectionEnv: `{"version": 1, "role": "engine"}`}, "$" + engine.ConnectionEnv},
		{"missing file", map[string]string{engine.ConnectionFileEnv: "/nonexistent/engine.json"}, "/nonexistent/engine.json"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(engine.ConnectionEnv, "")
			t.Setenv(engine.ConnectionFileEnv, "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			e, err := engine.New(engine.Options{Network: cl.Net})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Run(testCtx(t)); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run = %v, want an error about %q", err, tt.want)
			}
		})
	}
}

// fakeController plays the controller's side of the engine protocol by
// hand, so that tests choose what the engine hears, and when.
type fakeController struct {
	pending []*wire.Message // received in a batch, not yet taken
	rid     []byte
	net     *memnet.Network
	router  transport.Socket
	poller  transport.Poller
	ci      *wire.ConnectionInfo
	signer  *wire.Signer
	session *wire.Session
}

func newFakeController(t testing.TB) *fakeController {
	t.Helper()
	f := &fakeController{net: memnet.New(), session: wire.NewSession()}
	var ep string
	var err error
	if f.router, ep, err = f.net.Bind("tcp://fake:0", nil); err != nil {
		t.Fatal(err)
	}
	if f.poller, err = f.net.NewPoller(f.router); err != nil {
		t.Fatal(err)
	}
	f.ci = engineConnection(t, ep)
	f.signer = wire.NewSigner(f.ci.SigningKey())
	t.Cleanup(func() {
		f.poller.Close()
		f.router.Close()
		f.net.Close()
	})
	return f
}

// next returns the next message from the engine of one of the types,
// skipping others (heartbeats), and the engine's routing id.
func (f *fakeController) next(t testing.TB, types ...wire.Type) ([]byte, *wire.Message) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for len(f.pending) > 0 {
			m := f.pending[0]
			f.pending = f.pending[1:]
			if slices.Contains(types, m.Type) {
				return f.rid, m
			}
		}
		frames, err := f.router.Recv()
		if errors.Is(err, transport.ErrAgain) {
			f.poller.Wait(time.Second)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := f.signer.OpenAll(frames[1:], true)
		if err != nil {
			t.Fatal(err)
		}
		f.rid, f.pending = frames[0], msgs
	}
	t.Fatalf("the engine sent no %v", types)
	return nil, nil
}

func (f *fakeController) send(t testing.TB, rid []byte, m *wire.Message) string {
	t.Helper()
	f.session.Stamp(&m.Header)
	m.ID = f.session.NewID()
	if err := f.router.Send(append([][]byte{rid}, f.signer.Seal(m)...)); err != nil {
		t.Fatal(err)
	}
	return m.ID
}

// register answers the engine's registration.
func (f *fakeController) register(t testing.TB, id int) []byte {
	t.Helper()
	rid, reg := f.next(t, wire.Register)
	var info wire.EngineInfo
	if err := wire.DecodeContent(reg, &info); err != nil {
		t.Fatal(err)
	}
	if info.PID != os.Getpid() || !slices.Contains(info.Functions, "echo") {
		t.Fatalf("registration = %+v", info)
	}
	content, _ := wire.EncodeContent(wire.RegisterReplyContent{ID: id, HeartbeatMS: 10, ClusterID: "test"})
	f.send(t, rid, &wire.Message{Header: wire.Header{Type: wire.RegisterReply, Parent: reg.ID, Engine: id}, Content: content})
	return rid
}

func (f *fakeController) apply(t testing.TB, rid []byte, fn string, args ...any) string {
	t.Helper()
	content, bufs, err := wire.EncodeApply(fn, args)
	if err != nil {
		t.Fatal(err)
	}
	return f.send(t, rid, &wire.Message{Header: wire.Header{Type: wire.Apply}, Content: content, Buffers: bufs})
}

// reply returns the engine's reply to task id: its error type ("" for
// success) and its decoded result or error message.
func (f *fakeController) reply(t testing.TB, id string) (string, any) {
	t.Helper()
	_, m := f.next(t, wire.TaskReply)
	if m.Parent != id {
		t.Fatalf("reply to %s, want %s", m.Parent, id)
	}
	switch m.Status {
	case wire.StatusOK:
		r, err := wire.DecodeResult(m)
		if err != nil {
			t.Fatal(err)
		}
		if r.Value == nil {
			return "", nil
		}
		v, err := r.Value.Decode()
		if err != nil {
			t.Fatal(err)
		}
		return "", v
	case wire.StatusAborted:
		return "aborted", nil
	}
	var info wire.ErrorInfo
	if err := wire.DecodeContent(m, &info); err != nil {
		t.Fatal(err)
	}
	return info.Type, info.Message
}

// running is an engine whose Run goes on in a goroutine until the test
// ends or the engine stops.
type running struct {
	e    *engine.Engine
	done chan error
	err  error
	over bool
}

func startEngine(t testing.TB, f *fakeController, opts engine.Options) *running {
	t.Helper()
	opts.Connection, opts.Network = f.ci, f.net
	e, err := engine.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{e: e, done: make(chan error, 1)}
	go func() { r.done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		r.wait(t)
	})
	return r
}

// wait returns what Run returned.
func (r *running) wait(t testing.TB) error {
	t.Helper()
	if !r.over {
		select {
		case r.err = <-r.done:
			r.over = true
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return")
		}
	}
	return r.err
}

// After registering, an engine that hears nothing from the controller for
// its Timeout gives up with ErrControllerLost.
func TestControllerGoesSilent(t *testing.T) {
	f := newFakeController(t)
	r := startEngine(t, f, engine.Options{Timeout: 200 * time.Millisecond})
	e := r.e
	f.register(t, 7)
	waitRegistered(t, e)
	if e.ID() != 7 {
		t.Fatalf("ID() = %d, want 7", e.ID())
	}
	f.next(t, wire.Heartbeat) // it beats...
	err := r.wait(t)          // ...and, unanswered, gives up
	if !errors.Is(err, engine.ErrControllerLost) || !strings.Contains(err.Error(), "nothing heard") {
		t.Fatalf("Run = %v, want ErrControllerLost", err)
	}
}

// An engine can Run again after losing its controller.
func TestRunAgain(t *testing.T) {
	f := newFakeController(t)
	e, err := engine.New(engine.Options{Connection: f.ci, Network: f.net, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		done := make(chan error, 1)
		go func() { done <- e.Run(context.Background()) }()
		rid := f.register(t, i)
		id := f.apply(t, rid, "echo", "hello")
		if typ, v := f.reply(t, id); typ != "" || v != "hello" {
			t.Fatalf("run %d: echo = %q %v", i, typ, v)
		}
		if err := (&running{done: done}).wait(t); !errors.Is(err, engine.ErrControllerLost) {
			t.Fatalf("run %d: Run = %v", i, err)
		}
		if e.ID() != i {
			t.Fatalf("run %d: ID() = %d", i, e.ID())
		}
	}
}

// The controller counts a task as running once it has sent it, so an
// interrupt may reach the engine before the task has started: it must
// still stop that task (and only that one).
func TestInterruptRightAfterSend(t *testing.T) {
	f := newFakeController(t)
	e := startEngine(t, f, engine.Options{}).e
	var calls atomic.Int32
	e.Register("count", func(ctx context.Context) int { return int(calls.Add(1)) })
	rid := f.register(t, 0)
	for i := range 20 {
		id := f.apply(t, rid, "sleep", 3600.0)
		next := f.apply(t, rid, "count")
		m := &wire.Message{Header: wire.Header{Type: wire.Interrupt, Engine: 0}}
		if i%2 == 1 { // naming the task
			m.Content, _ = wire.EncodeContent(wire.IDsContent{IDs: []string{id}})
		}
		f.send(t, rid, m)
		if typ, _ := f.reply(t, id); typ != "Interrupted" {
			t.Fatalf("interrupted sleep: %q", typ)
		}
		if typ, _ := f.reply(t, next); typ != "" {
			t.Fatalf("the task after the interrupted one: %q", typ)
		}
	}
	if calls.Load() != 20 {
		t.Fatalf("count ran %d times", calls.Load())
	}
}

// A requested shutdown ends the running task with an EngineError, starts
// no queued work, says goodbye, and makes Run return nil.
func TestShutdown(t *testing.T) {
	f := newFakeController(t)
	r := startEngine(t, f, engine.Options{})
	e := r.e
	running := make(chan struct{})
	var calls atomic.Int32
	e.Register("block", func(ctx context.Context) error {
		close(running)
		<-ctx.Done()
		return ctx.Err()
	})
	e.Register("count", func() { calls.Add(1) })
	rid := f.register(t, 0)
	id := f.apply(t, rid, "block")
	f.apply(t, rid, "count")
	f.apply(t, rid, "count")
	<-running
	f.send(t, rid, &wire.Message{Header: wire.Header{Type: wire.Shutdown, Engine: 0}})
	if typ, msg := f.reply(t, id); typ != "EngineError" || !strings.Contains(msg.(string), "shut down") {
		t.Fatalf("task running at shutdown: %q %v", typ, msg)
	}
	f.next(t, wire.Unregister)
	if err := r.wait(t); err != nil {
		t.Fatalf("Run after a shutdown request = %v", err)
	}
	if calls.Load() != 0 {
		t.Fatalf("queued work ran %d times during the shutdown", calls.Load())
	}
}

func TestAbort(t *testing.T) {
	f := newFakeController(t)
	e := startEngine(t, f, engine.Options{}).e
	release := make(chan struct{})
	running := make(chan struct{})
	e.Register("block", func() { close(running); <-release })
	rid := f.register(t, 0)
	first := f.apply(t, rid, "block")
	second := f.apply(t, rid, "echo", 2)
	third := f.apply(t, rid, "echo", 3)
	<-running
	content, _ := wire.EncodeContent(wire.IDsContent{IDs: []string{second}})
	f.send(t, rid, &wire.Message{Header: wire.Header{Type: wire.Abort}, Content: content})
	if typ, _ := f.reply(t, second); typ != "aborted" {
		t.Fatalf("aborted task: %q", typ)
	}
	close(release)
	if typ, _ := f.reply(t, first); typ != "" {
		t.Fatalf("running task: %q", typ)
	}
	if typ, v := f.reply(t, third); typ != "" || v != int64(3) {
		t.Fatalf("task after the aborted one: %q %v", typ, v)
	}
}

// An engine whose registration the controller refuses stops at once with
// the controller's reason, and says what it registered as.
func TestRegistrationRefused(t *testing.T) {
	f := newFakeController(t)
	r := startEngine(t, f, engine.Options{JobKey: "job-x", Rank: 3, Size: 4})
	rid, reg := f.next(t, wire.Register)
	var info wire.EngineInfo
	if err := wire.DecodeContent(reg, &info); err != nil {
		t.Fatal(err)
	}
	if info.JobKey != "job-x" || info.Rank != 3 || info.Size != 4 {
		t.Errorf("registered as job %q rank %d of %d, want job-x rank 3 of 4", info.JobKey, info.Rank, info.Size)
	}
	content, _ := wire.EncodeContent(wire.ErrorInfo{Type: "BadRequest", Message: "job 1 already has rank 3 (engine 0)"})
	f.send(t, rid, &wire.Message{Header: wire.Header{Type: wire.Error, Parent: reg.ID}, Content: content})
	err := r.wait(t)
	if err == nil || !strings.Contains(err.Error(), "refused the registration: job 1 already has rank 3") {
		t.Errorf("Run = %v, want the refusal", err)
	}
}

// A task that ignores its cancellation does not hold up the engine's stop
// forever: Run returns a *StuckError naming it after StopGrace.
func TestStuckTask(t *testing.T) {
	f := newFakeController(t)
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{})
	e, err := engine.Start(context.Background(), engine.Options{Connection: f.ci, Network: f.net, StopGrace: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Register("wedged", func() { close(started); <-release }); err != nil {
		t.Fatal(err)
	}
	rid := f.register(t, 1)
	id := f.apply(t, rid, "wedged")
	<-started
	err = e.Close()
	var stuck *engine.StuckError
	if !errors.As(err, &stuck) || stuck.Task != id || !strings.Contains(err.Error(), "did not end within 50ms") {
		t.Fatalf("Close = %v, want a *StuckError for task %s", err, id)
	}
	select {
	case <-e.Done():
	default:
		t.Error("Done is not closed after Close")
	}
}

// Start runs an engine in the background until Close; the controller's
// shutdown also ends it, cleanly.
func TestStartClose(t *testing.T) {
	f := newFakeController(t)
	e, err := engine.Start(context.Background(), engine.Options{Connection: f.ci, Network: f.net})
	if err != nil {
		t.Fatal(err)
	}
	rid := f.register(t, 4)
	waitRegistered(t, e)
	f.send(t, rid, &wire.Message{Header: wire.Header{Type: wire.Shutdown}})
	<-e.Done()
	if err := e.Close(); err != nil {
		t.Errorf("Close after a shutdown = %v", err)
	}
	plain, err := engine.New(engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.Close(); err == nil {
		t.Error("Close of an engine not made by Start succeeded")
	}
}

// BenchmarkEcho1KB is one engine's share of a 1 KB apply: the request in,
// echo called, the reply out, over the in-memory network (workload 7 of
// the bench, per engine).
func BenchmarkEcho1KB(b *testing.B) {
	f := newFakeController(b)
	startEngine(b, f, engine.Options{})
	rid := f.register(b, 0)
	payload := make([]byte, 1024)
	b.ReportAllocs()
	for b.Loop() {
		f.reply(b, f.apply(b, rid, "echo", payload))
	}
}
