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

	"github.com/ipcluster/ipcluster/engine"
	"github.com/ipcluster/ipcluster/launchers"
	"github.com/ipcluster/ipcluster/mpi"
	"github.com/ipcluster/ipcluster/pbs"
	"github.com/ipcluster/ipcluster/slurm"
)

type batchFlags struct {
	n, nodes, perNode                   int
	partition, queue                    string
	account, qos, walltime              string
	jobName, template, workDir, mpiexec string
	extra                               []string
	dryRun, daemon, inJob               bool
	timeout                             time.Duration
}

func newPBS(g *globals) *cobra.Command {
	var f batchFlags
	cmd := &cobra.Command{
		Use:   "pbs",
		Short: "Start engines as a PBS batch job",
		Long: `Pbs renders a job script from a template, submits it with qsub, and
waits until the job's engines have registered, as ipcluster slurm does
(see its help for the controller's address, --daemon, Ctrl-C and errors).

The default template (ipcluster template pbs prints it) asks for
nodes and processors per node (Torque style; the template says what to
change for PBS Pro's select) and starts the engines with mpiexec. Variables:
N, Nodes, TasksPerNode, Queue, Account, Walltime, JobName, WorkDir, Output,
Env, EngineCommand, MPIExec, Extra, ControllerCommand; the function shquote.`,
		Example: `  ipcluster pbs -n 64 --queue short --walltime 00:30:00 --ip 10.1.0.5
  ipcluster pbs -n 16 --template job.pbs
  ipcluster template pbs > job.pbs`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.mpiexec == "" {
				f.mpiexec = "mpiexec" // PBS has no srun
			}
			return runBatch(cmd, g, f, pbs.Commands{}, pbs.DefaultTemplate)
		},
	}
	fl := cmd.Flags()
	fl.IntVarP(&f.n, "n", "n", 0, "number of engines (default: [engines] n, else one per CPU core here)")
	fl.IntVar(&f.nodes, "nodes", 0, "nodes to ask for (default 1)")
	fl.IntVar(&f.perNode, "ppn", 0, "engines (processors) per node (default: all on one node)")
	fl.StringVar(&f.queue, "queue", "", "PBS queue")
	fl.StringVar(&f.account, "account", "", "account to charge")
	fl.StringVar(&f.walltime, "walltime", "", "time limit, HH:MM:SS")
	addCommonBatchFlags(cmd, &f, "#PBS", "pbs")
	return cmd
}

// addCommonBatchFlags adds the flags slurm and pbs share.
func addCommonBatchFlags(cmd *cobra.Command, f *batchFlags, directive, kind string) {
	fl := cmd.Flags()
	fl.StringVar(&f.jobName, "job-name", "ipcluster", "the job's name in the queue")
	fl.StringVar(&f.template, "template", "", "your own job script template (default: ipcluster template "+kind+")")
	fl.StringVar(&f.workDir, "workdir", "", "where the job runs (default: this directory)")
	fl.StringArrayVar(&f.extra, "directive", nil, "another "+directive+" directive line, such as --directive=\"-m abe\" (repeatable)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the job script and submit nothing")
	fl.BoolVar(&f.daemon, "daemon", false, "run in the background: return once the engines have registered")
	fl.BoolVar(&f.inJob, "controller-in-job", false, "run the controller inside the job too (found through the profile's connection files, which must be on a shared file system); return once the engines have registered")
	fl.DurationVar(&f.timeout, "timeout", 24*time.Hour, "how long to wait for the engines (a job may wait in the queue)")
}

