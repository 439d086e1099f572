package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/ipcluster/ipcluster/wire"
)

func builtin(t testing.TB, name string) *function {
	t.Helper()
	fn, ok := builtins()[name]
	if !ok {
		t.Fatalf("no builtin %q", name)
	}
	return mustFunction(t, name, fn)
}

func TestBuiltinNames(t *testing.T) {
	var names []string
	for name := range builtins() {
		names = append(names, name)
	}
	want := []string{"echo", "getenv", "hostname", "mpi.allreduce", "mpi.barrier", "mpi.bcast", "mpi.info", "noop", "pid", "sh", "sleep"}
	if len(names) != len(want) {
		t.Fatalf("builtins = %v, want %v", names, want)
	}
	for _, name := range want {
		builtin(t, name) // each has a shape newFunction accepts
	}
}

func TestEcho(t *testing.T) {
	echo := builtin(t, "echo")
	ctx := context.Background()
	for _, arg := range []any{"Hello, World", 42, nil, []float64{1, 2, 3}, map[string]any{"a": []any{1, "b"}}} {
		args := values(t, arg)
		got, err := echo.call(ctx, args)
		if err != nil {
			t.Fatal(err)
		}
		v, ok := got.(wire.Value)
		if !ok {
			t.Fatalf("echo(%v) returned a %T, want the wire.Value unchanged", arg, got)
		}
		if unsafe.SliceData(v.Raw) != unsafe.SliceData(args[0].Raw) || !bytes.Equal(v.Raw, args[0].Raw) {
			t.Errorf("echo(%v) did not return its argument as received", arg)
		}
		// And it goes out again as it came.
		content, bufs, err := wire.EncodeResult(got)
		if err != nil {
			t.Fatal(err)
		}
		res, err := wire.DecodeResult(&wire.Message{Content: content, Buffers: bufs})
		if err != nil || res.Value == nil {
			t.Fatalf("decoding echo's result: %v", err)
		}
		back, err := res.Value.Decode()
		want, _ := args[0].Decode()
		if err != nil || !reflect.DeepEqual(back, want) {
			t.Errorf("echo(%v) came back as %#v, %v", arg, back, err)
		}
	}

	got, err := echo.call(ctx, values(t, "a", 1, []float64{2}))
	if want := []any{"a", int64(1), []float64{2}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("echo with several arguments = %#v, %v; want %#v", got, err, want)
	}
	got, err = echo.call(ctx, nil)
	if err != nil || !reflect.DeepEqual(got, []any{}) {
		t.Errorf("echo() = %#v, %v; want an empty list", got, err)
	}
}

func TestNoop(t *testing.T) {
	if got, err := builtin(t, "noop").call(context.Background(), nil); got != nil || err != nil {
		t.Fatalf("noop() = %v, %v", got, err)
	}
}

// within fails the test if fn does not return before a generous deadline:
// a hang is a failure, not a test timeout.
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

