package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/ipcluster/ipcluster/client"
	"github.com/ipcluster/ipcluster/internal/console"
)

func newPx(g *globals) *cobra.Command {
	var targets, file string
	var cf clientFlags
	var job int
	cmd := &cobra.Command{
		Use:   "px [--targets T | --job N] CODE | -f FILE",
		Short: "Run Starlark code on engines, once",
		Long: `Px runs a Starlark code cell on engines, in their namespaces (what the
cell assigns stays for later cells, and for pull), and prints what each
engine prints as it prints it, each line prefixed with the engine's id, then
the value of a last expression, if any. It exits with status 1 if the cell
failed on any engine (the error, with its Starlark backtrace, goes to
standard error), so that shell and job scripts can use it.

Cells see the modules engine (id, host, pid, job, rank, size) and, in
builds with MPI, mpi (rank, size, barrier, bcast, allreduce, gather,
allgather); registered functions as fn.name(...) or call("name", ...).

On a job whose program steers (engine.Steer in its loop, as examples/heat),
--job runs the cell at a steering point, the same step on every rank, with
the program's exposed variables as globals: arrays view its memory, and
numbers the cell assigns are written back.`,
		Example: `  ipcluster px 'print("rank", engine.rank, "of", engine.size)'
  ipcluster px --targets 0-3 -f setup.star
  ipcluster px --job 1 'print(mpi.allreduce(mpi.rank, "sum"))'
  ipcluster px --job 1 'dt = dt / 2'            # a steering job: at one step`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, code, err := pxCode(args, file)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("targets") && cmd.Flags().Changed("job") {
				return errors.New("--targets and --job choose engines two ways: give one")
			}
			target, err := console.ParseTargets(targets)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("job") {
				target = client.JobRanks(job)
			}
			return runPx(cmd.Context(), cf.options(g), cmd.OutOrStdout(), cmd.ErrOrStderr(), target, job, name, code)
		},
	}
	cmd.Flags().StringVarP(&targets, "targets", "t", "all", `engines to run on: "all", or ids and ranges such as 0,2,4-7`)
	cmd.Flags().IntVar(&job, "job", 0, "run on every rank of this job (see ipcluster engines)")
	cmd.Flags().StringVarP(&file, "file", "f", "", "read the code from this file (- for standard input)")
	cf.add(cmd, "connection-file", "")
	return cmd
}

// pxCode returns the cell's name and code, from the argument or a file.
func pxCode(args []string, file string) (name, code string, err error) {
	switch {
	case file != "" && len(args) > 0:
		return "", "", errors.New("give the code as an argument or with -f, not both")
	case file == "-":
		data, err := io.ReadAll(os.Stdin)
		return "<stdin>", string(data), err
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			return "", "", err
		}
		return filepath.Base(file), string(data), nil
	case len(args) == 0:
		return "", "", errors.New("no code: give it as an argument, or with -f FILE")
	}
	return "", args[0], nil
}

// prefixer writes output chunks line by line, each prefixed with its
// engine's id; chunks of one engine may split lines.
type prefixer struct {
	mu      sync.Mutex
	w       io.Writer
	partial map[int][]byte
	bar     atomic.Pointer[progress] // cleared before output, if set
}

func (p *prefixer) write(engine int, data []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if bar := p.bar.Load(); bar != nil {
		bar.clear()
	}
	buf := append(p.partial[engine], data...)
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(p.w, "[%d] %s\n", engine, buf[:i])
		buf = buf[i+1:]
	}
	p.partial[engine] = buf
}

// flush writes what is left of unfinished lines.
func (p *prefixer) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for engine, buf := range p.partial {
		if len(buf) > 0 {
			fmt.Fprintf(p.w, "[%d] %s\n", engine, buf)
		}
	}
	clear(p.partial)
}

