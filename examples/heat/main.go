// Heat solves the 2-D heat equation on the ranks of an MPI job, each rank
// holding a band of rows and exchanging halo rows with its neighbours, and
// lets clients steer it while it runs: look at the field, change the time
// step, the diffusivity or the hot edge's temperature, pause, step,
// checkpoint, resume. Every change lands at the same step on every rank.
//
//	go build -tags mpi -o heat ./examples/heat
//	ipcluster mpiexec -n 4 --daemon -- ./heat -nx 512 -ny 512
//	ipcluster console examples/heat/steer.star     # or interactively:
//	ipcluster console
//	ipcluster> job = rc.job(1)
//	ipcluster> job.pause()
//	ipcluster> job.set(dt=job.pull("dt")[0] / 2)
//	ipcluster> plot(job.gather("T"), "T.png")
//	ipcluster> job.resume()
//
// The program runs its own loop at full speed: Steer, once per step, costs
// nanoseconds when no client asks for anything. It exposes dt, alpha,
// boundary (writable), step (read-only) and T (this rank's rows of the
// field, rows x nx), registers "energy" (the sum of T over all ranks, an
// MPI collective that every rank runs at the same step), and checkpoints
// with -restart DIR to go on from one.
//
// Run without -steps, it goes on until `ipcluster stop` (or a signal);
// with -steps N it stops after step N. Without a cluster (no connection
// in the environment) it runs all the same, unsteered.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/ipcluster/ipcluster/engine"
	"github.com/ipcluster/ipcluster/mpi"
)

func main() {
	nx := flag.Int("nx", 256, "columns of the grid")
	ny := flag.Int("ny", 256, "rows of the grid, split among the ranks")
	steps := flag.Int("steps", 0, "stop after this step (0: run until stopped)")
	dt := flag.Float64("dt", 0.2, "time step")
	alpha := flag.Float64("alpha", 1, "diffusivity (stable while dt*alpha <= 0.25)")
	boundary := flag.Float64("boundary", 100, "temperature of the top edge (the others are 0)")
	restart := flag.String("restart", "", "go on from the checkpoint in this directory")
	flag.Parse()
	if err := runHeat(*nx, *ny, *steps, Params{Dt: *dt, Alpha: *alpha, Boundary: *boundary}, *restart); err != nil {
		fmt.Fprintln(os.Stderr, "heat:", err)
		os.Exit(1)
	}
}

func runHeat(nx, ny, steps int, p Params, restart string) (err error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if mpi.Enabled {
		if err := mpi.Init(); err != nil {
			return err
		}
		defer func() { err = errors.Join(err, mpi.Finalize()) }()
	}
	sim, err := NewSim(nx, ny, p, mpi.World())
	if err != nil {
		return err
	}
	if restart != "" {
		if err := sim.Load(restart); err != nil {
			return err
		}
	}

	// The engine connects and registers in the background: the run does
	// not wait for it, nor for any client.
	var level slog.Level
	level.UnmarshalText([]byte(os.Getenv("IPCLUSTER_LOG_LEVEL")))
	eng, err := engine.Start(ctx, engine.Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))})
	if err != nil {
		return err
	}
	defer eng.Close()
	step := sim.Step
	err = errors.Join(
		eng.Expose("dt", &sim.Dt),
		eng.Expose("alpha", &sim.Alpha),
		eng.Expose("boundary", &sim.Boundary),
		eng.Expose("step", &step, engine.ReadOnly()),
		eng.Expose("T", &sim.T, engine.Shape(sim.Rows, sim.NX)),
		eng.Register("energy", func(ctx context.Context) (float64, error) { return sim.Energy(ctx) }),
	)
	if err != nil {
		return err
	}
	eng.OnCheckpoint(func(ctx context.Context, dir string) error { return sim.Save(dir) })

	// The loop ends after -steps, or when a client stops the job
	// (client.Job.Stop, as ipcluster stop of a job does): Steer then
	// returns false, at the same step on every rank.
	go func() {
		<-eng.Done()
		if err := eng.Close(); err != nil { // no cluster, or it went away
			fmt.Fprintf(os.Stderr, "heat: rank %d runs unsteered: %v\n", sim.Rank, err)
		}
	}()
	for eng.Steer(sim.Step) && (steps == 0 || sim.Step < steps) {
		if err := sim.Advance(ctx); err != nil {
			if ctx.Err() != nil {
				return nil // a signal, on every rank: mpiexec forwards it
			}
			return err
		}
		step = sim.Step
	}
	if sim.Rank == 0 {
		e, err := sim.Energy(ctx)
		if err != nil {
			return err
		}
		fmt.Printf("heat: %d steps of a %dx%d grid on %d ranks; energy %.6g\n", sim.Step, sim.NX, sim.NY, sim.Size, e)
	} else if _, err := sim.Energy(ctx); err != nil {
		return err
	}
	return nil
}

// Energy is the sum of the field over every rank: a collective, so every
// rank must call it at the same step (a steering call does).
func (s *Sim) Energy(ctx context.Context) (float64, error) {
	local := 0.0
	for _, v := range s.T {
		local += v
	}
	if s.Size == 1 {
		return local, nil
	}
	sum := []float64{0}
	if err := mpi.Allreduce(ctx, mpi.World(), []float64{local}, sum, mpi.Sum); err != nil {
		return 0, err
	}
	return sum[0], nil
}