func TestSleep(t *testing.T) {
	sleep := builtin(t, "sleep")
	if _, err := sleep.call(context.Background(), values(t, 0.0)); err != nil {
		t.Fatalf("sleep(0) = %v", err)
	}
	if _, err := sleep.call(context.Background(), values(t, 0.001)); err != nil {
		t.Fatalf("sleep(0.001) = %v", err)
	}

	cause := errors.New("the reason it stopped")
	ctx, cancel := context.WithCancelCause(context.Background())
	started := make(chan struct{})
	type result struct {
		v   any
		err error
	}
	done := make(chan result, 1)
	long := values(t, 3600.0)
	go func() {
		close(started)
		v, err := sleep.call(ctx, long)
		done <- result{v, err}
	}()
	<-started
	cancel(cause)
	select {
	case r := <-done:
		if r.err != cause {
			t.Fatalf("cancelled sleep = %v, want the cause %v", r.err, cause)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("sleep ignored its cancellation")
	}

	// Already cancelled: it returns at once with the cause.
	err := within(t, "sleep in a cancelled context", func() error {
		_, err := sleep.call(ctx, long)
		return err
	})
	if err != cause {
		t.Fatalf("sleep in a cancelled context = %v", err)
	}
}

func runSh(t *testing.T, ctx context.Context, command string) (ShellResult, error) {
	t.Helper()
	got, err := builtin(t, "sh").call(ctx, values(t, command))
	if err != nil {
		return ShellResult{}, err
	}
	res, ok := got.(ShellResult)
	if !ok {
		t.Fatalf("sh returned a %T", got)
	}
	return res, nil
}

func TestSh(t *testing.T) {
	ctx := context.Background()
	res, err := runSh(t, ctx, "echo hi; echo err >&2; exit 3")
	if err != nil || res != (ShellResult{Stdout: "hi\n", Stderr: "err\n", Exit: 3}) {
		t.Fatalf("sh = %+v, %v", res, err)
	}
	res, err = runSh(t, ctx, "printf 'a b'")
	if err != nil || res != (ShellResult{Stdout: "a b"}) {
		t.Fatalf("sh = %+v, %v", res, err)
	}
	// Killed by a signal.
	res, err = runSh(t, ctx, "echo before; kill -9 $$")
	if err != nil || res.Exit != -1 || res.Stdout != "before\n" {
		t.Fatalf("sh killed by a signal = %+v, %v", res, err)
	}
	// The result goes out on the wire with its field names.
	content, bufs, err := wire.EncodeResult(ShellResult{Stdout: "o", Stderr: "e", Exit: 2})
	if err != nil {
		t.Fatal(err)
	}
	r, err := wire.DecodeResult(&wire.Message{Content: content, Buffers: bufs})
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Value.Decode()
	if want := map[string]any{"stdout": "o", "stderr": "e", "exit": int64(2)}; err != nil || !reflect.DeepEqual(m, want) {
		t.Fatalf("ShellResult on the wire = %#v, %v", m, err)
	}
}

// A command that leaves a process in the background holding its output
// (cmd &) still has a result: the shell's status and what it wrote.
func TestShBackground(t *testing.T) {
	res, err := runSh(t, context.Background(), "sleep 100 & echo $!")
	if err != nil {
		t.Fatalf("sh with a background process: %v", err)
	}
	pid, perr := strconv.Atoi(strings.TrimSpace(res.Stdout))
	if perr != nil || res.Exit != 0 {
		t.Fatalf("sh = %+v", res)
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

// gone reports whether process pid has ended: it no longer exists, or is a
// zombie that its parent (here possibly an init that does not reap) has
// not collected.
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// pid (comm) state ...: comm may contain spaces and parentheses.
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// groupMembers lists the live processes of process group pgid.
func groupMembers(pgid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:])) // state ppid pgrp ...
		if len(f) >= 3 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			out = append(out, pid)
		}
	}
	return out
}

