package launchers

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"
)

// BatchJob holds the variables of a batch script template. Templates are
// Go text/template; see the default ones in `ipcluster template slurm` and
// `ipcluster template pbs`.
type BatchJob struct {
	N             int               // engines, one per task (MPI rank)
	Nodes         int               // nodes to ask for; 0 lets the scheduler choose
	TasksPerNode  int               // 0 lets the scheduler choose
	Partition     string            // SLURM partition
	Queue         string            // PBS queue
	Account       string            // account (project) to charge
	QOS           string            // quality of service
	Walltime      string            // HH:MM:SS
	JobName       string            // the job's name in the queue
	WorkDir       string            // where the job runs
	Output        string            // the job's output file
	Env           map[string]string // exported by the script: the controller's address and keys among them
	EngineCommand string            // what each task runs, quoted for the shell
	MPIExec       string            // if set, how the script starts the ranks (mpiexec); else the scheduler's own (srun)
	Extra         []string          // more directive lines, as given
	// ControllerCommand, if set, is what the script runs instead of
	// starting the engines itself: a controller inside the job, which
	// starts them (ipcluster slurm --controller-in-job).
	ControllerCommand string
}

// RenderScript renders a batch script template for job. An error names the
// template's line and the variable or construct at fault.
func RenderScript(name, text string, job BatchJob) (string, error) {
	t, err := template.New(name).Option("missingkey=error").Funcs(template.FuncMap{"shquote": ShellQuote}).Parse(text)
	if err != nil {
		return "", fmt.Errorf("batch template: %w", err)
	}
	var b strings.Builder
	if err := t.Execute(&b, job); err != nil {
		return "", fmt.Errorf("batch template: %w (variables: N, Nodes, TasksPerNode, Partition, Queue, Account, QOS, "+
			"Walltime, JobName, WorkDir, Output, Env, EngineCommand, MPIExec, Extra, ControllerCommand; function: shquote)", err)
	}
	return b.String(), nil
}

// ShellQuote quotes s for a POSIX shell.
func ShellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@%+,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Scheduler is a batch system's commands.
type Scheduler interface {
	// Name is the batch system's name: "slurm", "pbs".
	Name() string
	// Submit submits a job script from dir and returns the job's id.
	Submit(ctx context.Context, script, dir string) (string, error)
	// Poll returns the job's state in the batch system's words, whether it
	// has finished, and why if it says so.
	Poll(ctx context.Context, id string) (state string, finished bool, reason string, err error)
	// Cancel cancels the job; one that has ended is not an error.
	Cancel(ctx context.Context, id string) error
}

// Batch runs engines as one batch job: Start submits the script, the job
// is watched until it ends, Stop cancels it.
type Batch struct {
	Scheduler  Scheduler
	Script     string        // the rendered job script
	Dir        string        // where to submit from
	OutputFile string        // the job's output file, for error reports
	Poll       time.Duration // how often to ask the scheduler; default 2s

	mu       sync.Mutex
	id       string
	state    string
	reason   string
	finished bool
	done     chan struct{}
	cancel   context.CancelFunc
}

var _ Launcher = (*Batch)(nil)

// Start implements Launcher: it submits the job.
func (b *Batch) Start(ctx context.Context) error {
	if b.Poll == 0 {
		b.Poll = 2 * time.Second
	}
	id, err := b.Scheduler.Submit(ctx, b.Script, b.Dir)
	if err != nil {
		return fmt.Errorf("submitting the job to %s: %w", b.Scheduler.Name(), err)
	}
	watchCtx, cancel := context.WithCancel(context.Background())
	b.mu.Lock()
	b.id, b.state, b.done, b.cancel = id, "SUBMITTED", make(chan struct{}), cancel
	b.OutputFile = strings.ReplaceAll(b.OutputFile, "%j", id)
	b.mu.Unlock()
	go b.watch(watchCtx)
	return nil
}

// watch asks the scheduler about the job until it ends.
func (b *Batch) watch(ctx context.Context) {
	defer close(b.done)
	t := time.NewTicker(b.Poll)
	defer t.Stop()
	failures := 0
	for {
		state, finished, reason, err := b.Scheduler.Poll(ctx, b.ID())
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			// A scheduler that does not answer for a minute: the job is
			// taken as lost (the engines, if any, still say for themselves).
			if failures++; time.Duration(failures)*b.Poll > time.Minute {
				b.set("UNKNOWN", true, err.Error())
				return
			}
		default:
			failures = 0
			b.set(state, finished, reason)
			if finished {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (b *Batch) set(state string, finished bool, reason string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state, b.finished, b.reason = state, finished, reason
}

// ID returns the batch system's job id, once submitted.
func (b *Batch) ID() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.id
}

// State returns the job's last known state, and why.
func (b *Batch) State() (state, reason string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state, b.reason
}

// Signal implements Launcher: SIGTERM and SIGKILL cancel the job; other
// signals are not passed to batch jobs.
func (b *Batch) Signal(sig os.Signal) error {
	if sig == syscall.SIGTERM || sig == syscall.SIGKILL {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return b.Scheduler.Cancel(ctx, b.ID())
	}
	return fmt.Errorf("%s jobs take no signal %v from ipcluster (only cancel)", b.Scheduler.Name(), sig)
}

// Stop implements Launcher: it cancels the job and waits up to grace for
// the scheduler to say it ended.
func (b *Batch) Stop(grace time.Duration) error {
	b.mu.Lock()
	id, done, cancel := b.id, b.done, b.cancel
	b.mu.Unlock()
	if id == "" {
		return nil
	}
	err := b.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(max(grace, b.Poll)):
		cancel()
		<-done
	}
	return err
}

// Done implements Launcher: closed once the scheduler says the job ended.
func (b *Batch) Done() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.done
}

// FirstExit implements Launcher: the job is one unit.
func (b *Batch) FirstExit() <-chan struct{} { return b.Done() }

// Processes implements Launcher: the job, with no local process.
func (b *Batch) Processes() []Process {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.id == "" {
		return nil
	}
	p := Process{Batch: b.id, Log: b.OutputFile, Exited: b.finished}
	if b.finished && b.state != "COMPLETED" {
		p.Err = fmt.Errorf("%s job %s ended %s%s", b.Scheduler.Name(), b.id, b.state, reasonSuffix(b.reason))
	}
	return []Process{p}
}

func reasonSuffix(r string) string {
	if r == "" || r == "None" {
		return ""
	}
	return " (" + r + ")"
}

// Output implements Launcher: the last lines of the job's output file.
func (b *Batch) Output(int) string {
	b.mu.Lock()
	path := b.OutputFile
	b.mu.Unlock()
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

// FailureReport describes a job that ended before its engines registered.
func (b *Batch) FailureReport() string {
	state, reason := b.State()
	msg := fmt.Sprintf("%s job %s ended %s%s", b.Scheduler.Name(), b.ID(), state, reasonSuffix(reason))
	if out := b.Output(0); out != "" {
		msg += fmt.Sprintf("; last lines of %s:\n    %s", b.OutputFile, strings.ReplaceAll(out, "\n", "\n    "))
	} else if b.OutputFile != "" {
		msg += fmt.Sprintf("; its output file %s is empty or missing", b.OutputFile)
	}
	return msg
}
