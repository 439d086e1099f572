//go:build mpi

package mpi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipcluster/ipcluster/internal/testenv"
)

// The tests run twice: go test starts TestUnderMPIExec, which runs this
// test binary as 4 ranks under a real mpiexec; in each rank, TestMain
// initialises MPI and the TestRank tests exercise every call.

const ranks = 4

func TestMain(m *testing.M) {
	if _, _, ok := FromLauncher(); !ok {
		os.Exit(m.Run())
	}
	if err := Init(); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(2)
	}
	code := m.Run()
	if err := Finalize(); err != nil && code == 0 {
		os.Stderr.WriteString(err.Error() + "\n")
		code = 2
	}
	os.Exit(code)
}

func TestUnderMPIExec(t *testing.T) {
	if Initialized() {
		t.Skip("a rank")
	}
	// $IPCLUSTER_TEST_MPIEXEC names the mpiexec of the MPI this binary
	// links, when it is not the default one (make test-mpich).
	mpiexec, args := testenv.MPIExec(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args = append(args, os.Args[0], "-test.run", "^TestRank", "-test.v")
	cmd := exec.CommandContext(ctx, mpiexec, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mpiexec: %v\n%s", err, out)
	}
	for _, name := range []string{"World", "Collectives", "ArgumentErrors", "PointToPoint", "Communicators", "InterruptedCollective", "EveryType"} {
		if got := strings.Count(string(out), "--- PASS: TestRank"+name+" ("); got != ranks {
			t.Fatalf("%d ranks passed TestRank%s, want %d:\n%s", got, name, ranks, out)
		}
	}
}

// rankOnly skips t outside mpiexec.
func rankOnly(t *testing.T) *Comm {
	t.Helper()
	if !Initialized() {
		t.Skip("runs as a rank under mpiexec (TestUnderMPIExec)")
	}
	w := World()
	if w.Size() != ranks {
		t.Fatalf("world size %d, want %d", w.Size(), ranks)
	}
	return w
}

func TestRankWorld(t *testing.T) {
	w := rankOnly(t)
	ctx := context.Background()
	r, s, _ := FromLauncher()
	if w.Rank() != r || w.Size() != s {
		t.Errorf("MPI says rank %d of %d, the launcher %d of %d", w.Rank(), w.Size(), r, s)
	}
	if name, err := ProcessorName(); err != nil || name == "" {
		t.Errorf("ProcessorName = %q, %v", name, err)
	}
	if err := w.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
}

// The collectives run twice: blocking (a context that cannot end) and
// nonblocking, waited for with a context that can.
func TestRankCollectives(t *testing.T) {
	w := rankOnly(t)
	cancellable, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for name, ctx := range map[string]context.Context{"blocking": context.Background(), "nonblocking": cancellable} {
		t.Run(name, func(t *testing.T) { collectives(ctx, t, w) })
	}
}

func collectives(ctx context.Context, t *testing.T, w *Comm) {
	rank := w.Rank()

	b := []float64{0, 0, 0}
	if rank == 2 {
		b = []float64{1.5, 2.5, 3.5}
	}
	if err := Bcast(ctx, w, b, 2); err != nil || !slices.Equal(b, []float64{1.5, 2.5, 3.5}) {
		t.Errorf("Bcast = %v, %v", b, err)
	}

	allreduce := func(name string, op Op, mine, want int32) {
		t.Helper()
		got := []int32{0}
		if err := Allreduce(ctx, w, []int32{mine}, got, op); err != nil || got[0] != want {
			t.Errorf("Allreduce %s = %v, %v; want %d", name, got, err, want)
		}
	}
	allreduce("sum", Sum, int32(rank), 6)
	allreduce("min", Min, int32(rank+1), 1)
	allreduce("max", Max, int32(rank+1), 4)
	allreduce("prod", Prod, int32(rank+1), 24)
	allreduce("land", Land, int32(rank), 0)
	allreduce("lor", Lor, int32(rank), 1)
	allreduce("band", Band, int32(rank|4), 4)
	allreduce("bor", Bor, int32(1<<rank), 15)

	f := []float32{float32(rank), 1}
	if err := Allreduce(ctx, w, f, f, Sum); err != nil || !slices.Equal(f, []float32{6, 4}) {
		t.Errorf("in-place Allreduce = %v, %v", f, err)
	}
	u := []uint64{1 << 40}
	if err := Allreduce(ctx, w, u, u, Sum); err != nil || u[0] != 4<<40 {
		t.Errorf("uint64 Allreduce = %v, %v", u, err)
	}
	if err := Allreduce(ctx, w, []float64{1}, []float64{0}, Band); err == nil {
		t.Error("a bitwise and of float64 was accepted")
	}
	if err := Allreduce(ctx, w, []int{}, []int{}, Sum); err != nil {
		t.Errorf("Allreduce of empty slices: %v", err)
	}

	var red []int64
	if rank == 1 {
		red = make([]int64, 2)
	}
	if err := Reduce(ctx, w, []int64{int64(rank), 1}, red, Sum, 1); err != nil {
		t.Errorf("Reduce: %v", err)
	} else if rank == 1 && !slices.Equal(red, []int64{6, 4}) {
		t.Errorf("Reduce at the root = %v", red)
	}

	var all []int16
	if rank == 0 {
		all = make([]int16, 2*ranks)
	}
	if err := Gather(ctx, w, []int16{int16(rank), int16(10 * rank)}, all, 0); err != nil {
		t.Errorf("Gather: %v", err)
	} else if rank == 0 && !slices.Equal(all, []int16{0, 0, 1, 10, 2, 20, 3, 30}) {
		t.Errorf("Gather at the root = %v", all)
	}
	every := make([]uint8, ranks)
	if err := Allgather(ctx, w, []uint8{uint8(rank)}, every); err != nil || !slices.Equal(every, []uint8{0, 1, 2, 3}) {
		t.Errorf("Allgather = %v, %v", every, err)
	}
	var parts []float64
	if rank == 3 {
		parts = []float64{0, 1, 10, 11, 20, 21, 30, 31}
	}
	mine := make([]float64, 2)
	if err := Scatter(ctx, w, parts, mine, 3); err != nil || !slices.Equal(mine, []float64{float64(10 * rank), float64(10*rank + 1)}) {
		t.Errorf("Scatter = %v, %v", mine, err)
	}
}

func TestRankArgumentErrors(t *testing.T) {
	w := rankOnly(t)
	ctx := context.Background()
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"root", Bcast(ctx, w, []int{1}, ranks), "root 4"},
		{"allreduce lengths", Allreduce(ctx, w, []int{1, 2}, []int{0}, Sum), "recv has 1 elements, want 2"},
		{"allgather lengths", Allgather(ctx, w, []int{1}, []int{0}), "recv has 1 elements, want 4"},
		{"destination", Send(ctx, w, []int{1}, -3, 0), "destination -3"},
		{"tag", Send(ctx, w, []int{1}, 0, -2), "tag -2"},
	}
	for _, tt := range tests {
		if tt.err == nil || !strings.Contains(tt.err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one naming %q", tt.name, tt.err, tt.want)
		}
	}
}