func newSLURM(g *globals) *cobra.Command {
	var f batchFlags
	cmd := &cobra.Command{
		Use:   "slurm",
		Short: "Start engines as a SLURM batch job",
		Long: `Slurm renders a job script from a template, submits it with sbatch, and
waits until the job's engines have registered with the controller: one
started in this process (on the login node) if none runs for the profile,
else the running one, which the job joins as its next job.

The controller must listen where the compute nodes can reach it: give
--ip with an address of this host on their network (the default,
127.0.0.1, suits only a single-node setup). The engines get the
controller's address and keys through variables the script exports.

The default template (ipcluster template slurm prints it) starts the
engines with srun, or with mpiexec inside the allocation when ipcluster is
built with MPI; --template uses your own. Variables: N, Nodes,
TasksPerNode, Partition, Account, QOS, Walltime, JobName, WorkDir, Output,
Env, EngineCommand, MPIExec, Extra, ControllerCommand; the function shquote
quotes for the shell.

Ctrl-C (or ipcluster stop) cancels the job. A job that ends before its
engines register is reported with SLURM's state and the end of its output.

With --controller-in-job the job runs the controller too (ipcluster
mpiexec --ip auto on its first node, the engines with srun or --mpiexec):
this command waits until it has come up, through the profile's connection
files (on a file system the nodes share), and its engines have registered,
then returns; ipcluster stop, from any node, ends the job.`,
		Example: `  ipcluster slurm -n 64 --partition debug --walltime 00:30:00 --account proj1 --ip 10.1.0.5
  ipcluster slurm -n 64 --template job.sbatch
  ipcluster slurm -n 4 --dry-run
  ipcluster slurm -n 64 --controller-in-job --walltime 01:00:00
  ipcluster template slurm > job.sbatch`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBatch(cmd, g, f, slurm.Commands{}, slurm.DefaultTemplate)
		},
	}
	fl := cmd.Flags()
	fl.IntVarP(&f.n, "n", "n", 0, "number of engines (tasks) (default: [engines] n, else one per CPU core here)")
	fl.IntVar(&f.nodes, "nodes", 0, "nodes to ask for (default: the scheduler chooses)")
	fl.IntVar(&f.perNode, "tasks-per-node", 0, "engines per node")
	fl.StringVar(&f.partition, "partition", "", "SLURM partition")
	fl.StringVar(&f.account, "account", "", "account to charge")
	fl.StringVar(&f.qos, "qos", "", "quality of service")
	fl.StringVar(&f.walltime, "walltime", "", "time limit, HH:MM:SS")
	fl.StringVar(&f.mpiexec, "mpiexec", "", `start the engines with this mpiexec instead of srun (default: "mpiexec" when ipcluster is built with MPI)`)
	addCommonBatchFlags(cmd, &f, "#SBATCH", "slurm")
	return cmd
}

func newTemplate() *cobra.Command {
	return &cobra.Command{
		Use:       "template slurm|pbs",
		Short:     "Print the default batch job template, to start your own from",
		Example:   "  ipcluster template slurm > job.sbatch\n  ipcluster slurm -n 64 --template job.sbatch",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"slurm", "pbs"},
		RunE: func(cmd *cobra.Command, args []string) error {
			switch args[0] {
			case "slurm":
				fmt.Fprint(cmd.OutOrStdout(), slurm.DefaultTemplate)
				return nil
			case "pbs":
				fmt.Fprint(cmd.OutOrStdout(), pbs.DefaultTemplate)
				return nil
			}
			return fmt.Errorf("no template %q (templates: slurm, pbs)", args[0])
		},
	}
}

