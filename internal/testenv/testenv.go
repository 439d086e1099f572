// Package testenv says whether the real systems that integration tests
// need are here: an MPI launcher, a SLURM node (with its PBS commands).
// Tests call it first; `make test` provides them all.
package testenv

import (
	"os"
	"os/exec"
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
