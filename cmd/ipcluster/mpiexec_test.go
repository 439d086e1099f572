package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipcluster/ipcluster/client"
	"github.com/ipcluster/ipcluster/engine"
	"github.com/ipcluster/ipcluster/internal/profile"
	"github.com/ipcluster/ipcluster/internal/testenv"
	"github.com/ipcluster/ipcluster/mpi"
)

// Two MPI jobs, one controller: ranks are numbered per job, a job's view
// is in rank order, collectives run over each job's own MPI_COMM_WORLD (in
// a build with MPI), an interrupt frees a rank stuck in a collective, and
// one job stops while the other keeps running.
func TestMPIExecJobs(t *testing.T) {
	testenv.NeedMPIExec(t)
	e := newEnv(t)
	if out := e.mustRun("mpiexec", "-n", "4", "--daemon"); !strings.Contains(out, "job 1: 4 ranks registered") {
		t.Fatalf("the first mpiexec said:\n%s", out)
	}
	if out := e.mustRun("mpiexec", "-n", "2", "--daemon"); !strings.Contains(out, "job 2: 2 ranks registered") {
		t.Fatalf("the second mpiexec said:\n%s", out)
	}
	c := e.connect()
	ctx := ctxT(t, 2*time.Minute)
	if _, err := c.Engines(ctx); err != nil {
		t.Fatal(err)
	}
	jobs := c.Jobs()
	if len(jobs) != 2 || !slices.Equal(jobs[0].Ranks, []int{0, 1, 2, 3}) || jobs[0].Size != 4 ||
		!slices.Equal(jobs[1].Ranks, []int{0, 1}) || jobs[1].Size != 2 {
		t.Fatalf("jobs %+v, want ranks 0-3 of 4 and 0-1 of 2", jobs)
	}
	if ids := c.IDs(); len(ids) != 6 {
		t.Fatalf("engine ids %v, want 6", ids)
	}
	table := e.mustRun("engines")
	for _, want := range []string{"  1    0/4", "  1    3/4", "  2    0/2", "  2    1/2"} {
		if !strings.Contains(table, want) {
			t.Errorf("engines table lacks %q:\n%s", want, table)
		}
	}

	if mpi.Enabled {
		// Each job's ranks see their own world, in rank order.
		for _, j := range jobs {
			ar, err := c.Job(j.ID).View().Apply(ctx, "mpi.info")
			if err != nil {
				t.Fatal(err)
			}
			infos, err := client.ResultList[engine.MPIInfo](ctx, ar)
			if err != nil {
				t.Fatal(err)
			}
			for r, info := range infos {
				if !info.Initialized || info.Rank != r || info.Size != j.Size {
					t.Errorf("job %d rank %d: mpi.info = %+v", j.ID, r, info)
				}
			}
		}
		ar, err := c.Job(1).View().Apply(ctx, "mpi.allreduce", []float64{1, 2.5}, "sum")
		if err != nil {
			t.Fatal(err)
		}
		sums, err := client.ResultList[[]float64](ctx, ar)
		if err != nil {
			t.Fatal(err)
		}
		for r, s := range sums {
			if !slices.Equal(s, []float64{4, 10}) {
				t.Errorf("Allreduce on job 1 rank %d = %v, want [4 10]", r, s)
			}
		}

		// Cells see the mpi module: the session, and arrays.
		ar, err = c.Job(1).View().Execute(ctx, "print(mpi.allreduce(mpi.rank, 'sum'))\nmpi.allgather(mpi.rank * 1.5).tolist()")
		if err != nil {
			t.Fatal(err)
		}
		gathered, err := client.ResultList[[]float64](ctx, ar)
		if err != nil {
			t.Fatal(err)
		}
		for r, md := range ar.Metadata() {
			if md.Stdout != "6\n" || !slices.Equal(gathered[r], []float64{0, 1.5, 3, 4.5}) {
				t.Errorf("job 1 rank %d: printed %q, gathered %v", r, md.Stdout, gathered[r])
			}
		}

		// The first line, on job 1.
		out := e.mustRun("px", "--job", "1", `print("rank", mpi.rank, "of", mpi.size)`)
		for _, j := range jobs[:1] {
			for r, id := range j.Engines {
				if want := fmt.Sprintf("[%d] rank %d of 4\n", id, r); !strings.Contains(out, want) {
					t.Errorf("px on job 1 lacks %q:\n%s", want, out)
				}
			}
		}

		// A collective sent to one rank of job 2 waits for the other; an
		// interrupt ends it.
		stuck, err := c.Job(2).Ranks(0).Execute(ctx, "print('waiting')\nmpi.barrier()")
		if err != nil {
			t.Fatal(err)
		}
		waitPrinted(t, stuck, "waiting")
		if err := c.Interrupt(ctx, client.JobRanks(2, 0)); err != nil {
			t.Fatal(err)
		}
		// The interrupt came in the barrier or, rarely, just before it.
		if _, err := stuck.Get(ctx); err == nil || !strings.Contains(err.Error(), "Interrupted") || !strings.Contains(err.Error(), "MPI_Barrier") {
			t.Errorf("the interrupted barrier returned %v", err)
		}
	} else {
		t.Log("built without MPI (-tags mpi): ranks register, collectives are not tested here")
	}

	// Stopping job 2 leaves job 1 running; its mpiexec ends.
	owner := 0
	for _, j := range e.profile().Jobs() {
		owner = j.Owner
	}
	if out := e.mustRun("stop", "--job", "2"); !strings.Contains(out, "stopped job 2 (2 engines)") {
		t.Errorf("stop --job 2 said:\n%s", out)
	}
	waitGoneT(t, owner)
	if _, err := c.Engines(ctx); err != nil {
		t.Fatal(err)
	}
	if jobs := c.Jobs(); len(jobs) != 1 || jobs[0].ID != 1 || len(jobs[0].Engines) != 4 {
		t.Errorf("after stopping job 2: jobs %+v", jobs)
	}
	if out, err := e.ipcluster("stop", "--job", "2"); err == nil || !strings.Contains(out, "job 2 has no registered engines (jobs: [1])") {
		t.Errorf("stopping job 2 again: %v\n%s", err, out)
	}

	st, err := profile.ReadState(e.profile().StatePath())
	if err != nil {
		t.Fatal(err)
	}
	e.mustRun("stop")
	waitGoneT(t, append([]int{st.SupervisorPID}, enginePIDs(st)...)...)
}

