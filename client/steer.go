package client

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/ipcluster/ipcluster/wire"
)

// Steering a running job: the job's program calls engine.Steer in its
// loop, and these calls act at its steering points. Each is applied by
// every rank of the job at the same step, which it returns; the call
// returns when every rank has applied it.

// RankStatus is one rank's steering state, as Job.Status reports it.
type RankStatus struct {
	Rank   int
	Engine int
	// Steering is false until the rank's program reaches its first
	// steering point; Step is the step of its last one.
	Steering    bool
	Step        int
	Paused      bool    // held at Step by Pause or Job.Step
	Waiting     bool    // held at Step until a request's step is agreed
	StepsPerSec float64 // steering points per second, lately
	Pending     int     // requests received and not yet applied
	Exposed     []wire.ExposedVar
	// Checkpoints reports whether the program takes checkpoints.
	Checkpoints bool
}

// Status reports each rank's steering state, in rank order. It is
// answered at once, not at a steering point.
func (j *Job) Status(ctx context.Context) ([]RankStatus, error) {
	got, err := j.steer(ctx, wire.Steering{Op: wire.SteerStatus})
	if err != nil {
		return nil, err
	}
	out := make([]RankStatus, len(got.ranks))
	for i, vals := range got.values {
		var st wire.SteerStatusContent
		if len(vals) != 1 {
			return nil, fmt.Errorf("client: rank %d answered status with %d values", got.ranks[i], len(vals))
		}
		if err := vals[0].DecodeInto(&st); err != nil {
			return nil, fmt.Errorf("client: rank %d status: %w", got.ranks[i], err)
		}
		out[i] = RankStatus{Rank: got.ranks[i], Engine: got.engines[i], Steering: st.Steering, Step: int(st.Step),
			Paused: st.Paused, Waiting: st.Waiting, StepsPerSec: st.StepsPerSec, Pending: st.Pending,
			Exposed: st.Exposed, Checkpoints: st.Checkpointer}
	}
	return out, nil
}

// Steers reports whether the job's program steers: its engines answer
// steering requests (a program made with engine.Start, exposing variables
// or calling engine.Steer), rather than serving only work.
func (j *Job) Steers(ctx context.Context) (bool, error) {
	_, err := j.Status(ctx)
	switch {
	case err == nil:
		return true, nil
	case refusedAll(err, "NotSteering"):
		return false, nil
	}
	return false, err
}

// Pause holds every rank at the same next steering point, and returns its
// step.
func (j *Job) Pause(ctx context.Context) (int, error) {
	return j.steerStep(ctx, wire.Steering{Op: wire.SteerPause})
}

// Resume lets a paused job run on, and returns the step it resumed from.
func (j *Job) Resume(ctx context.Context) (int, error) {
	return j.steerStep(ctx, wire.Steering{Op: wire.SteerResume})
}

// Step lets the job run n steering points from where it is (paused or
// not), then holds it again, and returns the step at which it holds.
func (j *Job) Step(ctx context.Context, n int) (int, error) {
	if n < 1 {
		return 0, fmt.Errorf("client: Step(%d): want at least 1 step", n)
	}
	return j.steerStep(ctx, wire.Steering{Op: wire.SteerStep, Steps: n})
}

// Set assigns exposed variables on every rank at the same step, and
// returns it. If a value does not fit a variable on some rank, that rank
// assigns none, and the error says so.
func (j *Job) Set(ctx context.Context, vars map[string]any) (int, error) {
	if len(vars) == 0 {
		return 0, fmt.Errorf("client: Set needs at least one variable")
	}
	names := slices.Sorted(maps.Keys(vars))
	values := make([]any, len(names))
	for i, n := range names {
		values[i] = vars[n]
	}
	return j.steerStep(ctx, wire.Steering{Op: wire.SteerSet, Names: names, Values: values})
}