func TestShCancelKillsProcessGroup(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("looks for the processes in /proc")
	}
	pids := filepath.Join(t.TempDir(), "pids")
	// The shell, a background sleep, a nested shell and its own
	// background sleep, all waiting.
	script := fmt.Sprintf(`F='%s'
sleep 100 & echo "sleep $!" >> "$F"
sh -c 'echo "nested $$" >> "$1"; sleep 100 & echo "nested-sleep $!" >> "$1"; wait' nested "$F" &
echo "shell $$" >> "$F"
sleep 100; wait`, pids)

	cause := errors.New("cancelled by the test")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	type result struct {
		res any
		err error
	}
	done := make(chan result, 1)
	sh, args := builtin(t, "sh"), values(t, script)
	go func() {
		res, err := sh.call(ctx, args)
		done <- result{res, err}
	}()

	// Wait until every process has written its pid.
	var recorded []int
	shell := 0
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, _ := os.ReadFile(pids)
		if lines := strings.Split(strings.TrimSpace(string(data)), "\n"); len(lines) == 4 {
			for _, l := range lines {
				what, n, _ := strings.Cut(l, " ")
				pid, err := strconv.Atoi(n)
				if err != nil {
					t.Fatalf("pid file: %q", data)
				}
				if what == "shell" {
					shell = pid
				}
				recorded = append(recorded, pid)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the processes did not all start; pid file: %q", data)
		}
		time.Sleep(time.Millisecond) // polling a condition
	}
	t.Cleanup(func() {
		if t.Failed() { // leave no process behind (once they are gone, their pids may be reused)
			for _, pid := range recorded {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	pgid, err := syscall.Getpgid(shell) // the shell leads its own group
	if err != nil || pgid != shell {
		t.Fatalf("the shell %d is not a process group leader: group %d, %v", shell, pgid, err)
	}
	if members := groupMembers(pgid); len(members) < 5 {
		t.Fatalf("process group %d = %v, want the two shells and three sleeps", pgid, members)
	}

	cancel(cause)
	select {
	case r := <-done:
		if r.err != cause {
			t.Fatalf("cancelled sh = %+v, %v; want the cause", r.res, r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("sh did not return after its cancellation")
	}

	deadline = time.Now().Add(30 * time.Second)
	for {
		var alive []int
		for _, pid := range recorded {
			if !gone(pid) {
				alive = append(alive, pid)
			}
		}
		members := groupMembers(pgid)
		if len(alive) == 0 && len(members) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes survived the cancellation: recorded %v alive, group %d has %v", alive, pgid, members)
		}
		time.Sleep(time.Millisecond) // polling a condition
	}
}

func TestHostnamePidGetenv(t *testing.T) {
	ctx := context.Background()
	want, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := builtin(t, "hostname").call(ctx, nil); err != nil || got != want {
		t.Errorf("hostname() = %v, %v; want %q", got, err, want)
	}
	if got, err := builtin(t, "pid").call(ctx, nil); err != nil || got != os.Getpid() {
		t.Errorf("pid() = %v, %v; want %d", got, err, os.Getpid())
	}
	t.Setenv("IPCLUSTER_TEST_GETENV", "some value")
	getenv := builtin(t, "getenv")
	if got, err := getenv.call(ctx, values(t, "IPCLUSTER_TEST_GETENV")); err != nil || got != "some value" {
		t.Errorf("getenv = %v, %v", got, err)
	}
	if got, err := getenv.call(ctx, values(t, "IPCLUSTER_TEST_UNSET_VARIABLE")); err != nil || got != "" {
		t.Errorf("getenv of an unset variable = %#v, %v", got, err)
	}
	if _, err := getenv.call(ctx, values(t, 1)); err == nil {
		t.Error("getenv accepted a number")
	}
}

// Outside an MPI job (and in this build without MPI) the mpi builtins say
// so; their use as ranks is tested under mpiexec in cmd/ipcluster.
func TestMPIBuiltinsOutsideMPI(t *testing.T) {
	ctx := context.Background()
	got, err := builtin(t, "mpi.info").call(ctx, nil)
	if info, ok := got.(MPIInfo); err != nil || !ok || info.Initialized || info.Size != 1 {
		t.Errorf("mpi.info = %+v, %v; want a world of one rank, not initialised", got, err)
	}
	for _, tc := range []struct {
		name string
		args []any
		want string
	}{
		{"mpi.allreduce", []any{[]float64{1}, "sum"}, "no MPI library (build with -tags mpi)"},
		{"mpi.allreduce", []any{[]float64{1}, "average"}, "average"},
		{"mpi.barrier", nil, "no MPI library"},
		{"mpi.bcast", []any{[]float64{1}, 0}, "no MPI library"},
	} {
		if _, err := builtin(t, tc.name).call(ctx, values(t, tc.args...)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s%v = %v, want an error naming %q", tc.name, tc.args, err, tc.want)
		}
	}
}