func TestRankPointToPoint(t *testing.T) {
	w := rankOnly(t)
	rank := w.Rank()
	next, prev := (rank+1)%ranks, (rank+ranks-1)%ranks
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// A ring of non-blocking sends and receives.
	in := make([]int32, 3)
	rr, err := Irecv(w, in, prev, 7)
	if err != nil {
		t.Fatal(err)
	}
	sr, err := Isend(w, []int32{int32(rank), 1, 2}, next, 7)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sr.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := rr.Wait(ctx)
	if err != nil || st.Source != prev || st.Tag != 7 || st.Count != 3 || in[0] != int32(prev) {
		t.Fatalf("Irecv = %v, %+v, %v", in, st, err)
	}

	// Blocking: even ranks send first, odd ranks receive first.
	got := make([]float64, 4)
	var st2 Status
	if rank%2 == 0 {
		err = errors.Join(Send(ctx, w, []float64{float64(rank)}, next, 3), func() error { st2, err = Recv(ctx, w, got, AnySource, AnyTag); return err }())
	} else {
		st2, err = Recv(ctx, w, got, AnySource, AnyTag)
		err = errors.Join(err, Send(ctx, w, []float64{float64(rank)}, next, 3))
	}
	if err != nil || st2.Source != prev || st2.Count != 1 || got[0] != float64(prev) {
		t.Fatalf("Send/Recv = %v, %+v, %v", got, st2, err)
	}

	// A receive whose message never comes is cancelled; a wait on it ends
	// with its context.
	never, err := Irecv(w, make([]int8, 1), prev, 99)
	if err != nil {
		t.Fatal(err)
	}
	short, stop := context.WithTimeout(ctx, 20*time.Millisecond)
	defer stop()
	if _, err := never.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting for a message that never comes: %v", err)
	}
	if err := never.Cancel(); err != nil {
		t.Errorf("Cancel: %v", err)
	}
	// A blocking receive with a context that ends is cancelled the same way.
	short2, stop2 := context.WithTimeout(ctx, 20*time.Millisecond)
	defer stop2()
	if _, err := Recv(short2, w, make([]int8, 1), prev, 98); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Recv of a message that never comes: %v", err)
	}
	if n := Abandoned(); n != 0 {
		t.Errorf("%d requests abandoned after cancelled receives", n)
	}
	if err := w.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRankCommunicators(t *testing.T) {
	w := rankOnly(t)
	ctx := context.Background()
	rank := w.Rank()
	half, err := w.Split(rank%2, -rank) // keys reverse the order
	if err != nil {
		t.Fatal(err)
	}
	if half.Size() != 2 || half.Rank() != 1-rank/2 {
		t.Errorf("Split: rank %d of %d, want %d of 2", half.Rank(), half.Size(), 1-rank/2)
	}
	sum := []int{0}
	if err := Allreduce(ctx, half, []int{rank}, sum, Sum); err != nil || sum[0] != map[int]int{0: 2, 1: 4}[rank%2] {
		t.Errorf("Allreduce over a half = %v, %v", sum, err)
	}
	if err := half.Free(); err != nil {
		t.Error(err)
	}
	if err := half.Barrier(ctx); err == nil {
		t.Error("a freed communicator still works")
	}
	color := Undefined
	if rank == 0 {
		color = 0
	}
	solo, err := w.Split(color, 0)
	if err != nil || (rank == 0) != (solo != nil) {
		t.Errorf("Split with Undefined: %v, %v", solo, err)
	}
	dup, err := w.Dup()
	if err != nil || dup.Size() != ranks || dup.Rank() != rank {
		t.Fatalf("Dup: %v, %v", dup, err)
	}
	if err := errors.Join(dup.Barrier(ctx), dup.Free()); err != nil {
		t.Error(err)
	}
	if err := w.Free(); err == nil {
		t.Error("freeing the world succeeded")
	}
}

