package main

// Integration tests: they run the ipcluster command as real processes (the
// test binary, re-executed as the command), with real ZeroMQ sockets,
// CURVE, and engine processes, each in a temporary IPCLUSTER_DIR.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ipcluster/ipcluster/client"
	"github.com/ipcluster/ipcluster/engine"
	"github.com/ipcluster/ipcluster/internal/profile"
	"github.com/ipcluster/ipcluster/wire"
)

// asCommand makes the test binary behave as the ipcluster command; its
// engines (children that inherit it) then run with testEngineSetup.
const asCommand = "IPCLUSTER_TEST_AS_COMMAND"

func TestMain(m *testing.M) {
	if os.Getenv(asCommand) == "1" {
		os.Exit(run(os.Args[1:], options{engineSetup: testEngineSetup}))
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// testEngineSetup adds functions that tests need to the stock engine.
func testEngineSetup(e *engine.Engine) error {
	if os.Getenv("IPCLUSTER_TEST_ENGINE_FAIL") != "" {
		return errors.New("this engine was told to fail at start")
	}
	return e.Register("shout", func(ctx context.Context, s string) string {
		fmt.Printf("out: %s\n", s)
		fmt.Fprintf(os.Stderr, "err: %s\n", s)
		return strings.ToUpper(s)
	})
}

// env is a test's environment: a private IPCLUSTER_DIR and settings.
type env struct {
	t     *testing.T
	dir   string
	extra []string
}

func newEnv(t *testing.T, extra ...string) *env {
	dir := t.TempDir()
	e := &env{t: t, dir: dir, extra: append([]string{"IPCLUSTER_DIR=" + dir}, extra...)}
	// Whatever a test leaves running is stopped.
	t.Cleanup(func() { e.stopLeftovers() })
	return e
}

func (e *env) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), append([]string{asCommand + "=1", "IPCLUSTER_PROFILE="}, e.extra...)...)
	return cmd
}

// ipcluster runs a command to completion and returns its output.
func (e *env) ipcluster(args ...string) (string, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := e.command(ctx, args...).CombinedOutput()
	return string(out), err
}

func (e *env) mustRun(args ...string) string {
	e.t.Helper()
	out, err := e.ipcluster(args...)
	if err != nil {
		e.t.Fatalf("ipcluster %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (e *env) profile() *profile.Profile {
	return &profile.Profile{Name: profile.DefaultName, Dir: filepath.Join(e.dir, profile.DefaultName)}
}

// connect opens a client with the cluster's connection file.
func (e *env) connect() *client.Client {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, client.Options{ConnectionFile: e.profile().ClientFile()})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// stopLeftovers kills, by pid, any supervisor and engines a test left.
func (e *env) stopLeftovers() {
	// Jobs that joined from other processes: their owners stop their
	// launchers (mpiexec forwards the signal to its ranks).
	for _, j := range e.profile().Jobs() {
		if j.Owner > 0 && profile.Alive(j.Owner) {
			syscall.Kill(j.Owner, syscall.SIGTERM)
		}
	}
	st, err := profile.ReadState(e.profile().StatePath())
	if err != nil {
		return
	}
	if sched, ok := schedulerOf(st.Batch); ok && st.BatchID != "" { // a controller in a batch job
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		sched.Cancel(ctx, st.BatchID)
		cancel()
	}
	// The supervisor's launchers die with it (mpiexec is sent SIGTERM).
	for _, pid := range append([]int{st.SupervisorPID}, enginePIDs(st)...) {
		if pid > 0 && profile.Alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func enginePIDs(st *profile.State) []int {
	var pids []int
	for _, en := range st.Engines {
		pids = append(pids, en.PID)
	}
	return pids
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitGoneT waits for processes to exit, failing the test after a while.
func waitGoneT(t *testing.T, pids ...int) {
	t.Helper()
	for _, pid := range pids {
		if !waitGone(pid, 20*time.Second) {
			t.Fatalf("process %d is still running", pid)
		}
	}
}

func TestStartEnginesStop(t *testing.T) {
	e := newEnv(t)
	out := e.mustRun("start", "-n", "3", "--daemon")
	if !strings.Contains(out, "3 engines ready") || !strings.Contains(out, "client.json") {
		t.Fatalf("start --daemon said:\n%s", out)
	}
	st, err := profile.ReadState(e.profile().StatePath())
	if err != nil || len(st.Engines) != 3 {
		t.Fatalf("state = %+v, %v", st, err)
	}
	if info, err := os.Stat(e.profile().ClientFile()); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("client connection file: %v, %v", info.Mode(), err)
	}

	table := e.mustRun("engines")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID  HOST") {
		t.Fatalf("engines table:\n%s", table)
	}

	// A second start of the same profile is refused, clearly.
	out, err = e.ipcluster("start", "-n", "1")
	if err == nil || !strings.Contains(out, "already running") || !strings.Contains(out, fmt.Sprint(st.SupervisorPID)) {
		t.Fatalf("second start: %v\n%s", err, out)
	}

	c := e.connect()
	res, err := c.Apply(ctxT(t, 30*time.Second), "echo", []any{"Hello, World"}, client.Targets(client.All), client.Block)
	if err != nil || len(res) != 3 || res[2] != "Hello, World" {
		t.Fatalf("hello = %v, %v", res, err)
	}
	c.Close()

	out = e.mustRun("stop")
	if !strings.Contains(out, "stopped") {
		t.Fatalf("stop said: %s", out)
	}
	waitGoneT(t, append(enginePIDs(st), st.SupervisorPID)...)
	for _, f := range []string{e.profile().ClientFile(), e.profile().StatePath()} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", f, err)
		}
	}
	if out, err := e.ipcluster("stop"); err == nil || !strings.Contains(out, "no cluster is running") {
		t.Fatalf("stop with nothing running: %v %s", err, out)
	}
}

// foreground starts `ipcluster start` in the foreground and waits for it
// to say it is ready.
func (e *env) foreground(args ...string) (*exec.Cmd, *syncBuffer) {
	e.t.Helper()
	cmd := e.command(context.Background(), append([]string{"start"}, args...)...)
	out := &syncBuffer{}
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(out, pw)
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); pw.Close(); close(exited) }()
	e.t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Press Ctrl-C") {
				ready <- true
				io.Copy(io.Discard, pr)
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			e.t.Fatalf("start exited:\n%s", out)
		}
	case <-time.After(60 * time.Second):
		e.t.Fatalf("start not ready:\n%s", out)
	}
	return cmd, out
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestForegroundInterrupt(t *testing.T) {
	e := newEnv(t)
	cmd, out := e.foreground("-n", "2")
	st, err := profile.ReadState(e.profile().StatePath())
	if err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(os.Interrupt)
	waitGoneT(t, append(enginePIDs(st), cmd.Process.Pid)...)
	if !strings.Contains(out.String(), "ipcluster: stopped") {
		t.Fatalf("Ctrl-C did not stop in order:\n%s", out)
	}
}

