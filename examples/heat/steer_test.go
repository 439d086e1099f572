package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipcluster/ipcluster/client"
	"github.com/ipcluster/ipcluster/controller"
	"github.com/ipcluster/ipcluster/engine"
	"github.com/ipcluster/ipcluster/internal/testenv"
	"github.com/ipcluster/ipcluster/mpi"
	"github.com/ipcluster/ipcluster/wire"
)

// asMainEnv, set to heat's arguments, makes the test binary run as heat.
const asMainEnv = "IPCLUSTER_TEST_HEAT_ARGS"

// steerGrid is the grid TestSteerUnderMPIExec runs: rows do not split
// evenly over 4 ranks.
const steerNX, steerNY = 40, 30

// heatJob is heat running as the ranks of one MPI job, registered with a
// controller in the test process.
type heatJob struct {
	cmd  *exec.Cmd
	out  *strings.Builder
	job  *client.Job
	done chan error
}

// startHeat runs this test binary as heat under mpiexec -n 4, its ranks
// the engines of job key, and waits until all four have registered.
func startHeat(t *testing.T, ctx context.Context, ctrl *controller.Controller, c *client.Client, key string, args ...string) *heatJob {
	t.Helper()
	mpiexec, margs := testenv.MPIExec(t, 4)
	conn, err := ctrl.EngineInfo().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	h := &heatJob{out: new(strings.Builder), done: make(chan error, 1)}
	h.cmd = exec.Command(mpiexec, append(margs, os.Args[0])...)
	h.cmd.Env = append(os.Environ(), asMainEnv+"="+strings.Join(args, " "),
		engine.ConnectionEnv+"="+string(conn), engine.JobEnv+"="+key)
	h.cmd.Stdout, h.cmd.Stderr = h.out, h.out
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { h.done <- h.cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-h.done:
		default:
			h.cmd.Process.Kill()
			<-h.done
		}
	})
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	info, err := c.WaitForJob(wctx, key, 4)
	if err != nil {
		t.Fatalf("%v\n%s", err, h.out)
	}
	h.job = c.Job(info.ID)
	return h
}

// expectField gathers T and requires it to equal the serial computation
// of the same steps with the same changes, number for number.
func expectField(t *testing.T, ctx context.Context, job *client.Job, p Params, changes []Change) int {
	t.Helper()
	a, step, err := job.Gather(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Shape, []int{steerNY, steerNX}) {
		t.Fatalf("gathered T of shape %v, want [%d %d]", a.Shape, steerNY, steerNX)
	}
	got, err := wire.SliceOf[float64](a)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Serial(steerNX, steerNY, step, p, changes)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("the field gathered at step %d differs from the serial computation of %d steps with changes %v", step, step, changes)
	}
	return step
}

// expectHeld requires every rank to be paused at step.
func expectHeld(t *testing.T, ctx context.Context, job *client.Job, step int) {
	t.Helper()
	st, err := job.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if !s.Paused || s.Step != step {
			t.Errorf("rank %d: paused %v at step %d, want paused at %d", s.Rank, s.Paused, s.Step, step)
		}
	}
}

// TestSteerUnderMPIExec steers heat running as 4 MPI ranks, each a real
// process exchanging halos through MPI, from a client: every change lands
// at the same step on every rank (the client checks each reply's step),
// the gathered field equals a serial computation of the same steps and
// changes, pause and step counts are exact, and a checkpoint restarts to
// the same field.
func TestSteerUnderMPIExec(t *testing.T) {
	if !mpi.Enabled {
		t.Skip("needs the build with the tag mpi")
	}
	if mpi.Initialized() {
		t.Skip("a rank")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ctrl, err := controller.New(controller.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cctx, stopCtrl := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { ctrl.Run(cctx) })
	defer func() { stopCtrl(); wg.Wait() }()
	c, err := client.Connect(ctx, client.Options{Connection: ctrl.ClientInfo()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	p := Params{Dt: 0.2, Alpha: 1, Boundary: 100}
	h := startHeat(t, ctx, ctrl, c, "heat-1", "-nx", "40", "-ny", "30", "-dt", "0.2", "-alpha", "1", "-boundary", "100")
	job := h.job

	paused, err := job.Pause(ctx)
	if err != nil {
		t.Fatalf("%v\n%s", err, h.out)
	}
	expectHeld(t, ctx, job, paused)
	expectField(t, ctx, job, p, nil)

	// A change while paused lands at the paused step; 10 steps later the
	// field is the serial one with dt halved from there.
	at, err := job.Set(ctx, map[string]any{"dt": 0.1})
	if err != nil || at != paused {
		t.Fatalf("set while paused at %d: step %d, %v", paused, at, err)
	}
	changes := []Change{{Step: at, P: Params{Dt: 0.1, Alpha: 1, Boundary: 100}}}
	held, err := job.Step(ctx, 10)
	if err != nil || held != paused+10 {
		t.Fatalf("step(10) from %d: held at %d, %v", paused, held, err)
	}
	expectHeld(t, ctx, job, held)
	expectField(t, ctx, job, p, changes)

	// A change while running lands at one step on every rank.
	if _, err := job.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	at, err = job.Set(ctx, map[string]any{"boundary": 50.0})
	if err != nil {
		t.Fatal(err)
	}
	changes = append(changes, Change{Step: at, P: Params{Dt: 0.1, Alpha: 1, Boundary: 50}})
	// A second client reads meanwhile, and a third vanishes mid-request.
	other, err := client.Connect(ctx, client.Options{Connection: ctrl.ClientInfo()})
	if err != nil {
		t.Fatal(err)
	}
	if snap, err := other.Job(job.ID()).Pull(ctx, "boundary"); err != nil {
		t.Fatal(err)
	} else if v, _ := snap.Value(0, "boundary"); v != 50.0 || snap.Step < at {
		t.Errorf("a second client read boundary %v at step %d, want 50 from step %d", v, snap.Step, at)
	}
	other.Close()
	gone, err := client.Connect(ctx, client.Options{Connection: ctrl.ClientInfo()})
	if err != nil {
		t.Fatal(err)
	}
	gctx, gcancel := context.WithCancel(ctx)
	go func() { gone.Job(job.ID()).Gather(gctx, "T") }()
	gcancel()
	gone.Close()

	paused, err = job.Pause(ctx)
	if err != nil {
		t.Fatal(err)
	}
	expectField(t, ctx, job, p, changes)
	energy, err := job.Call(ctx, "energy")
	if err != nil {
		t.Fatal(err)
	}
	if e0, _ := energy.Value(0, "energy"); e0 == nil || energy.Step != paused {
		t.Errorf("energy %v at step %d, want a value at %d", e0, energy.Step, paused)
	}

	// A checkpoint, then on: a second job restarted from it computes the
	// same field as the serial run.
	dir := t.TempDir()
	if at, err := job.Checkpoint(ctx, dir); err != nil || at != paused {
		t.Fatalf("checkpoint at step %d, %v; want %d", at, err, paused)
	}
	if err := job.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-h.done; err != nil {
		t.Fatalf("heat: %v\n%s", err, h.out)
	}
	h.done <- nil // for the cleanup
	r := startHeat(t, ctx, ctrl, c, "heat-2", "-nx", "40", "-ny", "30", "-restart", dir)
	if _, err := r.job.Step(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if got := expectField(t, ctx, r.job, p, changes); got < paused+7 {
		t.Errorf("the restarted job held at step %d, before %d", got, paused+7)
	}
	if err := r.job.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-r.done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("restarted heat: %v\n%s", err, r.out)
	}
	r.done <- nil
}