// A collective that only some ranks call ends with its context on those
// ranks: the communicator is then broken there, the world is not, and the
// abandoned call is released once the other ranks join it after all.
func TestRankInterruptedCollective(t *testing.T) {
	w := rankOnly(t)
	bg := context.Background()
	dup, err := w.Dup()
	if err != nil {
		t.Fatal(err)
	}
	got := []float64{0}
	if w.Rank() == 0 {
		short, cancel := context.WithTimeout(bg, 50*time.Millisecond)
		defer cancel()
		err := Allreduce(short, dup, []float64{1}, got, Sum)
		var ie *InterruptedError
		if !errors.As(err, &ie) || ie.Call != "MPI_Allreduce" || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Allreduce on rank 0 alone = %v, want an *InterruptedError", err)
		}
		if err := dup.Barrier(bg); !errors.As(err, &ie) {
			t.Errorf("a later call on the broken communicator = %v", err)
		}
		if n := Abandoned(); n != 1 {
			t.Errorf("Abandoned() = %d, want 1", n)
		}
	}
	if err := w.Barrier(bg); err != nil {
		t.Fatalf("the world is broken too: %v", err)
	}
	if w.Rank() != 0 {
		if err := Allreduce(bg, dup, []float64{1}, got, Sum); err != nil || got[0] != ranks {
			t.Errorf("the late ranks' Allreduce = %v, %v", got, err)
		}
	}
	if err := w.Barrier(bg); err != nil {
		t.Fatal(err)
	}
	if w.Rank() == 0 {
		// Rank 0's abandoned call completes with the others' contributions;
		// testing it (as Abandoned does) drives MPI's progress.
		deadline := time.Now().Add(time.Minute)
		for Abandoned() != 0 {
			if time.Now().After(deadline) {
				t.Fatal("the abandoned Allreduce never completed")
			}
			runtime.Gosched()
		}
		if got[0] != ranks {
			t.Errorf("the abandoned Allreduce wrote %v, want %d", got[0], ranks)
		}
	}
}

