package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/ipcluster/ipcluster/mpi"
)

// Main runs the program as one engine and exits. It is the whole main
// function of a program whose job is to serve as an engine, such as the
// ranks of `ipcluster mpiexec -n 8 -- ./prog`:
//
//	func main() {
//		engine.Main(func(e *engine.Engine) error {
//			return e.Register("pi", samplePi)
//		})
//	}
//
// It logs to standard error at $IPCLUSTER_LOG_LEVEL (default info) and
// serves as Serve does until the controller shuts the engine down or the
// process gets SIGINT or SIGTERM. It exits with status 0 after an orderly
// stop, and 1 after an error, which it prints.
func Main(setup func(*Engine) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Serve(ctx, Options{Logger: stderrLogger()}, setup)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// stderrLogger logs to a copy of standard error made now, so that output
// capture, which points descriptor 2 at the running task's client, does
// not take the log with it.
func stderrLogger() *slog.Logger {
	w := os.Stderr
	if fd, err := syscall.Dup(2); err == nil {
		w = os.NewFile(uintptr(fd), "log")
	}
	var level slog.Level
	level.UnmarshalText([]byte(os.Getenv("IPCLUSTER_LOG_LEVEL")))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// Serve makes an engine with opts, lets setup register its functions, and
// runs it until ctx ends or the controller shuts it down.
//
// Launched as an MPI rank in a build with MPI (the build tag mpi), Serve
// initialises MPI first, so the engine registers with its rank and size in
// MPI_COMM_WORLD and the functions it runs can use package mpi, and
// finalises MPI at the end. If a task was left blocked (a *StuckError,
// such as a collective that other ranks never joined) it does not
// finalise, which would wait for that task: the process should exit, and
// mpiexec then ends the job's other ranks.
func Serve(ctx context.Context, opts Options, setup func(*Engine) error) (err error) {
	if _, _, rank := mpi.FromLauncher(); mpi.Enabled && rank && !mpi.Initialized() {
		if err := mpi.Init(); err != nil {
			return fmt.Errorf("engine: %w", err)
		}
		defer func() {
			var stuck *StuckError
			if errors.As(err, &stuck) {
				return
			}
			if ferr := mpi.Finalize(); ferr != nil && err == nil {
				err = fmt.Errorf("engine: %w", ferr)
			}
		}()
	}
	e, err := New(opts)
	if err != nil {
		return err
	}
	if setup != nil {
		if err := setup(e); err != nil {
			return fmt.Errorf("engine: setup: %w", err)
		}
	}
	return e.Run(ctx)
}

// Start makes an engine and runs it in the background, for programs that
// do their own work and serve clients on the side; it returns at once,
// before the engine has registered (Registered tells when). Functions may
// be registered at any time; the controller lists those registered by the
// time the engine registers. Close stops the engine.
func Start(ctx context.Context, opts Options) (*Engine, error) {
	e, err := New(opts)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	e.background = &background{cancel: cancel, done: make(chan struct{})}
	go func() {
		e.background.err = e.Run(runCtx)
		close(e.background.done)
	}()
	return e, nil
}

// background is a Run started by Start.
type background struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// Close stops an engine made by Start and returns what its Run returned:
// nil after an orderly stop, also one the controller asked for.
func (e *Engine) Close() error {
	if e.background == nil {
		return errors.New("engine: Close of an engine not made by Start")
	}
	e.background.cancel()
	<-e.background.done
	return e.background.err
}

// Done is closed when an engine made by Start has stopped: closed by
// Close, shut down by the controller, or lost its controller.
func (e *Engine) Done() <-chan struct{} {
	if e.background == nil {
		return nil
	}
	return e.background.done
}
