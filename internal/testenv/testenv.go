// Package testenv says whether the real systems that integration tests
// need are here: an MPI launcher, a SLURM node (with its PBS commands).
// Tests call it first; `make test` provides them all.
package testenv

import (
	"cmp"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// NeedMPIExec fails t when there is no mpiexec: make test installs it.
func NeedMPIExec(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("mpiexec"); err != nil {
		t.Fatal("mpiexec not found: install Open MPI (apt-get install openmpi-bin libopenmpi-dev), as make test does")
	}
}

// NeedSLURM skips t unless a SLURM node answers, or fails it when the run
// requires one: make test starts one with .ci/slurm up and sets
// IPCLUSTER_REQUIRE_SLURM=1.
func NeedSLURM(t testing.TB) {
	t.Helper()
	out, err := exec.Command("sinfo", "-h", "-o", "%T").Output()
	if err == nil && (strings.Contains(string(out), "idle") || strings.Contains(string(out), "mix") || strings.Contains(string(out), "alloc")) {
		return
	}
	if os.Getenv("IPCLUSTER_REQUIRE_SLURM") == "1" {
		t.Fatalf("no SLURM node answers (sinfo: %v %s): run .ci/slurm up as root", err, out)
	}
	t.Skip("no SLURM here: .ci/slurm up (as root) starts one; make test does")
}

// NeedPBS is NeedSLURM, and also needs qsub: the PBS commands here are
// SLURM's wrappers.
func NeedPBS(t testing.TB) {
	t.Helper()
	NeedSLURM(t)
	if _, err := exec.LookPath("qsub"); err != nil {
		if os.Getenv("IPCLUSTER_REQUIRE_SLURM") == "1" {
			t.Fatal("no qsub: .ci/slurm up installs slurm-wlm-torque")
		}
		t.Skip("no qsub here: .ci/slurm up (as root) installs SLURM's PBS commands")
	}
}

// MPIExec returns the mpiexec to launch n ranks with, and its arguments up
// to the program: $IPCLUSTER_TEST_MPIEXEC names one for an MPI other than
// the default (make test-mpich); Open MPI gets --oversubscribe, and
// --allow-run-as-root as root. It fails t when there is none.
func MPIExec(t testing.TB, n int) (path string, args []string) {
	t.Helper()
	path, err := exec.LookPath(cmp.Or(os.Getenv("IPCLUSTER_TEST_MPIEXEC"), "mpiexec"))
	if err != nil {
		t.Fatal("mpiexec not found: install Open MPI (apt-get install openmpi-bin libopenmpi-dev), as make test does")
	}
	args = []string{"-n", strconv.Itoa(n)}
	version, _ := exec.Command(path, "--version").CombinedOutput()
	if !strings.Contains(string(version), "HYDRA") { // Open MPI
		if os.Getuid() == 0 {
			args = append(args, "--allow-run-as-root")
		}
		args = append(args, "--oversubscribe")
	}
	return path, args
}
