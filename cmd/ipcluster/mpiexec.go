package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ipcluster/ipcluster/internal/profile"
	"github.com/ipcluster/ipcluster/internal/supervisor"
	"github.com/ipcluster/ipcluster/launchers"
)

type mpiexecFlags struct {
	n       int
	mpiArgs string
	mpiexec string
	daemon  bool
	timeout time.Duration
}

func newMPIExec(g *globals) *cobra.Command {
	var f mpiexecFlags
	cmd := &cobra.Command{
		Use:   "mpiexec [flags] [-- program [args...]]",
		Short: "Start engines as the ranks of an MPI job",
		Long: `Mpiexec runs mpiexec to start engines as the ranks of one MPI job, and
waits until every rank has registered. Each rank is "ipcluster engine",
or the program given after --: a program of your own that serves as an
engine (engine.Main, or engine.Start beside its own work).

If no controller runs for the profile, one starts in this process and the
job is its job 1. If one runs, the job joins it as the next job: one
controller spans several MPI jobs, each addressed as a whole (its ranks
in order) by clients: client.Job(n).View(), ipcluster engines.

Either way this command serves until Ctrl-C, which stops the job (and a
controller started here), or until the job's engines stop, as after
"ipcluster stop --job N". With --daemon it returns once the ranks are
registered.

The ranks find the controller through their environment, exported by
mpiexec (no shared filesystem is needed). With Open MPI, ipcluster adds
--tag-output, -x for its variables and, outside a batch allocation,
--oversubscribe (engines mostly wait); with MPICH, -prepend-rank. Each
rank's output goes to a log file, tagged with its rank; if the job ends
before its ranks register, the error shows what the failed ranks printed.`,
		Example: `  ipcluster mpiexec -n 4
  ipcluster mpiexec -n 8 -- ./mysim -in x
  ipcluster mpiexec -n 16 --mpi-args "--map-by core"
  ipcluster mpiexec -n 4 --daemon && ipcluster mpiexec -n 2 --daemon   # two jobs, one controller`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if dash := cmd.ArgsLenAtDash(); len(args) > 0 && dash != 0 {
				return fmt.Errorf("unexpected argument %q: the program and its arguments go after --, as in: ipcluster mpiexec -n 4 -- ./prog", args[0])
			}
			return runMPIExec(cmd, g, f, args)
		},
	}
	fl := cmd.Flags()
	fl.IntVarP(&f.n, "n", "n", 0, "number of ranks (default: [engines] n in ipcluster.toml, else one per CPU core)")
	fl.StringVar(&f.mpiArgs, "mpi-args", "", `more mpiexec arguments, split as a shell would, e.g. "--map-by core"`)
	fl.StringVar(&f.mpiexec, "mpiexec", "", "the mpiexec to run (default: [mpi] mpiexec, else mpiexec from $PATH)")
	fl.BoolVar(&f.daemon, "daemon", false, "run in the background: return once every rank has registered")
	fl.DurationVar(&f.timeout, "timeout", 5*time.Minute, "how long to wait for every rank to register")
	return cmd
}

func runMPIExec(cmd *cobra.Command, g *globals, f mpiexecFlags, program []string) error {
	p, cfg, err := g.load()
	if err != nil {
		return err
	}
	if f.n < 0 {
		return fmt.Errorf("-n %d: the number of ranks cannot be negative", f.n)
	}
	n := f.n
	if n == 0 {
		n = cfg.Engines.N
	}
	if n == 0 {
		n = runtime.NumCPU()
	}
	if f.timeout <= 0 {
		return fmt.Errorf("--timeout %v: must be positive", f.timeout)
	}
	extra, err := splitArgs(f.mpiArgs)
	if err != nil {
		return fmt.Errorf("--mpi-args: %w", err)
	}
	mpiexec := cfg.MPI.MPIExec
	if f.mpiexec != "" {
		mpiexec = f.mpiexec
	}
	args := append(append([]string(nil), cfg.MPI.Args...), extra...)
	// A relative program path names a file here: mpiexec would look for a
	// bare name in $PATH, and ranks on other nodes start in other places.
	if len(program) > 0 && strings.ContainsRune(program[0], '/') {
		if abs, err := filepath.Abs(program[0]); err == nil {
			program[0] = abs
		}
	}
	return runJob(cmd, g, p, cfg, jobRun{
		kind: "mpiexec", n: n, daemon: f.daemon, timeout: f.timeout, unit: "ranks",
		launch: func(env []string, log string) launchers.Launcher {
			return &launchers.MPIExec{N: n, Command: program, MPIExec: mpiexec, Args: args, Env: env, Log: log}
		},
		outputOf: func(pid int) string { return filepath.Join(p.LogDir(), fmt.Sprintf("job-mpiexec-%d.log", pid)) },
	})
}