func TestEngineKilled(t *testing.T) {
	// Short heartbeats make the test quick; the behaviour is the same at 1 s.
	e := newEnv(t, "IPCLUSTER_HEARTBEAT_PERIOD=200ms")
	e.mustRun("start", "-n", "2", "--daemon")
	c := e.connect()
	ctx := ctxT(t, 60*time.Second)
	engines, err := c.Engines(ctx)
	if err != nil || len(engines) != 2 {
		t.Fatal(engines, err)
	}

	// A direct task on an engine that is killed fails with EngineError.
	victim := engines[1]
	r, err := c.DirectView(client.Engines(victim.ID)).Apply(ctx, "sleep", 3600.0)
	if err != nil {
		t.Fatal(err)
	}
	waitRunning(t, c, r.ID())
	killed := time.Now()
	syscall.Kill(victim.PID, syscall.SIGKILL)
	within5s, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = r.Value(within5s)
	var ee *client.EngineError
	if !errors.As(err, &ee) || ee.Engine != victim.ID {
		t.Fatalf("task on a killed engine: %v", err)
	}
	t.Logf("EngineError %.2f s after SIGKILL: %v", time.Since(killed).Seconds(), err)

	// Start another engine, then a balanced task with a retry survives the
	// death of the engine it runs on.
	e2 := e.command(context.Background(), "engine")
	if err := e2.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e2.Process.Kill(); e2.Wait() })
	for len(c.IDs()) < 2 {
		if _, err := c.Engines(ctx); err != nil {
			t.Fatal(err)
		}
	}
	lv := c.LoadBalancedView().With(client.Retries(1))
	r, err = lv.Apply(ctx, "sh", "sleep 1; echo survived")
	if err != nil {
		t.Fatal(err)
	}
	info := waitRunning(t, c, r.ID())
	pid := 0
	engines, _ = c.Engines(ctx)
	for _, en := range engines {
		if en.ID == info.Engine {
			pid = en.PID
		}
	}
	syscall.Kill(pid, syscall.SIGKILL)
	res, err := client.Result[engine.ShellResult](ctx, r)
	if err != nil || res.Stdout != "survived\n" {
		t.Fatalf("retried task = %+v, %v", res, err)
	}
	md := r.Metadata()
	if md[0].Engine == info.Engine {
		t.Fatalf("the retry ran on the dead engine %d", info.Engine)
	}
	e.mustRun("stop")
}

// waitRunning polls the controller until the task runs.
func waitRunning(t *testing.T, c *client.Client, id string) wire.TaskInfo {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		st, err := c.TaskStatus(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if len(st) == 1 && st[0].State == wire.TaskRunning {
			return st[0]
		}
		time.Sleep(5 * time.Millisecond) // polling a condition
	}
	t.Fatalf("task %s never ran", id)
	return wire.TaskInfo{}
}

