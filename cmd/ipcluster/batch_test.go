package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipcluster/ipcluster/client"
	"github.com/ipcluster/ipcluster/internal/profile"
	"github.com/ipcluster/ipcluster/internal/testenv"
	"github.com/ipcluster/ipcluster/slurm"
)

// ipcluster slurm -n 4 on a real single-node SLURM: 4 engines a client can
// use, recorded with their batch job id, gone with ipcluster stop.
func TestSLURMEngines(t *testing.T) {
	testenv.NeedSLURM(t)
	e := newEnv(t)
	out := e.mustRun("slurm", "-n", "4", "--daemon")
	if !strings.Contains(out, "job 1: 4 engines registered") {
		t.Fatalf("ipcluster slurm said:\n%s", out)
	}
	st, err := profile.ReadState(e.profile().StatePath())
	if err != nil || len(st.Jobs) != 1 || st.Jobs[0].BatchID == "" || st.Jobs[0].Kind != "slurm" {
		t.Fatalf("run state %+v, %v", st, err)
	}
	batch := st.Jobs[0].BatchID
	status := e.mustRun("status")
	if !strings.Contains(status, "slurm") || !strings.Contains(status, batch) || !strings.Contains(status, "RUNNING") || !strings.Contains(status, "4/4") {
		t.Errorf("ipcluster status:\n%s", status)
	}
	c := e.connect()
	ctx := ctxT(t, time.Minute)
	ar, err := c.Job(1).View().Apply(ctx, "getenv", "SLURM_JOB_ID")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := ar.Get(ctx)
	if err != nil || len(ids) != 4 {
		t.Fatalf("getenv on the job: %v, %v", ids, err)
	}
	for _, v := range ids {
		if v != batch {
			t.Errorf("an engine runs in SLURM job %v, want %s", v, batch)
		}
	}
	e.mustRun("stop")
	if j, err := (slurm.Commands{}).Status(ctx, batch); err != nil || !j.State.Finished() {
		t.Errorf("after ipcluster stop the job is %+v, %v", j, err)
	}
}

// What goes wrong is said: a template error with its line, the
// scheduler's own words for a bad partition, a job that fails before its
// engines register (with its output), and a job cancelled from outside.
func TestSLURMErrors(t *testing.T) {
	testenv.NeedSLURM(t)
	e := newEnv(t)
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(text), 0o600)
		return path
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"slurm", "-n", "1", "--template", write("bad.sbatch", "#!/bin/sh\n#SBATCH --time={{.WallTime}}\n")},
			[]string{"bad.sbatch:2:17", "WallTime"}},
		{[]string{"slurm", "-n", "1", "--partition", "nowhere"}, []string{"sbatch: error:", "invalid partition"}},
		{[]string{"slurm", "-n", "2", "--template", write("fail.sbatch", "#!/bin/sh\n#SBATCH --output={{.Output}}\necho 'no such module: gcc/99' >&2\nexit 3\n")},
			[]string{"the batch job ended with 0 of 2 engines registered", "ended FAILED", "no such module: gcc/99"}},
	} {
		out, err := e.ipcluster(tc.args...)
		for _, want := range tc.want {
			if err == nil || !strings.Contains(out, want) {
				t.Errorf("ipcluster %q: %v\n%s\nwant %q", tc.args, err, out, want)
			}
		}
	}

	// Cancelled from outside while ipcluster slurm waits for the engines.
	cmd := e.command(ctxT(t, time.Minute), "slurm", "-n", "1", "--job-name", "ipcluster-cancel-test",
		"--template", write("wait.sbatch", "#!/bin/sh\n#SBATCH --job-name={{.JobName}}\n#SBATCH --output={{.Output}}\nsleep 3600\n"))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	id := ""
	for deadline := time.Now().Add(30 * time.Second); id == ""; {
		q, _ := exec.Command("squeue", "-h", "-n", "ipcluster-cancel-test", "-o", "%i").Output()
		id = strings.TrimSpace(string(q))
		if time.Now().After(deadline) {
			t.Fatal("the job never showed in squeue")
		}
		time.Sleep(100 * time.Millisecond) // polling the scheduler
	}
	if err := exec.Command("scancel", id).Run(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(out.String(), "ended CANCELLED") {
		t.Errorf("after scancel: %v\n%s", err, out.String())
	}
}

