package slurm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipcluster/ipcluster/internal/testenv"
)

func TestParseSubmit(t *testing.T) {
	for _, tc := range []struct {
		out, want, err string
	}{
		{"1234\n", "1234", ""},
		{"1234;cluster2\n", "1234", ""},
		{"sbatch: warning: can't honor --ntasks-per-node\n77\n", "77", ""},
		{"1234_[0-3]\n", "", "not a job id"},
		{"Submitted batch job 12\n", "", "not a job id"},
		{"", "", "not a job id"},
	} {
		id, err := ParseSubmit(tc.out)
		if id != tc.want || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ParseSubmit(%q) = %q, %v; want %q, %q", tc.out, id, err, tc.want, tc.err)
		}
	}
}

func TestParseShowJob(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      Job
	}{
		{"completed", "JobId=1 JobName=sbatch UserId=root(0) JobState=COMPLETED Reason=None Dependency=(null) NodeList=vm " +
			"TRES=cpu=2,node=1,billing=2 WorkDir=/tmp StdErr=/tmp/sl-1.out StdIn=/dev/null StdOut=/tmp/sl-1.out Power= \n",
			Job{ID: "1", State: Completed, Reason: "None", StdOut: "/tmp/sl-1.out", Nodes: "vm"}},
		{"pending", "JobId=9 JobName=x JobState=PENDING Reason=Resources NodeList=(null) StdOut=/home/a/slurm-9.out\n",
			Job{ID: "9", State: Pending, Reason: "Resources", StdOut: "/home/a/slurm-9.out", Nodes: "(null)"}},
		{"array task", "JobId=21 ArrayJobId=20 ArrayTaskId=1 JobState=RUNNING Reason=None\nJobId=22 ArrayJobId=20 ArrayTaskId=2 JobState=PENDING\n",
			Job{ID: "20_1", State: Running, Reason: "None"}},
		{"timeout", "JobId=5 JobState=TIMEOUT Reason=TimeLimit", Job{ID: "5", State: Timeout, Reason: "TimeLimit"}},
	} {
		got, err := ParseShowJob(tc.out)
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	if _, err := ParseShowJob("slurm_load_jobs error: Invalid job id specified"); err == nil {
		t.Error("an error message parsed as a job")
	}
}

func TestFinished(t *testing.T) {
	for s, want := range map[State]bool{Pending: false, Running: false, "COMPLETING": false, Completed: true,
		Cancelled: true, Failed: true, Timeout: true, Gone: true, "NODE_FAIL": true, "OUT_OF_MEMORY": true} {
		if s.Finished() != want {
			t.Errorf("%s.Finished() = %v", s, !want)
		}
	}
}

// waitState waits until job id is in a state for which done holds.
func waitState(t *testing.T, c Commands, id string, done func(State) bool) Job {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		j, err := c.Status(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if done(j.State) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s stays %s", id, j.State)
		}
		time.Sleep(100 * time.Millisecond) // polling the scheduler
	}
}

// Against the real scheduler: submit, watch, read the output, cancel, and
// the scheduler's own words for a bad submission.
func TestSLURM(t *testing.T) {
	testenv.NeedSLURM(t)
	ctx := context.Background()
	var c Commands
	dir := t.TempDir()
	id, err := c.Submit(ctx, "#!/bin/sh\n#SBATCH --ntasks=2\n#SBATCH --output=out-%j.txt\nsrun sh -c 'echo task $SLURM_PROCID of $SLURM_NTASKS'\n", dir)
	if err != nil {
		t.Fatal(err)
	}
	j := waitState(t, c, id, State.Finished)
	if j.State != Completed || j.StdOut != filepath.Join(dir, "out-"+id+".txt") {
		t.Fatalf("job %+v", j)
	}
	out, _ := os.ReadFile(j.StdOut)
	if !strings.Contains(string(out), "task 0 of 2") || !strings.Contains(string(out), "task 1 of 2") {
		t.Errorf("job output %q", out)
	}

	// A job that would run for an hour, cancelled.
	id, err = c.Submit(ctx, "#!/bin/sh\n#SBATCH --output=/dev/null\nsleep 3600\n", dir)
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, c, id, func(s State) bool { return s == Running })
	if err := c.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	if j := waitState(t, c, id, State.Finished); j.State != Cancelled {
		t.Errorf("cancelled job is %s", j.State)
	}
	if err := c.Cancel(ctx, id); err != nil {
		t.Errorf("cancelling an ended job: %v", err)
	}

	// The scheduler's own message for a bad partition.
	_, err = c.Submit(ctx, "#!/bin/sh\n#SBATCH --partition=nowhere\ntrue\n", dir)
	var se *Error
	if !errors.As(err, &se) || se.Command != "sbatch" || !strings.Contains(se.Message, "invalid partition") {
		t.Errorf("a bad partition: %v", err)
	}
	if j, err := c.Status(ctx, "987654"); err != nil || j.State != Gone {
		t.Errorf("an unknown job: %+v, %v", j, err)
	}
}