func TestOutputCapture(t *testing.T) {
	e := newEnv(t)
	e.mustRun("start", "-n", "2", "--daemon")
	var mu sync.Mutex
	streamed := map[string]string{}
	ctx := ctxT(t, 60*time.Second)
	c, err := client.Connect(ctx, client.Options{ConnectionFile: e.profile().ClientFile(), OnOutput: func(o client.Output) {
		mu.Lock()
		streamed[fmt.Sprintf("%d/%s", o.Engine, o.Stream)] += string(o.Data)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := c.DirectView(client.All).Apply(ctx, "shout", "hello")
	if err != nil {
		t.Fatal(err)
	}
	got, err := client.Results[string](ctx, r)
	if err != nil || got[0] != "HELLO" || got[1] != "HELLO" {
		t.Fatalf("shout = %v, %v", got, err)
	}
	for _, md := range r.Metadata() {
		if md.Stdout != "out: hello\n" || md.Stderr != "err: hello\n" {
			t.Errorf("engine %d output: stdout %q stderr %q", md.Engine, md.Stdout, md.Stderr)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if streamed["0/stdout"] != "out: hello\n" || streamed["1/stderr"] != "err: hello\n" {
		t.Errorf("streamed output = %q", streamed)
	}
	// Output outside tasks, and the engine's own log, stay in the engine's log.
	c.Close()
	e.mustRun("stop")
	logData, _ := os.ReadFile(filepath.Join(e.profile().LogDir(), "engine-0.log"))
	if bytes.Contains(logData, []byte("out: hello")) {
		t.Errorf("a task's output leaked into the engine log:\n%s", logData)
	}
}

func TestBadConnectionFiles(t *testing.T) {
	e := newEnv(t)
	e.mustRun("start", "-n", "1", "--daemon")
	old, err := os.ReadFile(e.profile().ClientFile())
	if err != nil {
		t.Fatal(err)
	}
	e.mustRun("stop")
	e.mustRun("start", "-n", "1", "--daemon")
	defer e.mustRun("stop")

	// A connection file of an earlier run holds keys the controller refuses.
	stale := filepath.Join(t.TempDir(), "stale.json")
	if err := os.WriteFile(stale, old, 0o600); err != nil {
		t.Fatal(err)
	}
	// Its endpoint may differ too: point it at the live controller.
	ci, _ := wire.ParseConnection(old)
	live, _ := wire.ReadConnectionFile(e.profile().ClientFile())
	ci.Endpoint = live.Endpoint
	wire.WriteConnectionFile(stale, ci)
	_, err = client.Connect(ctxT(t, 2*time.Second), client.Options{ConnectionFile: stale})
	if err == nil || !strings.Contains(err.Error(), "no answer from the controller") {
		t.Fatalf("stale credential: %v", err)
	}

	// A connection file others can read is refused, with the fix.
	os.Chmod(stale, 0o644)
	_, err = client.Connect(ctxT(t, 10*time.Second), client.Options{ConnectionFile: stale})
	var insecure *wire.InsecureFileError
	if !errors.As(err, &insecure) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable file: %v", err)
	}
	// An engine credential cannot act as a client.
	eng, _ := wire.ReadConnectionFile(e.profile().EngineFile())
	_, err = client.Connect(ctxT(t, 10*time.Second), client.Options{Connection: eng})
	if err == nil || !strings.Contains(err.Error(), "not a client") {
		t.Fatalf("engine credential as a client: %v", err)
	}
	eng.Role = wire.RoleClient // and lying about the role does not get past the controller
	_, err = client.Connect(ctxT(t, 2*time.Second), client.Options{Connection: eng})
	if err == nil {
		t.Fatal("an engine key was admitted on the client port")
	}
}

func TestStartErrors(t *testing.T) {
	t.Run("unknown config key", func(t *testing.T) {
		e := newEnv(t)
		os.MkdirAll(e.profile().Dir, 0o700)
		os.WriteFile(e.profile().ConfigPath(), []byte("[controller]\nheartbeat_perod = \"1s\"\n"), 0o600)
		out, err := e.ipcluster("start", "-n", "1")
		if err == nil || !strings.Contains(out, `heartbeat_perod`) || !strings.Contains(out, "heartbeat_period") {
			t.Fatalf("unknown key: %v\n%s", err, out)
		}
	})
	t.Run("engine fails at start", func(t *testing.T) {
		e := newEnv(t, "IPCLUSTER_TEST_ENGINE_FAIL=1")
		out, err := e.ipcluster("start", "-n", "2")
		if err == nil || !strings.Contains(out, "exited before the cluster was ready") || !strings.Contains(out, "told to fail") {
			t.Fatalf("failing engine: %v\n%s", err, out)
		}
		if running, _ := os.ReadFile(e.profile().StatePath()); running != nil {
			t.Errorf("state left after a failed start: %s", running)
		}
	})
	t.Run("bad flag value", func(t *testing.T) {
		e := newEnv(t)
		out, err := e.ipcluster("start", "-n", "-3")
		if err == nil || !strings.Contains(out, "cannot be negative") {
			t.Fatalf("-n -3: %v\n%s", err, out)
		}
	})
}