// jobRun is how a command (mpiexec, slurm, pbs) starts a job of engines.
type jobRun struct {
	kind    string // the launcher: "mpiexec", "slurm"...
	n       int
	daemon  bool
	timeout time.Duration
	unit    string // what the engines are called: "ranks", "engines"
	// launch makes the launcher, given the engines' environment and where
	// their output goes.
	launch   func(env []string, output string) launchers.Launcher
	outputOf func(pid int) string // where the engines' output goes, for this process
}

// runJob starts a job: with a controller in this process if none runs for
// the profile, else joining the running one. It serves until the job ends
// or Ctrl-C, or with --daemon returns once the engines have registered.
func runJob(cmd *cobra.Command, g *globals, p *profile.Profile, cfg *profile.Config, jr jobRun) error {
	out := cmd.OutOrStdout()
	_, running, err := p.Running()
	if err != nil {
		return err
	}
	logName := jr.kind + ".log"
	if running {
		logName = fmt.Sprintf("%s-%d.log", jr.kind, os.Getpid())
	}
	if jr.daemon && os.Getenv(daemonEnv) == "" {
		return spawnDaemon(cmd.Context(), p, logName, out)
	}
	report, err := daemonReport()
	if err != nil {
		return err
	}
	log, closeLog, err := g.newLogger(p, cfg, logName, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer closeLog()
	if err := os.MkdirAll(p.LogDir(), 0o700); err != nil {
		return err
	}
	output := jr.outputOf(os.Getpid())
	launch := func(env []string) launchers.Launcher { return jr.launch(env, output) }
	var bar *progress
	if report == nil {
		bar = newProgress(cmd.ErrOrStderr(), jr.unit+" registered")
	}
	showProgress := func(have, want int) {
		if bar != nil {
			bar.update(have, want)
		}
	}
	job := 0
	ready := func(r supervisor.Ready, controller bool) {
		job = r.Job
		if bar != nil {
			bar.end()
		}
		msg := fmt.Sprintf("ipcluster: job %d: %d %s registered in %.2f s (profile %q)\n", r.Job, r.Engines, jr.unit, r.Elapsed.Seconds(), p.Name)
		if controller {
			msg += fmt.Sprintf("  connection file: %s\n  controller:      %s\n", r.ClientFile, r.Endpoint)
		}
		msg += fmt.Sprintf("  output of the %s: %s\n", jr.unit, output)
		stop := stopCommand(p, r.Job)
		if controller {
			stop = stopCommand(p, 0)
		}
		if report.ready(msg + "Stop it with: " + stop + "\n") {
			return
		}
		fmt.Fprint(out, msg)
		if controller {
			fmt.Fprintln(out, "Press Ctrl-C to stop the controller and its jobs.")
		} else {
			fmt.Fprintf(out, "Press Ctrl-C, or run %s, to stop the job.\n", stop)
		}
	}
	if running {
		err = supervisor.Join(cmd.Context(), supervisor.JoinOptions{
			Profile: p, Config: cfg, Engines: jr.n, Kind: jr.kind, Launch: launch, Logger: log,
			StartTimeout: jr.timeout, Progress: showProgress,
			Ready: func(r supervisor.Ready) { ready(r, false) },
		})
	} else {
		err = supervisor.Run(cmd.Context(), supervisor.Options{
			Profile: p, Config: cfg, Engines: jr.n, Kind: jr.kind, Launch: launch, Logger: log,
			StartTimeout: jr.timeout, Progress: showProgress, Daemon: report != nil,
			InBatchJob: os.Getenv(inJobEnv) != "",
			Ready:      func(r supervisor.Ready) { ready(r, true) },
		})
	}
	if bar != nil {
		bar.end()
	}
	if err != nil {
		report.failed(err)
		var re *profile.RunningError
		if errors.As(err, &re) {
			return fmt.Errorf("%w; run ipcluster %s again to join it", err, jr.kind)
		}
		return err
	}
	if report == nil {
		if running {
			fmt.Fprintf(out, "ipcluster: job %d ended\n", job)
		} else {
			fmt.Fprintln(out, "ipcluster: stopped")
		}
	}
	return nil
}

// splitArgs splits s into words as a POSIX shell would, without
// expansions: blanks separate words, quotes group them, a backslash
// escapes the next character outside single quotes.
func splitArgs(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	escaped := false
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\\':
			escaped, inWord = true, true
		case quote == '"':
			if r == '"' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	switch {
	case escaped:
		return nil, fmt.Errorf("%q ends with a backslash", s)
	case quote != 0:
		return nil, fmt.Errorf("%q has an unclosed %c quote", s, quote)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