// Ranks that fail before registering: the error says how mpiexec ended and
// what each rank printed.
func TestMPIExecFailedRanks(t *testing.T) {
	testenv.NeedMPIExec(t)
	e := newEnv(t)
	out, err := e.ipcluster("mpiexec", "-n", "2", "--", "/bin/sh", "-c", `echo "rank $OMPI_COMM_WORLD_RANK: no input file" >&2; exit 3`)
	if err == nil {
		t.Fatalf("mpiexec of failing ranks succeeded:\n%s", out)
	}
	for _, want := range []string{"the MPI job ended with 0 of 2 ranks registered", "exit status 3", "rank 0 said:\n    rank 0: no input file"} {
		if !strings.Contains(out, want) {
			t.Errorf("the error lacks %q:\n%s", want, out)
		}
	}
	if out, err := e.ipcluster("mpiexec", "-n", "1", "stray"); err == nil || !strings.Contains(out, "go after --") {
		t.Errorf("a program without --: %v\n%s", err, out)
	}
	if out, err := e.ipcluster("mpiexec", "-n", "1", "--mpi-args", `--map-by "core`); err == nil || !strings.Contains(out, "unclosed \" quote") {
		t.Errorf("bad --mpi-args: %v\n%s", err, out)
	}
}

func TestSplitArgs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"--map-by core", []string{"--map-by", "core"}},
		{`  -x  "A B"  'c d' e\ f `, []string{"-x", "A B", "c d", "e f"}},
		{`--mca btl ''`, []string{"--mca", "btl", ""}},
		{`a"b"c`, []string{"abc"}},
	} {
		if got, err := splitArgs(tc.in); err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("splitArgs(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{`"open`, `'open`, `trailing\`} {
		if _, err := splitArgs(bad); err == nil {
			t.Errorf("splitArgs(%q) succeeded", bad)
		}
	}
}

// A user's own program as the ranks (examples/mpi-pi, engine.Main), driven
// by its client side: the README's MPI session.
func TestMPIExecUserProgram(t *testing.T) {
	if !mpi.Enabled {
		t.Skip("needs a build with MPI (go test -tags mpi; make test runs it)")
	}
	testenv.NeedMPIExec(t)
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("the go command is needed to build examples/mpi-pi")
	}
	prog := filepath.Join(t.TempDir(), "mpi-pi")
	if out, err := exec.Command(gobin, "build", "-tags", "mpi", "-o", prog, "../../examples/mpi-pi").CombinedOutput(); err != nil {
		t.Fatalf("building examples/mpi-pi: %v\n%s", err, out)
	}
	e := newEnv(t)
	if out := e.mustRun("mpiexec", "-n", "4", "--daemon", "--", prog); !strings.Contains(out, "job 1: 4 ranks registered") {
		t.Fatalf("mpiexec said:\n%s", out)
	}
	drive := exec.Command(prog, "drive", "-samples", "200000")
	drive.Env = append(os.Environ(), e.extra...)
	out, err := drive.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "from 800000 samples on 4 ranks of job 1") {
		t.Errorf("mpi-pi drive: %v\n%s", err, out)
	}
	var pi float64
	if _, err := fmt.Sscanf(string(out), "pi ~ %f", &pi); err != nil || pi < 3.1 || pi > 3.2 {
		t.Errorf("pi estimated as %v (%v)", pi, err)
	}
	e.mustRun("stop")
}

// waitPrinted waits until the (single) task of r has printed text.
func waitPrinted(t *testing.T, r *client.AsyncResult, text string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(r.Metadata()[0].Stdout, text) {
		if time.Now().After(deadline) {
			t.Fatalf("the task never printed %q", text)
		}
		time.Sleep(time.Millisecond) // polling a condition
	}
}
