package client_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipcluster/ipcluster/client"
	"github.com/ipcluster/ipcluster/engine"
	"github.com/ipcluster/ipcluster/internal/clustertest"
	"github.com/ipcluster/ipcluster/wire"
)

// toySim is one rank of a toy simulation: ranks advance in lockstep with
// their neighbours, as under an MPI halo exchange (a rank may be one step
// ahead of a neighbour, no more), and record the parameter each step used.
type toySim struct {
	rank  int
	delay time.Duration // extra work per step, to make this rank slow
	dt    float64
	x     float64
	field []float64
	hist  []float64 // dt of each step
	steps atomic.Int64
	ended int // the step at which Steer said to stop; -1 while running
}

// coupler makes ranks wait for their neighbours' previous step.
type coupler struct {
	mu   sync.Mutex
	cond *sync.Cond
	done []int // last step finished, per rank
	stop bool
}

func newCoupler(n int) *coupler {
	c := &coupler{done: make([]int, n)}
	for i := range c.done {
		c.done[i] = -1
	}
	c.cond = sync.NewCond(&c.mu)
	return c
}

// exchange marks step finished on rank and waits until both neighbours
// have finished step-1, as a halo exchange would.
func (c *coupler) exchange(rank, step int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done[rank] = step
	c.cond.Broadcast()
	n := len(c.done)
	for !c.stop && (rank > 0 && c.done[rank-1] < step-1 || rank < n-1 && c.done[rank+1] < step-1) {
		c.cond.Wait()
	}
	return !c.stop
}

func (c *coupler) halt() {
	c.mu.Lock()
	c.stop = true
	c.cond.Broadcast()
	c.mu.Unlock()
}

// steeredJob runs n toy ranks as one job of a test cluster, each exposing
// dt, x and its slice of a rows x 3 field (shaped).
type steeredJob struct {
	cl    *clustertest.Cluster
	c     *client.Client
	job   *client.Job
	sims  []*toySim
	coup  *coupler
	loops sync.WaitGroup
}

func startSteeredJob(t *testing.T, n int, delays map[int]time.Duration) *steeredJob {
	t.Helper()
	j := &steeredJob{cl: clustertest.Start(t, clustertest.Options{}), coup: newCoupler(n)}
	var engines []*engine.Engine
	for r := range n {
		s := &toySim{rank: r, delay: delays[r], dt: 1, field: make([]float64, 3*(r+1)), ended: -1}
		for i := range s.field {
			s.field[i] = float64(100*r + i)
		}
		j.sims = append(j.sims, s)
		e := j.cl.AddEngineWith(t, engine.Options{JobKey: "toy", Rank: r, Size: n}, func(_ int, e *engine.Engine) error {
			return errors.Join(e.Expose("dt", &s.dt), e.Expose("x", &s.x, engine.ReadOnly()),
				e.Expose("field", &s.field, engine.Shape(r+1, 3)))
		})
		engines = append(engines, e)
	}
	for _, e := range engines {
		<-e.Registered()
	}
	j.c = j.cl.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := j.c.WaitForEngines(ctx, n); err != nil {
		t.Fatal(err)
	}
	j.job = j.c.Job(j.c.Jobs()[0].ID)
	for r, s := range j.sims {
		e := engines[r]
		j.loops.Go(func() {
			for step := 0; ; step++ {
				s.x += s.dt
				if s.delay > 0 {
					time.Sleep(s.delay) // work, not synchronisation
				}
				s.hist = append(s.hist, s.dt)
				s.steps.Store(int64(step))
				if !e.Steer(step) {
					s.ended = step
					return
				}
				if !j.coup.exchange(r, step) {
					return
				}
			}
		})
	}
	t.Cleanup(func() {
		// A paused job is released as its engines stop.
		j.coup.halt()
		j.cl.Stop(t)
		j.loops.Wait()
	})
	return j
}

// histories stops the job and returns each rank's dt per step, cut to the
// steps every rank made.
func (j *steeredJob) histories(t *testing.T) [][]float64 {
	t.Helper()
	if _, err := j.job.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	j.coup.halt()
	j.loops.Wait()
	n := len(j.sims[0].hist)
	for _, s := range j.sims {
		n = min(n, len(s.hist))
	}
	out := make([][]float64, len(j.sims))
	for i, s := range j.sims {
		out[i] = s.hist[:n]
	}
	return out
}