func runPx(ctx context.Context, opts client.Options, stdout, stderr io.Writer, target client.Target, job int, name, code string) error {
	out := &prefixer{w: stdout, partial: map[int][]byte{}}
	errOut := &prefixer{w: stderr, partial: map[int][]byte{}}
	opts.OnOutput = func(o client.Output) {
		if o.Stream == "stderr" {
			errOut.write(o.Engine, o.Data)
		} else {
			out.write(o.Engine, o.Data)
		}
	}
	c, err := client.Connect(ctx, opts)
	if err != nil {
		return err
	}
	defer c.Close()
	if job > 0 {
		if steers, err := c.Job(job).Steers(ctx); err != nil {
			return err
		} else if steers {
			return steerPx(ctx, c.Job(job), stdout, stderr, out, errOut, code)
		}
	}
	dv := c.DirectView(target)
	var r *client.AsyncResult
	if name != "" {
		r, err = dv.ExecuteNamed(ctx, name, code)
	} else {
		r, err = dv.Execute(ctx, code)
	}
	if err != nil {
		return err
	}
	bar, stopBar := watchTasks(r, stderr)
	out.bar.Store(bar)
	errOut.bar.Store(bar)
	defer stopBar()
	if err := r.Wait(ctx); err != nil {
		if errors.Is(err, context.Canceled) {
			// Ctrl-C: interrupt the cells, and report how they ended.
			ictx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			dv.Interrupt(ictx)
			r.Wait(ictx)
		} else {
			return err
		}
	}
	values, err := client.Results[any](context.Background(), r)
	stopBar()
	out.bar.Store(nil)
	errOut.bar.Store(nil)
	out.flush()
	errOut.flush()
	for _, md := range r.Metadata() {
		if v, ok := values[md.Engine]; ok && v != nil {
			fmt.Fprintf(stdout, "[%d] Out: %s\n", md.Engine, formatValue(v))
		}
	}
	if err == nil {
		return nil
	}
	failed := printTaskErrors(stderr, err)
	return fmt.Errorf("the cell failed on %d of %d engines", failed, len(r.Metadata()))
}

// printTaskErrors prints each failed task's error, with its remote
// backtrace, each line prefixed with the engine's id, and returns how many
// tasks failed.
func printTaskErrors(stderr io.Writer, err error) int {
	errs := taskErrors(err)
	for _, e := range errs {
		var re *client.RemoteError
		if errors.As(e, &re) {
			text := re.Type + ": " + re.Message
			if re.Traceback != "" {
				text += "\n" + strings.TrimRight(re.Traceback, "\n")
			}
			prefix := fmt.Sprintf("[%d] ", re.Engine)
			fmt.Fprintln(stderr, prefix+strings.ReplaceAll(text, "\n", "\n"+prefix))
		} else {
			fmt.Fprintln(stderr, e)
		}
	}
	return len(errs)
}

// steerPx runs a cell at a steering point of job: the same step on every
// rank, with the program's exposed variables in scope.
func steerPx(ctx context.Context, job *client.Job, stdout, stderr io.Writer, out, errOut *prefixer, code string) error {
	snap, err := job.Execute(ctx, code)
	out.flush()
	errOut.flush()
	if err != nil {
		return fmt.Errorf("the cell failed on %d engines of job %d", printTaskErrors(stderr, err), job.ID())
	}
	fmt.Fprintf(stdout, "at step %d\n", snap.Step)
	for i, r := range snap.Ranks {
		if v, err := snap.Value(r, "_"); err == nil && v != nil {
			fmt.Fprintf(stdout, "[%d] Out: %s\n", snap.Engines[i], formatValue(v))
		}
	}
	return nil
}

// taskErrors lists the errors of a call's failed tasks.
func taskErrors(err error) []error {
	var ce *client.CompositeError
	if errors.As(err, &ce) {
		return ce.Errors
	}
	return []error{err}
}

// formatValue prints a cell's value as Starlark (and Python) would.
func formatValue(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case []any:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = formatValue(x)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case bool:
		if v {
			return "True"
		}
		return "False"
	case nil:
		return "None"
	}
	return fmt.Sprint(v)
}
