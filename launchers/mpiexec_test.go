package launchers

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipcluster/ipcluster/internal/testenv"
)

func TestImplementationOf(t *testing.T) {
	for _, tc := range []struct {
		version string
		want    Implementation
	}{
		{"mpiexec (OpenRTE) 4.1.4\n\nReport bugs to http://www.open-mpi.org/community/help/", OpenMPI},
		{"mpiexec (Open MPI) 5.0.3", OpenMPI},
		{"HYDRA build details:\n    Version:                                 4.0.2", MPICH},
		{"Intel(R) MPI Library for Linux* OS, Version 2021.9", MPICH},
		{"something else", Unknown},
	} {
		if got := implementationOf(tc.version); got != tc.want {
			t.Errorf("implementationOf(%q) = %s, want %s", tc.version, got, tc.want)
		}
	}
}

func TestCommandLine(t *testing.T) {
	m := &MPIExec{N: 4, Env: []string{"A=1", "B=x=y"}, Args: []string{"--map-by", "core"}}
	prog := []string{"./sim", "-in", "x"}
	for _, tc := range []struct {
		name        string
		impl        Implementation
		root, batch bool
		want        string
	}{
		{"open mpi", OpenMPI, false, false, "-n 4 --tag-output --oversubscribe -x A -x B --map-by core ./sim -in x"},
		{"open mpi as root", OpenMPI, true, false, "-n 4 --tag-output --oversubscribe --allow-run-as-root -x A -x B --map-by core ./sim -in x"},
		{"open mpi in a batch job", OpenMPI, false, true, "-n 4 --tag-output -x A -x B --map-by core ./sim -in x"},
		{"mpich", MPICH, true, false, "-n 4 -prepend-rank --map-by core ./sim -in x"},
		{"unknown", Unknown, false, false, "-n 4 --map-by core ./sim -in x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(m.commandLine(tc.impl, prog, tc.root, tc.batch), " "); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	// The user's own choice wins.
	m.Args = []string{"--nooversubscribe"}
	if got := m.commandLine(OpenMPI, prog, false, false); slices.Contains(got, "--oversubscribe") {
		t.Errorf("--oversubscribe added to %v", got)
	}
}

func TestUntag(t *testing.T) {
	for _, tc := range []struct {
		impl Implementation
		line string
		rank int
		text string
	}{
		{OpenMPI, "[1,3]<stderr>:boom: here", 3, "boom: here"},
		{OpenMPI, "[12,0]<stdout>:", 0, ""},
		{OpenMPI, "[1,x]<stdout>:text", -1, "[1,x]<stdout>:text"},
		{OpenMPI, "[1,2]<other>:text", -1, "[1,2]<other>:text"},
		{OpenMPI, "mpiexec was unable to launch", -1, "mpiexec was unable to launch"},
		{MPICH, "[5] hello [x]", 5, "hello [x]"},
		{MPICH, "[proxy:0] error", -1, "[proxy:0] error"},
		{Unknown, "[1,3]<stderr>:x", -1, "[1,3]<stderr>:x"},
	} {
		if rank, text := untag(tc.impl, tc.line); rank != tc.rank || text != tc.text {
			t.Errorf("untag(%s, %q) = %d, %q; want %d, %q", tc.impl, tc.line, rank, text, tc.rank, tc.text)
		}
	}
}

// Ranks get the environment, their output is in the log tagged by rank,
// and each rank's last lines are kept.
func TestMPIExecRuns(t *testing.T) {
	testenv.NeedMPIExec(t)
	log := t.TempDir() + "/job.log"
	m := &MPIExec{N: 3, Log: log, Env: []string{"GREETING=hello"},
		Command: []string{"/bin/sh", "-c", `echo "$GREETING from rank $OMPI_COMM_WORLD_RANK"; echo "warning $OMPI_COMM_WORLD_RANK" >&2`}}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-m.Done()
	if p := m.Processes(); len(p) != 1 || !p[0].Exited || p[0].Err != nil {
		t.Fatalf("mpiexec: %+v", p)
	}
	if m.Implementation() != OpenMPI {
		t.Errorf("implementation %s, want Open MPI", m.Implementation())
	}
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	for r, rank := range []string{"0", "1", "2"} {
		if out := m.Output(r); !strings.Contains(out, "hello from rank "+rank) || !strings.Contains(out, "warning "+rank) {
			t.Errorf("rank %d output %q", r, out)
		}
		if !strings.Contains(string(data), "]<stdout>:hello from rank "+rank) {
			t.Errorf("log lacks rank %s's tagged line:\n%s", rank, data)
		}
	}
}

// A rank that fails: mpiexec ends the job, and the report names the rank
// and what it printed.
func TestMPIExecFailureReport(t *testing.T) {
	testenv.NeedMPIExec(t)
	m := &MPIExec{N: 3,
		Command: []string{"/bin/sh", "-c", `if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then echo "cannot open input.dat" >&2; exit 3; fi; exec sleep 3600`}}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.Done():
	case <-time.After(60 * time.Second):
		m.Stop(time.Second)
		t.Fatal("mpiexec did not end the job after a rank failed")
	}
	report := m.FailureReport([]int{0, 2})
	for _, want := range []string{"exited: exit status 3", "rank 1 said:\n    cannot open input.dat"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

// A program that does not exist: mpiexec's own message is reported.
func TestMPIExecMissingProgram(t *testing.T) {
	testenv.NeedMPIExec(t)
	m := &MPIExec{N: 2, Command: []string{"/nonexistent/program"}}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-m.Done()
	if report := m.FailureReport(nil); !strings.Contains(report, "mpiexec said:") || !strings.Contains(report, "/nonexistent/program") {
		t.Errorf("report:\n%s", report)
	}
}

// Stop ends every rank, also one that ignores SIGTERM.
func TestMPIExecStop(t *testing.T) {
	testenv.NeedMPIExec(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m := &MPIExec{N: 2, Echo: w,
		Command: []string{"/bin/sh", "-c", `trap "" TERM; echo "pid $$"; while :; do sleep 1; done`}}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.Close()
	var pids []int
	lines := bufio.NewScanner(r)
	for len(pids) < 2 && lines.Scan() {
		if _, text := untag(OpenMPI, lines.Text()); strings.HasPrefix(text, "pid ") {
			pid, err := strconv.Atoi(strings.TrimPrefix(text, "pid "))
			if err != nil {
				t.Fatal(err)
			}
			pids = append(pids, pid)
		}
	}
	go io.Copy(io.Discard, r)
	if err := m.Stop(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	<-m.Done()
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("rank process %d still runs after Stop", pid)
		}
	}
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(data), ") ")
	return !strings.HasPrefix(rest, "Z")
}

// MPICH's mpiexec (Hydra), installed beside Open MPI by make test: its
// -prepend-rank tags are read back.
func TestMPIExecMPICH(t *testing.T) {
	if _, err := exec.LookPath("mpiexec.mpich"); err != nil {
		t.Skip("no mpiexec.mpich (make test installs MPICH: apt-get install mpich)")
	}
	m := &MPIExec{N: 2, MPIExec: "mpiexec.mpich", Env: []string{"GREETING=hi"},
		Command: []string{"/bin/sh", "-c", `echo "$GREETING from $PMI_RANK of $PMI_SIZE"; exit $PMI_RANK`}}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-m.Done()
	if m.Implementation() != MPICH {
		t.Fatalf("implementation %s, want MPICH", m.Implementation())
	}
	for r := range 2 {
		if out := m.Output(r); out != fmt.Sprintf("hi from %d of 2", r) {
			t.Errorf("rank %d output %q", r, out)
		}
	}
	if report := m.FailureReport([]int{0}); !strings.Contains(report, "rank 1 said:\n    hi from 1 of 2") || strings.Contains(report, "rank 0") {
		t.Errorf("report:\n%s", report)
	}
}