func TestSteerSetLandsAtTheSameStepOnEveryRank(t *testing.T) {
	j := startSteeredJob(t, 4, map[int]time.Duration{1: 200 * time.Microsecond, 3: 50 * time.Microsecond})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var sets []int
	for i := range 8 {
		step, err := j.job.Set(ctx, map[string]any{"dt": float64(i + 2)})
		if err != nil {
			t.Fatal(err)
		}
		sets = append(sets, step)
	}
	hist := j.histories(t)
	for r := 1; r < len(hist); r++ {
		for k := range hist[0] {
			if hist[r][k] != hist[0][k] {
				t.Fatalf("rank %d used dt %v at step %d, rank 0 used %v", r, hist[r][k], k, hist[0][k])
			}
		}
	}
	for i, s := range sets {
		if s+1 >= len(hist[0]) {
			t.Fatalf("set %d reported step %d; the ranks made %d steps", i, s, len(hist[0]))
		}
		if got, want := hist[0][s+1], float64(i+2); got != want {
			t.Errorf("set %d reported step %d, but step %d used dt %v, want %v", i, s, s+1, got, want)
		}
		if i > 0 && s < sets[i-1] {
			t.Errorf("set %d landed at step %d, before set %d at %d", i, s, i-1, sets[i-1])
		}
	}
}