// Checkpoint has every rank's program save its state into dir (each rank
// with its own file, by the program's checkpoint function) at the same
// step, and returns the step.
func (j *Job) Checkpoint(ctx context.Context, dir string) (int, error) {
	if dir == "" {
		return 0, fmt.Errorf("client: Checkpoint needs a directory")
	}
	return j.steerStep(ctx, wire.Steering{Op: wire.SteerCheckpoint, Dir: dir})
}

// Pull reads exposed variables on every rank at the same step. Values are
// decoded to their natural Go types (float64, int64, bool, string;
// numeric slices and arrays as []float64 and the like, or wire.Array with
// their shape).
func (j *Job) Pull(ctx context.Context, names ...string) (*Snapshot, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("client: Pull needs at least one name")
	}
	got, err := j.steer(ctx, wire.Steering{Op: wire.SteerGet, Names: names})
	if err != nil {
		return nil, err
	}
	return &Snapshot{Step: got.step, Ranks: got.ranks, Engines: got.engines, names: names, values: got.values}, nil
}

// Call calls the registered function fn with args on every rank at the
// same step, and returns its results by rank.
func (j *Job) Call(ctx context.Context, fn string, args ...any) (*Snapshot, error) {
	if args == nil {
		args = []any{}
	}
	got, err := j.steer(ctx, wire.Steering{Op: wire.SteerCall, Fn: fn, Args: args})
	if err != nil {
		return nil, err
	}
	return &Snapshot{Step: got.step, Ranks: got.ranks, Engines: got.engines, names: []string{fn}, values: got.values}, nil
}

// Execute runs a Starlark cell on every rank at the same step, with the
// exposed variables as globals: arrays view the program's memory, and
// scalars the cell assigns are written back. The value of a last
// expression is the result, by rank.
func (j *Job) Execute(ctx context.Context, code string) (*Snapshot, error) {
	got, err := j.steer(ctx, wire.Steering{Op: wire.SteerExec, Code: code})
	if err != nil {
		return nil, err
	}
	return &Snapshot{Step: got.step, Ranks: got.ranks, Engines: got.engines, names: []string{"_"}, values: got.values}, nil
}

// Gather reads an exposed array from every rank at the same step and
// joins the ranks' arrays, in rank order, along their first dimension:
// the whole field of a domain decomposed by rows. Arrays exposed without
// a shape are joined end to end.
func (j *Job) Gather(ctx context.Context, name string) (wire.Array, int, error) {
	snap, err := j.Pull(ctx, name)
	if err != nil {
		return wire.Array{}, 0, err
	}
	var out wire.Array
	for i := range snap.Ranks {
		a, ok, err := snap.values[i][0].Array()
		if err != nil || !ok {
			return wire.Array{}, 0, fmt.Errorf("client: gather %q: rank %d's value is not an array", name, snap.Ranks[i])
		}
		if i == 0 {
			out = wire.Array{DType: a.DType, Shape: slices.Clone(a.Shape)}
			out.Data = make([]byte, 0, len(a.Data)*len(snap.Ranks))
		} else {
			if a.DType != out.DType || len(a.Shape) != len(out.Shape) || len(a.Shape) > 1 && !slices.Equal(a.Shape[1:], out.Shape[1:]) {
				return wire.Array{}, 0, fmt.Errorf("client: gather %q: rank %d has a %s array of shape %v, rank %d one of %s %v",
					name, snap.Ranks[i], a.DType, a.Shape, snap.Ranks[0], out.DType, out.Shape)
			}
			if len(out.Shape) > 0 {
				out.Shape[0] += a.Shape[0]
			}
		}
		out.Data = append(out.Data, a.Data...)
	}
	return out, snap.Step, nil
}

// Snapshot is what a steering call read on every rank of a job, at one
// step.
type Snapshot struct {
	Step    int   // the step at which every rank read it
	Ranks   []int // in rank order
	Engines []int // the ranks' engines, in the same order

	names  []string
	values [][]wire.Value // per rank, per name
}

