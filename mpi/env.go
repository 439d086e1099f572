package mpi

import (
	"os"
	"strconv"
)

// launcherVars are the rank and size variables launchers export, most
// specific first: Open MPI, MPICH's Hydra and other PMI launchers, SLURM's
// srun, and PMIx, which names only the rank (its size is taken from any of
// the others).
var launcherVars = []struct{ rank, size string }{
	{"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
	{"PMI_RANK", "PMI_SIZE"},
	{"SLURM_PROCID", "SLURM_NTASKS"},
	{"PMIX_RANK", ""},
}

// FromLauncher returns the rank and size the process launcher gave this
// process, from its environment, and whether it found them. It needs no
// MPI library: engines use it to register with their rank in any build.
func FromLauncher() (rank, size int, ok bool) {
	return fromEnv(os.Getenv)
}

func fromEnv(getenv func(string) string) (rank, size int, ok bool) {
	num := func(name string) (int, bool) {
		n, err := strconv.Atoi(getenv(name))
		return n, err == nil && name != ""
	}
	for _, v := range launcherVars {
		r, okR := num(v.rank)
		if !okR || r < 0 {
			continue
		}
		sizes := []string{v.size}
		if v.size == "" {
			sizes = []string{"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"}
		}
		for _, name := range sizes {
			if s, okS := num(name); okS && r < s {
				return r, s, true
			}
		}
	}
	return 0, 1, false
}