// runBatch starts engines as one batch job of sched.
func runBatch(cmd *cobra.Command, g *globals, f batchFlags, sched launchers.Scheduler, defaultTemplate string) error {
	p, cfg, err := g.load()
	if err != nil {
		return err
	}
	n := f.n
	if n == 0 {
		n = cfg.Engines.N
	}
	if n == 0 {
		n = runtime.NumCPU()
	}
	if n < 0 || f.nodes < 0 || f.perNode < 0 {
		return errors.New("-n, --nodes and --tasks-per-node cannot be negative")
	}
	// A controller started here must be reachable from the compute nodes.
	if g.ip == "" && os.Getenv("IPCLUSTER_IP") == "" && cfg.Controller.IP == "127.0.0.1" && !f.dryRun && !f.inJob {
		if _, running, _ := p.Running(); !running {
			addr, why := batchAddress()
			cfg.Controller.IP = addr
			fmt.Fprintf(cmd.ErrOrStderr(), "ipcluster: the controller listens on %s (%s); --ip chooses another\n", addr, why)
		}
	}
	name, text := "default "+sched.Name()+" template", defaultTemplate
	if f.template != "" {
		data, err := os.ReadFile(f.template)
		if err != nil {
			return err
		}
		name, text = filepath.Base(f.template), string(data)
	}
	workDir := f.workDir
	if workDir == "" {
		if workDir, err = os.Getwd(); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	mpiexec := f.mpiexec
	if mpiexec == "" && mpi.Enabled {
		mpiexec = "mpiexec"
	}
	job := launchers.BatchJob{N: n, Nodes: f.nodes, TasksPerNode: f.perNode, Partition: f.partition, Queue: f.queue, Account: f.account,
		QOS: f.qos, Walltime: f.walltime, JobName: f.jobName, WorkDir: workDir, MPIExec: mpiexec, Extra: f.extra,
		EngineCommand: launchers.ShellQuote(self) + " engine"}
	if f.inJob {
		job.ControllerCommand = inJobCommand(self, n, g.ip, mpiexec, f.timeout)
	}
	render := func(env []string, output string) (string, error) {
		j := job
		j.Output, j.Env = output, map[string]string{}
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			j.Env[k] = v
		}
		if os.Geteuid() == 0 && mpiexec != "" { // Open MPI refuses root without these
			j.Env["OMPI_ALLOW_RUN_AS_ROOT"], j.Env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1", "1"
		}
		return launchers.RenderScript(name, text, j)
	}
	outputOf := func(pid int) string {
		if sched.Name() != "slurm" { // only SLURM expands %j
			return filepath.Join(p.LogDir(), fmt.Sprintf("%s-%d.out", sched.Name(), pid))
		}
		return filepath.Join(p.LogDir(), fmt.Sprintf("%s-%d-%%j.out", sched.Name(), pid))
	}
	// Render once now, so that a template error shows before anything starts.
	placeholder := []string{engine.ConnectionEnv + "=<the controller's address and engine keys, as JSON>",
		engine.JobEnv + "=<the job's key>", "IPCLUSTER_LOG_LEVEL=" + cfg.Log.Level, "IPCLUSTER_PROFILE=" + p.Name}
	if f.inJob {
		if placeholder, err = inJobEnvironment(p, cfg, sched.Name()); err != nil {
			return err
		}
	}
	script, err := render(placeholder, outputOf(os.Getpid()))
	if err != nil {
		return err
	}
	if f.inJob && !strings.Contains(script, job.ControllerCommand) {
		return fmt.Errorf("%s does not run {{.ControllerCommand}}, which --controller-in-job needs (ipcluster template %s shows where it goes)", name, sched.Name())
	}
	if f.dryRun {
		fmt.Fprint(cmd.OutOrStdout(), script)
		return nil
	}
	if f.inJob {
		if err := os.MkdirAll(p.LogDir(), 0o700); err != nil {
			return err
		}
		output := outputOf(os.Getpid())
		b := &launchers.Batch{Scheduler: sched, Script: script, Dir: workDir, OutputFile: output}
		return runControllerInJob(cmd, p, sched, b, n, f.timeout)
	}
	return runJob(cmd, g, p, cfg, jobRun{
		kind: sched.Name(), n: n, daemon: f.daemon, timeout: f.timeout, unit: "engines",
		launch: func(env []string, output string) launchers.Launcher {
			script, _ := render(env, output) // it rendered above
			return &launchers.Batch{Scheduler: sched, Script: script, Dir: workDir, OutputFile: output}
		},
		outputOf: outputOf,
	})
}