// Get decodes the value of name on rank into the value ptr points to.
func (s *Snapshot) Get(rank int, name string, ptr any) error {
	v, err := s.value(rank, name)
	if err != nil {
		return err
	}
	return v.DecodeInto(ptr)
}

// Value returns the value of name on rank in its natural Go type.
func (s *Snapshot) Value(rank int, name string) (any, error) {
	v, err := s.value(rank, name)
	if err != nil {
		return nil, err
	}
	return v.Decode()
}

// ByRank returns the value of name on every rank, by rank.
func (s *Snapshot) ByRank(name string) (map[int]any, error) {
	out := make(map[int]any, len(s.Ranks))
	for _, r := range s.Ranks {
		v, err := s.Value(r, name)
		if err != nil {
			return nil, err
		}
		out[r] = v
	}
	return out, nil
}

func (s *Snapshot) value(rank int, name string) (wire.Value, error) {
	i := slices.Index(s.Ranks, rank)
	if i < 0 {
		return wire.Value{}, fmt.Errorf("client: no rank %d in the snapshot (ranks %v)", rank, s.Ranks)
	}
	k := slices.Index(s.names, name)
	if k < 0 || k >= len(s.values[i]) {
		return wire.Value{}, fmt.Errorf("client: no %q in the snapshot (has %s)", name, strings.Join(s.names, ", "))
	}
	return s.values[i][k], nil
}

// steered is the outcome of a steering call on every rank.
type steered struct {
	step    int
	ranks   []int
	engines []int
	values  [][]wire.Value // per rank, after the step
}

// steerStep makes a steering call that returns only its step.
func (j *Job) steerStep(ctx context.Context, s wire.Steering) (int, error) {
	got, err := j.steer(ctx, s)
	if err != nil {
		return 0, err
	}
	return got.step, nil
}

// steer sends a steering request to every rank of the job and waits for
// all of them. For an agreed operation it checks that every rank applied
// it at the same step.
func (j *Job) steer(ctx context.Context, s wire.Steering) (*steered, error) {
	info, ok := j.Info()
	if !ok {
		return nil, fmt.Errorf("client: job %d has no registered engines", j.id)
	}
	if info.Size > 0 && len(info.Engines) < info.Size {
		return nil, fmt.Errorf("client: job %d has %d of its %d ranks registered: steering needs all of them", j.id, len(info.Engines), info.Size)
	}
	content, bufs, err := wire.EncodeSteer(s)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	m := j.c.request(wire.Steer, info.Engines, false, callOptions{}, content, bufs)
	r := newResult(j.c, wire.Steer)
	for _, e := range info.Engines {
		r.add(m.ID, e)
	}
	if err := j.c.submit(r, m); err != nil {
		return nil, err
	}
	if err := r.Wait(ctx); err != nil {
		return nil, err
	}
	out := &steered{ranks: info.Ranks, engines: info.Engines, values: make([][]wire.Value, len(r.tasks))}
	var errs []error
	steps := map[int64][]int{}
	for i, t := range r.tasks {
		if t.err != nil {
			errs = append(errs, t.err)
			continue
		}
		res, err := wire.DecodeResult(t.reply)
		if err == nil && len(res.List) == 0 {
			err = fmt.Errorf("no values")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("engine %d: steering reply: %w", t.engine, err))
			continue
		}
		if !s.Op.Agreed() {
			out.values[i] = res.List
			continue
		}
		var step int64
		if err := res.List[0].DecodeValue(reflect.ValueOf(&step).Elem()); err != nil {
			errs = append(errs, fmt.Errorf("engine %d: steering reply step: %w", t.engine, err))
			continue
		}
		steps[step] = append(steps[step], info.Ranks[i])
		out.step, out.values[i] = int(step), res.List[1:]
	}
	if err := r.combine(errs); err != nil {
		return nil, err
	}
	if len(steps) > 1 {
		return nil, fmt.Errorf("client: job %d applied %s at different steps (ranks by step: %v)", j.id, s.Op, steps)
	}
	return out, nil
}