// Every element type goes through every collective and point-to-point
// call with its own MPI datatype, and every call takes empty slices.
func TestRankEveryType(t *testing.T) {
	w := rankOnly(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	everyCall[int8](ctx, t, w)
	everyCall[int16](ctx, t, w)
	everyCall[int32](ctx, t, w)
	everyCall[int64](ctx, t, w)
	everyCall[int](ctx, t, w)
	everyCall[uint8](ctx, t, w)
	everyCall[uint16](ctx, t, w)
	everyCall[uint32](ctx, t, w)
	everyCall[uint64](ctx, t, w)
	everyCall[uint](ctx, t, w)
	everyCall[float32](ctx, t, w)
	everyCall[float64](ctx, t, w)
}

func everyCall[T Number](ctx context.Context, t *testing.T, w *Comm) {
	t.Helper()
	name := fmt.Sprintf("%T", T(0))
	rank := w.Rank()
	fail := func(call string, err error, got any) {
		t.Helper()
		t.Errorf("%s %s: %v (got %v)", name, call, err, got)
	}
	// Values that overflow no type: ranks are 0..3.
	sum := make([]T, 2)
	if err := Allreduce(ctx, w, []T{T(rank), 1}, sum, Sum); err != nil || sum[0] != 6 || sum[1] != ranks {
		fail("Allreduce", err, sum)
	}
	top := make([]T, 1)
	if err := Reduce(ctx, w, []T{T(rank)}, top, Max, 0); err != nil || (rank == 0 && top[0] != ranks-1) {
		fail("Reduce", err, top)
	}
	b := []T{0, 0}
	if rank == 1 {
		b = []T{7, 9}
	}
	if err := Bcast(ctx, w, b, 1); err != nil || b[0] != 7 || b[1] != 9 {
		fail("Bcast", err, b)
	}
	all := make([]T, ranks)
	if err := Allgather(ctx, w, []T{T(rank)}, all); err != nil || !slices.Equal(all, []T{0, 1, 2, 3}) {
		fail("Allgather", err, all)
	}
	if err := Gather(ctx, w, []T{T(rank)}, all, 2); err != nil || (rank == 2 && !slices.Equal(all, []T{0, 1, 2, 3})) {
		fail("Gather", err, all)
	}
	part := make([]T, 1)
	if err := Scatter(ctx, w, []T{3, 2, 1, 0}, part, 0); err != nil || part[0] != T(3-rank) {
		fail("Scatter", err, part)
	}
	next, prev := (rank+1)%ranks, (rank+ranks-1)%ranks
	in := make([]T, 1)
	rr, err := Irecv(w, in, prev, 5)
	if err != nil {
		t.Fatal(err)
	}
	if err := Send(ctx, w, []T{T(rank)}, next, 5); err != nil {
		fail("Send", err, nil)
	}
	if st, err := rr.Wait(ctx); err != nil || in[0] != T(prev) || st.Count != 1 {
		fail("Irecv", err, in)
	}

	// Empty slices: valid buffers for every call.
	var none []T
	for call, err := range map[string]error{
		"Allreduce": Allreduce(ctx, w, none, none, Sum),
		"Reduce":    Reduce(ctx, w, none, none, Sum, 0),
		"Bcast":     Bcast(ctx, w, none, 0),
		"Allgather": Allgather(ctx, w, none, none),
		"Gather":    Gather(ctx, w, none, none, 0),
		"Scatter":   Scatter(ctx, w, none, none, 0),
	} {
		if err != nil {
			fail(call+" of empty slices", err, nil)
		}
	}
	er, err := Irecv(w, none, prev, 6)
	if err != nil {
		t.Fatal(err)
	}
	if err := Send(ctx, w, none, next, 6); err != nil {
		fail("Send of nothing", err, nil)
	}
	if st, err := er.Wait(ctx); err != nil || st.Count != 0 {
		fail("Irecv of nothing", err, st)
	}
}