func TestSteerPauseStepResume(t *testing.T) {
	j := startSteeredJob(t, 4, map[int]time.Duration{2: 100 * time.Microsecond})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := j.job.Pause(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkHeld := func(at int) {
		t.Helper()
		st, err := j.job.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st {
			if !s.Paused || s.Step != at {
				t.Errorf("rank %d: paused %v at step %d, want paused at %d", s.Rank, s.Paused, s.Step, at)
			}
		}
		for _, s := range j.sims {
			if got := s.steps.Load(); got != int64(at) {
				t.Errorf("rank %d's loop is at step %d, want %d", s.rank, got, at)
			}
		}
	}
	checkHeld(p)
	// Reading while paused lands at the paused step.
	snap, err := j.job.Pull(ctx, "x", "dt")
	if err != nil {
		t.Fatal(err)
	}
	if snap.Step != p {
		t.Errorf("pull while paused at %d read at step %d", p, snap.Step)
	}
	for _, r := range snap.Ranks {
		var x float64
		if err := snap.Get(r, "x", &x); err != nil {
			t.Fatal(err)
		}
		if x != float64(p+1) { // dt 1 for steps 0..p
			t.Errorf("rank %d: x = %v at step %d, want %d", r, x, p, p+1)
		}
	}
	for _, n := range []int{1, 10, 3} {
		at, err := j.job.Step(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if at != p+n {
			t.Errorf("step(%d) from %d held at %d, want %d", n, p, at, p+n)
		}
		p = at
		checkHeld(p)
	}
	r, err := j.job.Resume(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r != p {
		t.Errorf("resumed from step %d, want %d", r, p)
	}
	// Running again: a later pause lands later.
	p2, err := j.job.Pause(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p2 <= p {
		t.Errorf("paused again at %d, not after %d", p2, p)
	}
	checkHeld(p2)
}

func TestSteerGatherStacksRanks(t *testing.T) {
	j := startSteeredJob(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, step, err := j.job.Gather(ctx, "field")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Shape, []int{1 + 2 + 3, 3}) || a.DType != wire.Float64 {
		t.Fatalf("gathered a %s array of shape %v, want float64 [6 3]", a.DType, a.Shape)
	}
	got, err := wire.SliceOf[float64](a)
	if err != nil {
		t.Fatal(err)
	}
	var want []float64
	for _, s := range j.sims {
		want = append(want, s.field...)
	}
	if !slices.Equal(got, want) {
		t.Errorf("gathered %v at step %d, want %v", got, step, want)
	}
}

func TestSteerErrors(t *testing.T) {
	j := startSteeredJob(t, 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		call func() error
		want string // error type every rank reports
	}{
		{"unknown variable", func() error { _, err := j.job.Set(ctx, map[string]any{"nope": 1.0}); return err }, "NameError"},
		{"wrong type", func() error { _, err := j.job.Set(ctx, map[string]any{"dt": "fast"}); return err }, "TypeError"},
		{"read-only", func() error { _, err := j.job.Set(ctx, map[string]any{"x": 2.0}); return err }, "TypeError"},
		{"wrong length", func() error { _, err := j.job.Set(ctx, map[string]any{"field": []float64{1}}); return err }, "TypeError"},
		{"no checkpoint function", func() error { _, err := j.job.Checkpoint(ctx, t.TempDir()); return err }, "NotSupported"},
		{"unknown function", func() error { _, err := j.job.Call(ctx, "nope"); return err }, "NameError"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var ce *client.CompositeError
			if !errors.As(err, &ce) || len(ce.Errors) != 2 {
				t.Fatalf("got %v, want an error from each of 2 ranks", err)
			}
			for _, e := range ce.Errors {
				var re *client.RemoteError
				if !errors.As(e, &re) || re.Type != tc.want {
					t.Errorf("rank error %v, want type %s", e, tc.want)
				}
			}
		})
	}
	// Nothing was assigned by the failed sets, and the job still steers.
	snap, err := j.job.Pull(ctx, "dt")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := snap.Value(0, "dt"); v != 1.0 {
		t.Errorf("dt = %v after failed sets, want 1", v)
	}
}

func TestSteerRefusedByAnEngineThatDoesNotSteer(t *testing.T) {
	cl := clustertest.Start(t, clustertest.Options{})
	// Rank 0 steers; rank 1 is a plain engine, whose program never will.
	var dt float64
	steering := cl.AddEngineWith(t, engine.Options{JobKey: "mixed", Rank: 0, Size: 2}, func(_ int, e *engine.Engine) error {
		return e.Expose("dt", &dt)
	})
	cl.AddEngineWith(t, engine.Options{JobKey: "mixed", Rank: 1, Size: 2}, nil)
	c := cl.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.WaitForEngines(ctx, 2); err != nil {
		t.Fatal(err)
	}
	<-steering.Registered()
	_, err := c.Job(c.Jobs()[0].ID).Set(ctx, map[string]any{"dt": 2.0})
	var ce *client.CompositeError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want errors from both ranks", err)
	}
	types := map[string]bool{}
	for _, e := range ce.Errors {
		var re *client.RemoteError
		if errors.As(e, &re) {
			types[re.Type] = true
		}
	}
	if !types["NotSteering"] || !types["SteerCancelled"] {
		t.Errorf("errors %v, want NotSteering from rank 1 and SteerCancelled from rank 0", err)
	}
	if dt != 0 {
		t.Errorf("rank 0 assigned dt = %v though the request was cancelled", dt)
	}
}

func TestSteerStatusBeforeTheFirstSteeringPoint(t *testing.T) {
	cl := clustertest.Start(t, clustertest.Options{})
	var dt float64
	e := cl.AddEngineWith(t, engine.Options{JobKey: "early", Rank: 0, Size: 1}, func(_ int, e *engine.Engine) error {
		return e.Expose("dt", &dt)
	})
	c := cl.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.WaitForEngines(ctx, 1); err != nil {
		t.Fatal(err)
	}
	<-e.Registered()
	job := c.Job(c.Jobs()[0].ID)
	st, err := job.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Steering || len(st[0].Exposed) != 1 || st[0].Exposed[0].Name != "dt" {
		t.Fatalf("status %+v, want one rank not yet steering, exposing dt", st)
	}
	// A set made now is applied at the program's first steering point.
	done := make(chan error, 1)
	var at int
	go func() {
		var err error
		at, err = job.Set(ctx, map[string]any{"dt": 0.5})
		done <- err
	}()
	for {
		if st, err := job.Status(ctx); err == nil && st[0].Pending == 1 {
			break // the request waits on the engine
		}
	}
	e.Steer(7)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if at != 7 || dt != 0.5 {
		t.Errorf("set applied at step %d (dt %v), want at 7 with dt 0.5", at, dt)
	}
}

func TestSteerStopEndsEveryLoopAtOneStep(t *testing.T) {
	j := startSteeredJob(t, 4, map[int]time.Duration{0: 100 * time.Microsecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := j.job.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	j.loops.Wait() // every loop ended by itself, not by the coupler's halt
	for _, s := range j.sims {
		if s.ended < 0 || s.ended != j.sims[0].ended {
			t.Errorf("rank %d ended its loop at step %d, rank 0 at %d", s.rank, s.ended, j.sims[0].ended)
		}
	}
	if left := len(j.c.Jobs()); left != 0 {
		t.Errorf("%d jobs left after Stop", left)
	}
}

func TestSteerExecute(t *testing.T) {
	j := startSteeredJob(t, 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := j.job.Pause(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Exposed variables are globals: numbers assigned are written back,
	// read-only ones read, and arrays view the program's memory.
	snap, err := j.job.Execute(ctx, "dt = dt * 4\nfield[0] = -1.0\nx")
	if err != nil {
		t.Fatal(err)
	}
	if snap.Step != p {
		t.Errorf("cell ran at step %d, want the paused step %d", snap.Step, p)
	}
	for _, s := range j.sims {
		if v, _ := snap.Value(s.rank, "_"); v != s.x {
			t.Errorf("rank %d: the cell's value %v, want x = %v", s.rank, v, s.x)
		}
		if s.dt != 4 || s.field[0] != -1 {
			t.Errorf("rank %d: dt %v, field[0] %v after the cell, want 4 and -1", s.rank, s.dt, s.field[0])
		}
	}
	for _, tc := range []struct{ code, want string }{
		{"x = -1.0", `variable "x" is read-only`},
		{`dt = "fast"`, "cannot assign"},
		{"1 / 0", "division by zero"},
	} {
		_, err := j.job.Execute(ctx, tc.code)
		var ce *client.CompositeError
		if !errors.As(err, &ce) || len(ce.Errors) != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("cell %q: %v, want an error from each rank saying %q", tc.code, err, tc.want)
		}
	}
	if j.sims[0].dt != 4 {
		t.Errorf("dt = %v after the failed cells, want 4", j.sims[0].dt)
	}
}
