// Package launchers starts and stops groups of engine processes: on this
// machine (Local), as the ranks of an MPI job (MPIExec), and as a batch job
// (Batch, with a Scheduler such as package slurm's).
// Every launcher hands engines their connection through the environment,
// so no shared filesystem is needed.
package launchers

import (
	"context"
	"os"
	"time"
)

// Launcher starts and stops one group of engine processes (a job).
type Launcher interface {
	// Start starts the processes and returns once they are started (not
	// once the engines have registered: the controller knows that).
	Start(ctx context.Context) error
	// Signal sends sig to every process still running.
	Signal(sig os.Signal) error
	// Stop asks every process to end (SIGTERM), waits up to grace, then
	// kills what is left, and waits for all of them.
	Stop(grace time.Duration) error
	// Done is closed when every process has exited.
	Done() <-chan struct{}
	// FirstExit is closed when the first process exits: while engines
	// start, that means one failed.
	FirstExit() <-chan struct{}
	// Processes describes the processes, and how those that exited ended.
	Processes() []Process
	// Output returns the last lines engine i (a local process, an MPI rank)
	// printed, for error reports.
	Output(i int) string
}

// Process describes one launched process.
type Process struct {
	PID    int    // 0 for a batch job, which has no local process
	Batch  string // the batch system's job id, for a batch job
	Log    string // where its output goes, if to a file
	Exited bool
	Err    error // how it ended, once Exited (nil for a clean exit)
}
