package pbs

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ipcluster/ipcluster/internal/testenv"
)

func TestParseSubmit(t *testing.T) {
	for _, tc := range []struct{ out, want, err string }{
		{"1234.pbs-server\n", "1234.pbs-server", ""},
		{"1234\n", "1234", ""},
		{"1234[].server\n", "1234[].server", ""},
		{"qsub: waiting for job 12.host to start\n12.host\n", "12.host", ""},
		{"qsub: Unknown queue\n", "", "not a job id"},
		{"", "", "not a job id"},
	} {
		id, err := ParseSubmit(tc.out)
		if id != tc.want || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ParseSubmit(%q) = %q, %v; want %q, %q", tc.out, id, err, tc.want, tc.err)
		}
	}
}

func TestParseStatus(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      Job
	}{
		{"torque wrapper", "Job Id:\t26\n\tJob_Name = pbstest\n\tjob_state = C\n\tqueue = debug\n", Job{ID: "x", State: "C", Finished: true}},
		{"pbs pro running", "Job Id: 7.srv\n    Job_Name = a\n    job_state = R\n    Resource_List.walltime = 00:30:00\n", Job{ID: "x", State: "R"}},
		{"pbs pro finished", "Job Id: 7.srv\n    job_state = F\n    Exit_status = 3\n", Job{ID: "x", State: "F", Exit: "3", Finished: true}},
	} {
		got, err := ParseStatus("x", tc.out)
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	if _, err := ParseStatus("x", "qstat: Unknown Job Id 9.srv\n"); err == nil {
		t.Error("an error message parsed as a status")
	}
}

// Through SLURM's PBS wrappers (the only PBS here): submit, watch, cancel.
func TestPBS(t *testing.T) {
	testenv.NeedPBS(t)
	ctx := context.Background()
	var c Commands
	dir := t.TempDir()
	id, err := c.Submit(ctx, "#!/bin/sh\n#PBS -N ipcluster-pbs-test\nsleep 3600\n", dir)
	if err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 && !strings.Contains(left[0].Name(), ".o") && !strings.Contains(left[0].Name(), ".e") {
		t.Errorf("the job script was left in %s: %v", dir, left)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		state, finished, _, err := c.Poll(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if state == "RUNNING" {
			break
		}
		if finished || time.Now().After(deadline) {
			t.Fatalf("job %s is %s", id, state)
		}
		time.Sleep(100 * time.Millisecond) // polling the scheduler
	}
	if err := c.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	for {
		_, finished, _, err := c.Poll(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if finished {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cancelled job does not end")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := c.Cancel(ctx, id); err != nil {
		t.Errorf("cancelling an ended job: %v", err)
	}
	_, err = c.Submit(ctx, "#!/bin/sh\n#PBS -q nowhere\ntrue\n", dir)
	var pe *Error
	if !errors.As(err, &pe) || pe.Command != "qsub" || pe.Message == "" {
		t.Errorf("a bad queue: %v", err)
	}
}