func TestSLURMDryRunAndTemplate(t *testing.T) {
	e := newEnv(t)
	out := e.mustRun("slurm", "-n", "8", "--partition", "debug", "--walltime", "00:10:00", "--directive=--exclusive", "--dry-run")
	for _, want := range []string{"#SBATCH --ntasks=8\n", "#SBATCH --partition=debug\n", "#SBATCH --time=00:10:00\n",
		"#SBATCH --exclusive\n", "export IPCLUSTER_CONNECTION=", " engine\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("--dry-run lacks %q:\n%s", want, out)
		}
	}
	if out := e.mustRun("template", "slurm"); out != slurm.DefaultTemplate {
		t.Errorf("ipcluster template slurm printed\n%s", out)
	}
	if out, err := e.ipcluster("template", "lsf"); err == nil || !strings.Contains(out, `no template "lsf"`) {
		t.Errorf("template lsf: %v %s", err, out)
	}
}

// ipcluster pbs through SLURM's qsub/qstat/qdel: engines that a client
// can use, recorded with their job id, gone with ipcluster stop.
func TestPBSEngines(t *testing.T) {
	testenv.NeedSLURM(t)
	e := newEnv(t)
	// SLURM's qsub writes the job's output next to the script, in the work directory.
	out := e.mustRun("pbs", "-n", "2", "--daemon", "--workdir", t.TempDir())
	if !strings.Contains(out, "job 1: 2 engines registered") {
		t.Fatalf("ipcluster pbs said:\n%s", out)
	}
	st, err := profile.ReadState(e.profile().StatePath())
	if err != nil || len(st.Jobs) != 1 || st.Jobs[0].BatchID == "" || st.Jobs[0].Kind != "pbs" {
		t.Fatalf("run state %+v, %v", st, err)
	}
	c := e.connect()
	ctx := ctxT(t, time.Minute)
	ar, err := c.Job(1).View().Apply(ctx, "getenv", "SLURM_JOB_ID")
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := ar.Get(ctx); err != nil || len(ids) != 2 || ids[c.IDs()[0]] != st.Jobs[0].BatchID {
		t.Errorf("the engines' batch job: %v, %v; want %s", ids, err, st.Jobs[0].BatchID)
	}
	e.mustRun("stop")
	if out := e.mustRun("template", "pbs"); !strings.Contains(out, "#PBS -l nodes=") {
		t.Errorf("ipcluster template pbs:\n%s", out)
	}
}

// A job that hits its walltime: its engines go, the task running on them
// fails, and ipcluster status says TIMEOUT.
func TestSLURMWalltime(t *testing.T) {
	testenv.NeedSLURM(t)
	if testing.Short() {
		t.Skip("takes over a minute (a 1-minute job)")
	}
	e := newEnv(t)
	e.mustRun("slurm", "-n", "1", "--walltime", "00:01:00", "--daemon")
	c := e.connect()
	ctx := ctxT(t, 5*time.Minute)
	ar, err := c.DirectView(client.All).Apply(ctx, "sleep", 600.0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ar.Get(ctx)
	if err == nil {
		t.Fatal("a task outlived its job's walltime")
	}
	for len(c.IDs()) > 0 { // the engine unregisters as SLURM ends the job
		if _, err := c.Engines(ctx); err != nil {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatal("the engine stays registered after the walltime")
		}
		time.Sleep(100 * time.Millisecond) // polling a condition
	}
	deadline := time.Now().Add(time.Minute)
	for {
		status := e.mustRun("status")
		if strings.Contains(status, "TIMEOUT") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ipcluster status never said TIMEOUT:\n%s", status)
		}
		time.Sleep(time.Second) // polling the scheduler
	}
	// The client is told why: the engine got a signal inside a SLURM job.
	if !strings.Contains(err.Error(), "shut down while the task ran") || !strings.Contains(err.Error(), "reached its time limit") {
		t.Errorf("the task ended with %v, want its engine's end and why", err)
	}
}

