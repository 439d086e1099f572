package engine

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/ipcluster/ipcluster/mpi"
	"github.com/ipcluster/ipcluster/wire"
)

// ShellResult is what the sh builtin returns.
type ShellResult struct {
	Stdout string `msgpack:"stdout"`
	Stderr string `msgpack:"stderr"`
	Exit   int    `msgpack:"exit"` // the exit status; -1 if killed by a signal
}

// builtins are registered on every engine.
func builtins() map[string]any {
	return map[string]any{
		// echo returns its argument unchanged (without decoding it), or a
		// list of its arguments when given several.
		"echo": Native(func(_ context.Context, args []wire.Value) (any, error) {
			if len(args) == 1 {
				return args[0], nil
			}
			out := make([]any, len(args))
			for i, a := range args {
				v, err := a.Decode()
				if err != nil {
					return nil, err
				}
				out[i] = v
			}
			return out, nil
		}),
		// noop does nothing: for measuring overhead.
		"noop": Native(func(context.Context, []wire.Value) (any, error) { return nil, nil }),
		// sleep waits for the given seconds; an interrupt ends it early.
		"sleep": func(ctx context.Context, seconds float64) error {
			t := time.NewTimer(time.Duration(seconds * float64(time.Second)))
			defer t.Stop()
			select {
			case <-t.C:
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		},
		"hostname": os.Hostname,
		"pid":      os.Getpid,
		"getenv":   os.Getenv,
		// sh runs a command with /bin/sh -c and returns its output and exit
		// status; an interrupt kills the command's whole process group.
		"sh": func(ctx context.Context, command string) (ShellResult, error) {
			cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
			cmd.WaitDelay = time.Second
			err := cmd.Run()
			if ctx.Err() != nil {
				return ShellResult{}, context.Cause(ctx)
			}
			res := ShellResult{Stdout: stdout.String(), Stderr: stderr.String()}
			var exit *exec.ExitError
			switch {
			case err == nil:
			case errors.Is(err, exec.ErrWaitDelay):
				// The shell exited with status 0 but left a background
				// process holding its stdout or stderr (cmd &): what it
				// wrote until WaitDelay is the output.
			case errors.As(err, &exit):
				res.Exit = exit.ExitCode()
			default:
				return ShellResult{}, err
			}
			return res, nil
		},
		// The mpi builtins run on MPI_COMM_WORLD of an engine that runs as
		// an MPI rank in a build with MPI. Collectives must be sent to every
		// rank of a job (a job's view); an interrupt ends them on a rank
		// that waits for others (see package mpi: the job must then end).
		"mpi.info": func() (MPIInfo, error) {
			w := mpi.World()
			info := MPIInfo{Enabled: mpi.Enabled, Initialized: mpi.Initialized(), Rank: w.Rank(), Size: w.Size()}
			if info.Initialized {
				info.Processor, _ = mpi.ProcessorName()
			}
			return info, nil
		},
		"mpi.barrier": func(ctx context.Context) error {
			w, err := world()
			if err != nil {
				return err
			}
			return w.Barrier(ctx)
		},
		// mpi.allreduce combines every rank's values with op (sum, min,
		// max, prod) and returns the result on every rank.
		"mpi.allreduce": func(ctx context.Context, values []float64, op string) ([]float64, error) {
			o, err := mpi.ParseOp(op)
			if err != nil {
				return nil, err
			}
			w, err := world()
			if err != nil {
				return nil, err
			}
			out := make([]float64, len(values))
			return out, mpi.Allreduce(ctx, w, values, out, o)
		},
		// mpi.bcast returns root's values on every rank.
		"mpi.bcast": func(ctx context.Context, values []float64, root int) ([]float64, error) {
			w, err := world()
			if err != nil {
				return nil, err
			}
			out := append([]float64(nil), values...)
			return out, mpi.Bcast(ctx, w, out, root)
		},
	}
}

// world returns MPI_COMM_WORLD for the mpi builtins, or why there is none.
func world() (*mpi.Comm, error) {
	switch {
	case !mpi.Enabled:
		return nil, mpi.ErrStub
	case !mpi.Initialized():
		return nil, errors.New("mpi: this engine does not run as an MPI rank (start engines with ipcluster mpiexec)")
	}
	return mpi.World(), nil
}

// MPIInfo is what the mpi.info builtin returns.
type MPIInfo struct {
	Enabled     bool   `msgpack:"enabled"`     // the engine is built with MPI
	Initialized bool   `msgpack:"initialized"` // and runs as an MPI rank
	Rank        int    `msgpack:"rank"`
	Size        int    `msgpack:"size"`
	Processor   string `msgpack:"processor,omitempty"`
}
