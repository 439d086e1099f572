// Mpi-pi estimates pi by Monte Carlo on the ranks of an MPI job, driven
// from a client: each rank samples points in the unit square, and an
// Allreduce adds up the hits of every rank.
//
// The same program is both sides. As the ranks (built with MPI):
//
//	go build -tags mpi -o mpi-pi ./examples/mpi-pi
//	ipcluster mpiexec -n 4 --daemon -- ./mpi-pi
//
// and as the client, from any shell:
//
//	./mpi-pi drive -samples 10000000
//	ipcluster stop
//
// Each rank serves as an engine (engine.Main) with one function, "pi",
// which the client runs on every rank of the job at once, as an MPI
// collective needs.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"time"

	"github.com/ipcluster/ipcluster/client"
	"github.com/ipcluster/ipcluster/engine"
	"github.com/ipcluster/ipcluster/mpi"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "drive" {
		drive(os.Args[2:])
		return
	}
	engine.Main(func(e *engine.Engine) error { return e.Register("pi", samplePi) })
}

// Estimate is what "pi" returns on each rank.
type Estimate struct {
	Pi      float64 `msgpack:"pi"`
	Samples int64   `msgpack:"samples"` // of all ranks
	Ranks   int     `msgpack:"ranks"`
}

// samplePi draws samples points on this rank, then combines the counts of
// every rank with an Allreduce. Its context ends if a client interrupts
// it, also while it waits in the Allreduce.
func samplePi(ctx context.Context, samples int64) (Estimate, error) {
	w := mpi.World()
	rng := rand.New(rand.NewPCG(uint64(w.Rank()), uint64(time.Now().UnixNano())))
	var hits int64
	for i := range samples {
		if i%(1<<20) == 0 && ctx.Err() != nil {
			return Estimate{}, context.Cause(ctx)
		}
		x, y := rng.Float64(), rng.Float64()
		if x*x+y*y <= 1 {
			hits++
		}
	}
	counts := []int64{hits, samples}
	if err := mpi.Allreduce(ctx, w, counts, counts, mpi.Sum); err != nil {
		return Estimate{}, err
	}
	return Estimate{Pi: 4 * float64(counts[0]) / float64(counts[1]), Samples: counts[1], Ranks: w.Size()}, nil
}

// drive runs "pi" on every rank of a job and prints the estimate.
func drive(args []string) {
	fs := flag.NewFlagSet("drive", flag.ExitOnError)
	samples := fs.Int64("samples", 1_000_000, "points each rank draws")
	job := fs.Int("job", 0, "the job to run on (default: the newest)")
	profile := fs.String("profile", "", "the cluster's profile")
	fs.Parse(args)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := client.Connect(ctx, client.Options{Profile: *profile})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	jobs := c.Jobs()
	if *job == 0 {
		if len(jobs) == 0 {
			log.Fatal("no job is registered: start one with ipcluster mpiexec -n 4 -- ./mpi-pi")
		}
		*job = jobs[len(jobs)-1].ID
	}
	start := time.Now()
	ar, err := c.Job(*job).View().Apply(ctx, "pi", *samples)
	if err != nil {
		log.Fatal(err)
	}
	estimates, err := client.ResultList[Estimate](ctx, ar)
	if err != nil {
		log.Fatal(err)
	}
	e := estimates[0]
	for r, other := range estimates {
		if other != e {
			log.Fatalf("rank %d disagrees with rank 0 (%+v, %+v): is the program built with -tags mpi?", r, other, e)
		}
	}
	fmt.Printf("pi ~ %.6f from %d samples on %d ranks of job %d in %.2f s\n", e.Pi, e.Samples, e.Ranks, *job, time.Since(start).Seconds())
}
