package client_test

import (
	"context"
	"fmt"

	"github.com/ipcluster/ipcluster/client"
	"github.com/ipcluster/ipcluster/engine"
)

// A simulation is steered while it runs. Its program starts an engine
// beside its own loop, exposes a parameter, and calls Steer once per step
// (its connection comes from the environment, as for the ranks that
// ipcluster mpiexec launches). A client pauses it, changes the parameter
// at the step where it holds (on every rank of a job, the same step), lets
// it run three steps, and stops it: Steer returns false, and the loop
// ends.
func ExampleJob_Set() {
	ctx := context.Background()

	// The simulation.
	eng, err := engine.Start(ctx, engine.Options{JobKey: "sim", Rank: 0, Size: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	dt := 0.1
	eng.Expose("dt", &dt)
	done := make(chan []float64)
	go func() {
		var used []float64 // the dt of each step
		for step := 1; eng.Steer(step); step++ {
			used = append(used, dt)
		}
		eng.Close()
		done <- used
	}()

	// A client.
	c, err := client.Connect(ctx, client.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	info, _ := c.WaitForJob(ctx, "sim", 1)
	job := c.Job(info.ID)
	paused, _ := job.Pause(ctx)
	at, _ := job.Set(ctx, map[string]any{"dt": 0.05})
	fmt.Println("set at the paused step:", at == paused)
	held, _ := job.Step(ctx, 3)
	fmt.Println("held again", held-paused, "steps later")
	snap, _ := job.Pull(ctx, "dt")
	fmt.Println(snap.ByRank("dt"))
	job.Stop(ctx)
	used := <-done
	fmt.Println("dt from the set on:", used[at-1:])
	// Output:
	// set at the paused step: true
	// held again 3 steps later
	// map[0:0.05] <nil>
	// dt from the set on: [0.05 0.05 0.05]
}
