package client_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/ipcluster/ipcluster/client"
	"github.com/ipcluster/ipcluster/engine"
	"github.com/ipcluster/ipcluster/internal/clustertest"
)

// Engines of two jobs, registering out of rank order, are grouped by job
// and addressed by rank.
func TestJobs(t *testing.T) {
	ctx := ctx(t)
	c := clustertest.Start(t, clustertest.Options{})
	cl := c.Connect(t)
	add := func(key string, rank, size int) *engine.Engine {
		return c.AddEngineWith(t, engine.Options{JobKey: key, Rank: rank, Size: size}, testFunctions(nil, nil))
	}
	var byRank [3]*engine.Engine
	for _, r := range []int{2, 0, 1} {
		byRank[r] = add("mpi-a", r, 3)
	}
	first, err := cl.WaitForJob(ctx, "mpi-a", 3)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Complete() || first.ID != 1 || !slices.Equal(first.Ranks, []int{0, 1, 2}) {
		t.Errorf("job %+v, want job 1 with ranks 0, 1, 2", first)
	}
	other := []*engine.Engine{add("mpi-b", 1, 2), add("mpi-b", 0, 2)}
	if _, err := cl.WaitForJob(ctx, "mpi-b", 2); err != nil {
		t.Fatal(err)
	}
	jobs := cl.Jobs()
	if len(jobs) != 2 || jobs[1].ID != 2 || jobs[1].Size != 2 || jobs[1].Key != "mpi-b" {
		t.Fatalf("jobs %+v, want jobs 1 and 2", jobs)
	}
	// The client hears of a registration before the engine itself may.
	for _, e := range append(byRank[:], other...) {
		select {
		case <-e.Registered():
		case <-ctx.Done():
			t.Fatal("an engine never learned its id")
		}
	}
	want := []int{byRank[0].ID(), byRank[1].ID(), byRank[2].ID()}
	if !slices.Equal(first.Engines, want) {
		t.Errorf("job 1 engines %v, want %v in rank order", first.Engines, want)
	}

	// A job's view runs on its ranks, and ResultList returns rank order.
	ar, err := cl.Job(1).View().Apply(ctx, "whoami")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := client.ResultList[int](ctx, ar)
	if err != nil || !slices.Equal(ids, want) {
		t.Errorf("whoami on job 1 = %v, %v; want %v", ids, err, want)
	}
	ar, err = cl.Job(2).Ranks(1, 0).Apply(ctx, "whoami")
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := client.ResultList[int](ctx, ar); err != nil || !slices.Equal(ids, []int{other[0].ID(), other[1].ID()}) {
		t.Errorf("whoami on ranks 1, 0 of job 2 = %v, %v", ids, err)
	}

	// Cells on the ranks see their job, rank and size.
	ar, err = cl.Job(2).View().Execute(ctx, "[engine.job, engine.rank, engine.size]")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := client.ResultList[[]int](ctx, ar); err != nil || !slices.Equal(got[1], []int{2, 1, 2}) {
		t.Errorf("engine module on job 2 = %v, %v; want rank 1 to say [2 1 2]", got, err)
	}

	for _, tc := range []struct {
		target client.Target
		want   string
	}{
		{client.JobRanks(7), "job 7 has no registered engines (jobs: [1 2])"},
		{client.JobRanks(2, 5), "job 2 has no registered rank 5 (ranks: [0 1])"},
	} {
		if _, err := cl.DirectView(tc.target).Apply(ctx, "whoami"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.target, err, tc.want)
		}
	}

	// Stopping a job shuts down its engines only.
	if err := cl.Job(2).Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if info, ok := cl.Job(2).Info(); ok {
		t.Errorf("job 2 still has engines after Stop: %+v", info)
	}
	if _, ok := cl.Job(1).Info(); !ok {
		t.Error("job 1 went away with job 2")
	}
}
