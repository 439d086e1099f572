//go:build mpi

package mpi

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
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
	mpiexec, err := exec.LookPath("mpiexec")
	if err != nil {
		t.Fatal("mpiexec not found: install Open MPI (apt-get install openmpi-bin libopenmpi-dev)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := []string{"-n", "4"}
	if os.Getuid() == 0 {
		args = append(args, "--allow-run-as-root")
	}
	args = append(args, "--oversubscribe", os.Args[0], "-test.run", "^TestRank", "-test.v")
	cmd := exec.CommandContext(ctx, mpiexec, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mpiexec: %v\n%s", err, out)
	}
	if got := strings.Count(string(out), "--- PASS: TestRankCollectives"); got != ranks {
		t.Fatalf("%d ranks passed the collectives, want %d:\n%s", got, ranks, out)
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
	r, s, _ := FromLauncher()
	if w.Rank() != r || w.Size() != s {
		t.Errorf("MPI says rank %d of %d, the launcher %d of %d", w.Rank(), w.Size(), r, s)
	}
	if name, err := ProcessorName(); err != nil || name == "" {
		t.Errorf("ProcessorName = %q, %v", name, err)
	}
	if err := w.Barrier(); err != nil {
		t.Fatal(err)
	}
}

func TestRankCollectives(t *testing.T) {
	w := rankOnly(t)
	rank := w.Rank()

	b := []float64{0, 0, 0}
	if rank == 2 {
		b = []float64{1.5, 2.5, 3.5}
	}
	if err := Bcast(w, b, 2); err != nil || !slices.Equal(b, []float64{1.5, 2.5, 3.5}) {
		t.Errorf("Bcast = %v, %v", b, err)
	}

	allreduce := func(name string, op Op, mine, want int32) {
		t.Helper()
		got := []int32{0}
		if err := Allreduce(w, []int32{mine}, got, op); err != nil || got[0] != want {
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
	if err := Allreduce(w, f, f, Sum); err != nil || !slices.Equal(f, []float32{6, 4}) {
		t.Errorf("in-place Allreduce = %v, %v", f, err)
	}
	u := []uint64{1 << 40}
	if err := Allreduce(w, u, u, Sum); err != nil || u[0] != 4<<40 {
		t.Errorf("uint64 Allreduce = %v, %v", u, err)
	}
	if err := Allreduce(w, []float64{1}, []float64{0}, Band); err == nil {
		t.Error("a bitwise and of float64 was accepted")
	}
	if err := Allreduce(w, []int{}, []int{}, Sum); err != nil {
		t.Errorf("Allreduce of empty slices: %v", err)
	}

	var red []int64
	if rank == 1 {
		red = make([]int64, 2)
	}
	if err := Reduce(w, []int64{int64(rank), 1}, red, Sum, 1); err != nil {
		t.Errorf("Reduce: %v", err)
	} else if rank == 1 && !slices.Equal(red, []int64{6, 4}) {
		t.Errorf("Reduce at the root = %v", red)
	}

	var all []int16
	if rank == 0 {
		all = make([]int16, 2*ranks)
	}
	if err := Gather(w, []int16{int16(rank), int16(10 * rank)}, all, 0); err != nil {
		t.Errorf("Gather: %v", err)
	} else if rank == 0 && !slices.Equal(all, []int16{0, 0, 1, 10, 2, 20, 3, 30}) {
		t.Errorf("Gather at the root = %v", all)
	}
	every := make([]uint8, ranks)
	if err := Allgather(w, []uint8{uint8(rank)}, every); err != nil || !slices.Equal(every, []uint8{0, 1, 2, 3}) {
		t.Errorf("Allgather = %v, %v", every, err)
	}
	var parts []float64
	if rank == 3 {
		parts = []float64{0, 1, 10, 11, 20, 21, 30, 31}
	}
	mine := make([]float64, 2)
	if err := Scatter(w, parts, mine, 3); err != nil || !slices.Equal(mine, []float64{float64(10 * rank), float64(10*rank + 1)}) {
		t.Errorf("Scatter = %v, %v", mine, err)
	}
}

func TestRankArgumentErrors(t *testing.T) {
	w := rankOnly(t)
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"root", Bcast(w, []int{1}, ranks), "root 4"},
		{"allreduce lengths", Allreduce(w, []int{1, 2}, []int{0}, Sum), "recv has 1 elements, want 2"},
		{"allgather lengths", Allgather(w, []int{1}, []int{0}), "recv has 1 elements, want 4"},
		{"destination", Send(w, []int{1}, -3, 0), "destination -3"},
		{"tag", Send(w, []int{1}, 0, -2), "tag -2"},
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
		err = errors.Join(Send(w, []float64{float64(rank)}, next, 3), func() error { st2, err = Recv(w, got, AnySource, AnyTag); return err }())
	} else {
		st2, err = Recv(w, got, AnySource, AnyTag)
		err = errors.Join(err, Send(w, []float64{float64(rank)}, next, 3))
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
	if err := w.Barrier(); err != nil {
		t.Fatal(err)
	}
}

func TestRankCommunicators(t *testing.T) {
	w := rankOnly(t)
	rank := w.Rank()
	half, err := w.Split(rank%2, -rank) // keys reverse the order
	if err != nil {
		t.Fatal(err)
	}
	if half.Size() != 2 || half.Rank() != 1-rank/2 {
		t.Errorf("Split: rank %d of %d, want %d of 2", half.Rank(), half.Size(), 1-rank/2)
	}
	sum := []int{0}
	if err := Allreduce(half, []int{rank}, sum, Sum); err != nil || sum[0] != map[int]int{0: 2, 1: 4}[rank%2] {
		t.Errorf("Allreduce over a half = %v, %v", sum, err)
	}
	if err := half.Free(); err != nil {
		t.Error(err)
	}
	if err := half.Barrier(); err == nil {
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
	if err := errors.Join(dup.Barrier(), dup.Free()); err != nil {
		t.Error(err)
	}
	if err := w.Free(); err == nil {
		t.Error("freeing the world succeeded")
	}
}