// A batch job that joined but has no engines yet (waiting in the queue, or
// never starting them) is cancelled by its batch id.
func TestStopPendingBatchJob(t *testing.T) {
	testenv.NeedSLURM(t)
	e := newEnv(t)
	e.mustRun("start", "-n", "1", "--daemon")
	tmpl := filepath.Join(t.TempDir(), "never.sbatch")
	os.WriteFile(tmpl, []byte("#!/bin/sh\n#SBATCH --output={{.Output}}\nsleep 3600\n"), 0o600)
	cmd := e.command(ctxT(t, time.Minute), "slurm", "-n", "1", "--template", tmpl)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var batch string
	for deadline := time.Now().Add(30 * time.Second); batch == ""; {
		for _, j := range e.profile().Jobs() {
			batch = j.BatchID
		}
		if time.Now().After(deadline) {
			t.Fatal("the joining job was never recorded")
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
	if out, err := e.ipcluster("stop", "--job", "2"); err == nil || !strings.Contains(out, "ipcluster stop --batch "+batch) {
		t.Errorf("stop --job 2 of a pending job: %v\n%s", err, out)
	}
	if out := e.mustRun("stop", "--batch", batch); !strings.Contains(out, "cancelled slurm job "+batch) {
		t.Errorf("stop --batch said:\n%s", out)
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(out.String(), "ended CANCELLED") {
		t.Errorf("the joining command after the cancel: %v\n%s", err, out.String())
	}
	if out, err := e.ipcluster("stop", "--batch", "424242"); err == nil || !strings.Contains(out, "no job of profile") {
		t.Errorf("stop --batch of an unknown job: %v\n%s", err, out)
	}
	e.mustRun("stop")
}

// ipcluster slurm --controller-in-job on a real single-node SLURM: the
// controller and 3 engines run in the job; the command returns once they
// have registered; a client finds them through the profile's connection
// file; status shows the job; stop ends it; a second start while the first
// runs is refused.
func TestSLURMControllerInJob(t *testing.T) {
	testenv.NeedSLURM(t)
	e := newEnv(t)
	out := e.mustRun("slurm", "-n", "3", "--controller-in-job")
	if !strings.Contains(out, "the controller runs in it on") || !strings.Contains(out, "3 engines registered") {
		t.Fatalf("ipcluster slurm --controller-in-job said:\n%s", out)
	}
	st, err := profile.ReadState(e.profile().StatePath())
	if err != nil || st.BatchID == "" || st.Batch != "slurm" || st.Host == "" {
		t.Fatalf("run state %+v, %v", st, err)
	}
	batch := st.BatchID
	if out, err := e.ipcluster("slurm", "-n", "1", "--controller-in-job"); err == nil || !strings.Contains(out, "a cluster is running") {
		t.Errorf("a second --controller-in-job: %v\n%s", err, out)
	}
	if status := e.mustRun("status"); !strings.Contains(status, "controller in slurm job "+batch+" (RUNNING)") {
		t.Errorf("ipcluster status:\n%s", status)
	}
	c := e.connect()
	ctx := ctxT(t, time.Minute)
	ids, err := c.Apply(ctx, "getenv", []any{"SLURM_JOB_ID"}, client.Targets(client.All))
	if err != nil || len(ids) != 3 {
		t.Fatalf("getenv on the engines: %v, %v", ids, err)
	}
	for _, v := range ids {
		if v != batch {
			t.Errorf("an engine runs in SLURM job %v, want %s", v, batch)
		}
	}
	c.Close()
	if out := e.mustRun("stop"); !strings.Contains(out, "slurm job "+batch) {
		t.Errorf("ipcluster stop said:\n%s", out)
	}
	if j, err := (slurm.Commands{}).Status(ctx, batch); err != nil || !j.State.Finished() {
		t.Errorf("after ipcluster stop the job is %+v, %v", j, err)
	}
	if _, err := profile.ReadState(e.profile().StatePath()); err == nil {
		t.Error("the state file outlived the cluster")
	}

	// A job that ends before its controller comes up is reported, with its
	// output.
	tmpl := filepath.Join(t.TempDir(), "fails.sbatch")
	os.WriteFile(tmpl, []byte("#!/bin/sh\n#SBATCH --output={{.Output}}\n# would run: {{.ControllerCommand}}\necho no controller today; exit 3\n"), 0o600)
	if out, err := e.ipcluster("slurm", "-n", "1", "--controller-in-job", "--template", tmpl); err == nil ||
		!strings.Contains(out, "ended FAILED") || !strings.Contains(out, "no controller today") {
		t.Errorf("a job that fails at once: %v\n%s", err, out)
	}
}
