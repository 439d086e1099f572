package launchers

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipcluster/ipcluster/internal/testenv"
	"github.com/ipcluster/ipcluster/pbs"
	"github.com/ipcluster/ipcluster/slurm"
)

func TestRenderSLURMTemplate(t *testing.T) {
	job := BatchJob{N: 4, Nodes: 2, Partition: "debug", Account: "proj1", Walltime: "00:30:00", JobName: "ipcluster",
		WorkDir: "/home/a b", Output: "/home/a/job-%j.out", Env: map[string]string{"IPCLUSTER_JOB": "k", "IPCLUSTER_CONNECTION": `{"key":"it's"}`},
		EngineCommand: "/opt/bin/ipcluster engine", Extra: []string{"--exclusive"}}
	got, err := RenderScript("slurm", slurm.DefaultTemplate, job)
	if err != nil {
		t.Fatal(err)
	}
	want := `#!/bin/sh
#SBATCH --job-name=ipcluster
#SBATCH --ntasks=4
#SBATCH --nodes=2
#SBATCH --partition=debug
#SBATCH --account=proj1
#SBATCH --time=00:30:00
#SBATCH --output=/home/a/job-%j.out
#SBATCH --exclusive

# What ipcluster needs in the job: the controller's address and the engine keys
# (or, with --controller-in-job, where the profile is).
export IPCLUSTER_CONNECTION='{"key":"it'\''s"}'
export IPCLUSTER_JOB=k

cd '/home/a b'
srun --ntasks=4 --label /opt/bin/ipcluster engine
`
	if got != want {
		t.Errorf("rendered\n%s\nwant\n%s", got, want)
	}
	job.MPIExec = "mpiexec"
	if got, _ := RenderScript("slurm", slurm.DefaultTemplate, job); !strings.HasSuffix(got, "\nmpiexec -n 4 /opt/bin/ipcluster engine\n") {
		t.Errorf("with mpiexec:\n%s", got)
	}
	// With the controller in the job, the script runs it instead.
	job.ControllerCommand = "/opt/bin/ipcluster mpiexec -n 4 --ip auto --mpiexec mpiexec --timeout 1h0m0s"
	for name, text := range map[string]string{"slurm": slurm.DefaultTemplate, "pbs": pbs.DefaultTemplate} {
		got, err := RenderScript(name, text, job)
		if err != nil || !strings.HasSuffix(got, "\n"+job.ControllerCommand+"\n") || strings.Contains(got, "ipcluster engine") {
			t.Errorf("%s, with the controller in the job: %v\n%s", name, err, got)
		}
	}
}

// Template errors name the line and what is wrong.
func TestRenderErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"#!/bin/sh\n#SBATCH --partition={{.Partitoin}}\n", `job.sbatch:2:22: executing "job.sbatch" at <.Partitoin>: can't evaluate field Partitoin`},
		{"#!/bin/sh\n{{if .N}}\n", "job.sbatch:3: unexpected EOF"},
		{"{{nosuchfunc .N}}", `function "nosuchfunc" not defined`},
	} {
		_, err := RenderScript("job.sbatch", tc.text, BatchJob{N: 1})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.text, err, tc.want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"plain": "plain", "/a/b-c_d.e": "/a/b-c_d.e", "": "''", "a b": "'a b'",
		"it's": `'it'\''s'`, "$HOME": "'$HOME'", `{"k":1}`: `'{"k":1}'`} {
		if got := ShellQuote(in); got != want {
			t.Errorf("ShellQuote(%q) = %s, want %s", in, got, want)
		}
		if out, err := exec.Command("/bin/sh", "-c", "printf %s "+ShellQuote(in)).Output(); err != nil || string(out) != in {
			t.Errorf("the shell reads %s as %q, %v", ShellQuote(in), out, err)
		}
	}
}

// A batch job under a real SLURM: watched until it runs, cancelled by
// Stop; a job that fails is reported with its output.
func TestBatchSLURM(t *testing.T) {
	testenv.NeedSLURM(t)
	dir := t.TempDir()
	b := &Batch{Scheduler: slurm.Commands{}, Dir: dir, Poll: 100 * time.Millisecond,
		Script: "#!/bin/sh\n#SBATCH --output=/dev/null\nsleep 3600\n"}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for state, _ := b.State(); state != "RUNNING"; state, _ = b.State() {
		if time.Now().After(deadline) {
			t.Fatalf("the job stays %s", state)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
	if err := b.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	<-b.Done()
	if p := b.Processes(); len(p) != 1 || !p[0].Exited || p[0].Batch != b.ID() || p[0].Err == nil || !strings.Contains(p[0].Err.Error(), "CANCELLED") {
		t.Errorf("after Stop: %+v", p)
	}

	out := filepath.Join(dir, "fail.out")
	f := &Batch{Scheduler: slurm.Commands{}, Dir: dir, Poll: 100 * time.Millisecond, OutputFile: out,
		Script: "#!/bin/sh\n#SBATCH --output=" + out + "\necho 'cannot find input.dat' >&2\nexit 3\n"}
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-f.FirstExit()
	if r := f.FailureReport(); !strings.Contains(r, "ended FAILED") || !strings.Contains(r, "cannot find input.dat") {
		t.Errorf("report: %s", r)
	}
}
