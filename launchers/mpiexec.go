package launchers

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MPIExec runs engines as the ranks of one MPI job: one mpiexec process
// that starts N ranks. Each rank finds the controller through the
// environment, which MPIExec exports to every rank (with -x for Open MPI;
// MPICH's Hydra exports the whole environment by itself).
//
// The job's output, standard output and error of every rank and of mpiexec
// itself, goes to Log with each line tagged by its rank (mpiexec's own
// --tag-output or -prepend-rank), and the last lines of each rank are kept
// for error reports (Output).
type MPIExec struct {
	N       int      // how many ranks
	Command []string // each rank's program and arguments; default: this executable with "engine"
	MPIExec string   // the mpiexec to run; default: mpiexec from $PATH
	Args    []string // more mpiexec arguments, before the program
	Env     []string // added to this process's environment and exported to the ranks
	Log     string   // file receiving the job's output; default: discarded
	// Echo, if set, also receives the job's output as it comes.
	Echo io.Writer
	// OnExit, if set, is called (from another goroutine) when mpiexec exits.
	OnExit func(Process)

	mu     sync.Mutex
	cmd    *exec.Cmd
	impl   Implementation
	exited bool
	err    error
	tails  map[int]*tail // last lines by rank; -1 for mpiexec's own
	done   chan struct{}
}

var _ Launcher = (*MPIExec)(nil)

// Implementation is an MPI library's family, which decides mpiexec's flags.
type Implementation string

// The implementations MPIExec knows the flags of.
const (
	OpenMPI Implementation = "Open MPI"
	MPICH   Implementation = "MPICH" // and derivatives using its Hydra launcher (Intel MPI, MVAPICH)
	Unknown Implementation = "unknown"
)

// DetectMPI runs `mpiexec --version` to tell the implementation.
func DetectMPI(ctx context.Context, mpiexec string) (Implementation, error) {
	path, err := exec.LookPath(mpiexec)
	if err != nil {
		return Unknown, fmt.Errorf("launchers: %s not found: install MPI (Debian: apt-get install openmpi-bin, or mpich) or name it with --mpiexec: %w", mpiexec, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").CombinedOutput()
	if err != nil {
		return Unknown, fmt.Errorf("launchers: %s --version: %w\n%s", path, err, out)
	}
	return implementationOf(string(out)), nil
}

func implementationOf(version string) Implementation {
	switch {
	case strings.Contains(version, "Open MPI"), strings.Contains(version, "OpenRTE"), strings.Contains(version, "Open RTE"):
		return OpenMPI
	case strings.Contains(version, "HYDRA"), strings.Contains(version, "Intel(R) MPI"), strings.Contains(version, "MPICH"):
		return MPICH
	}
	return Unknown
}

// InBatchJob reports whether this process runs inside a batch allocation
// (SLURM, PBS, LSF), where the allocation decides how many ranks fit.
func InBatchJob() bool {
	_, id := BatchJobID()
	return id != ""
}

// BatchJobID returns the batch system ("slurm", "pbs", "lsf") and the id
// of the batch job this process runs in, or two empty strings. SLURM is
// asked first: its PBS wrappers run jobs with SLURM's variables.
func BatchJobID() (system, id string) {
	for _, v := range []struct{ system, env string }{{"slurm", "SLURM_JOB_ID"}, {"pbs", "PBS_JOBID"}, {"lsf", "LSB_JOBID"}} {
		if id := os.Getenv(v.env); id != "" {
			return v.system, id
		}
	}
	return "", ""
}

// commandLine returns mpiexec's arguments for impl.
func (m *MPIExec) commandLine(impl Implementation, program []string, root, batch bool) []string {
	args := []string{"-n", strconv.Itoa(m.N)}
	switch impl {
	case OpenMPI:
		args = append(args, "--tag-output")
		// Outside an allocation mpiexec counts this machine's cores as its
		// slots and refuses more ranks; engines mostly wait for work, so
		// more ranks than cores is what a user asking for them means.
		if !batch && !slices.Contains(m.Args, "--oversubscribe") && !slices.Contains(m.Args, "--nooversubscribe") {
			args = append(args, "--oversubscribe")
		}
		if root && !slices.Contains(m.Args, "--allow-run-as-root") {
			args = append(args, "--allow-run-as-root")
		}
		for _, kv := range m.Env {
			name, _, _ := strings.Cut(kv, "=")
			args = append(args, "-x", name)
		}
	case MPICH:
		args = append(args, "-prepend-rank")
	}
	args = append(args, m.Args...)
	return append(args, program...)
}

// Start implements Launcher: it starts mpiexec, which starts the ranks.
func (m *MPIExec) Start(ctx context.Context) error {
	if m.N < 1 {
		return fmt.Errorf("launchers: %d ranks: need at least one", m.N)
	}
	mpiexec := m.MPIExec
	if mpiexec == "" {
		mpiexec = "mpiexec"
	}
	impl, err := DetectMPI(ctx, mpiexec)
	if err != nil {
		return err
	}
	program := m.Command
	if len(program) == 0 {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("launchers: finding this executable: %w", err)
		}
		program = []string{self, "engine"}
	}
	var sinks []io.Writer
	var logFile *os.File
	if m.Log != "" {
		logFile, err = os.OpenFile(m.Log, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("launchers: job log: %w", err)
		}
		sinks = append(sinks, logFile)
	}
	if m.Echo != nil {
		sinks = append(sinks, m.Echo)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := exec.Command(mpiexec, m.commandLine(impl, program, os.Geteuid() == 0, InBatchJob())...)
	cmd.Env = append(os.Environ(), m.Env...)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = sysProcAttr()
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		if logFile != nil {
			logFile.Close()
		}
		return fmt.Errorf("launchers: starting %s: %w", mpiexec, err)
	}
	w.Close() // mpiexec holds its own copy
	m.cmd, m.impl, m.tails, m.done = cmd, impl, make(map[int]*tail), make(chan struct{})
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		m.copyOutput(r, io.MultiWriter(sinks...))
		r.Close()
		if logFile != nil {
			logFile.Close()
		}
	}()
	go func() {
		err := cmd.Wait()
		<-copied // every line is in the log before anyone hears of the exit
		m.mu.Lock()
		m.exited, m.err = true, err
		m.mu.Unlock()
		if m.OnExit != nil {
			m.OnExit(Process{PID: cmd.Process.Pid, Log: m.Log, Exited: true, Err: err})
		}
		close(m.done)
	}()
	return nil
}

// copyOutput copies the job's output to out and keeps each rank's last lines.
func (m *MPIExec) copyOutput(r io.Reader, out io.Writer) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		out.Write(append(line, '\n'))
		rank, text := untag(m.impl, string(line))
		m.mu.Lock()
		t := m.tails[rank]
		if t == nil {
			t = &tail{max: 20}
			m.tails[rank] = t
		}
		t.add(text)
		m.mu.Unlock()
	}
	io.Copy(io.Discard, r) // a line longer than the buffer: drain, so mpiexec never blocks
}

// untag splits a line of tagged output into its rank and text; lines
// without a tag (mpiexec's own) have rank -1.
func untag(impl Implementation, line string) (int, string) {
	switch impl {
	case OpenMPI: // "[1,3]<stderr>:text"
		if rest, ok := strings.CutPrefix(line, "["); ok {
			if tag, text, ok := strings.Cut(rest, "]<"); ok {
				if _, rank, ok := strings.Cut(tag, ","); ok {
					if n, err := strconv.Atoi(rank); err == nil {
						if stream, text, ok := strings.Cut(text, ">:"); ok && (stream == "stdout" || stream == "stderr") {
							return n, text
						}
					}
				}
			}
		}
	case MPICH: // "[3] text"
		if rest, ok := strings.CutPrefix(line, "["); ok {
			if rank, text, ok := strings.Cut(rest, "] "); ok {
				if n, err := strconv.Atoi(rank); err == nil {
					return n, text
				}
			}
		}
	}
	return -1, line
}

// tail keeps the last max lines.
type tail struct {
	max   int
	lines []string
}

func (t *tail) add(line string) {
	if len(t.lines) == t.max {
		t.lines = slices.Delete(t.lines, 0, 1)
	}
	t.lines = append(t.lines, line)
}

// Output implements Launcher: the last lines rank i printed; with i = -1,
// mpiexec's own messages.
func (m *MPIExec) Output(i int) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t := m.tails[i]; t != nil {
		return strings.Join(t.lines, "\n")
	}
	return ""
}

// Ranks returns the ranks that have printed anything, sorted; -1 stands
// for mpiexec itself.
func (m *MPIExec) Ranks() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	ranks := make([]int, 0, len(m.tails))
	for r := range m.tails {
		ranks = append(ranks, r)
	}
	slices.Sort(ranks)
	return ranks
}

// Implementation returns the MPI family Start detected.
func (m *MPIExec) Implementation() Implementation {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.impl
}

// Signal implements Launcher: mpiexec forwards SIGTERM, SIGINT, SIGUSR1
// and SIGUSR2 to the ranks.
func (m *MPIExec) Signal(sig os.Signal) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil || m.exited {
		return nil
	}
	if err := m.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// Stop implements Launcher: SIGTERM to mpiexec, which ends the ranks;
// after grace, SIGKILL to mpiexec's process group.
func (m *MPIExec) Stop(grace time.Duration) error {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	if cmd == nil {
		return nil
	}
	m.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return nil
	case <-time.After(grace):
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
	return nil
}

// Done implements Launcher.
func (m *MPIExec) Done() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.done
}

// FirstExit implements Launcher: with one process, the same as Done.
func (m *MPIExec) FirstExit() <-chan struct{} { return m.Done() }

// Processes implements Launcher: the one mpiexec process.
func (m *MPIExec) Processes() []Process {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return nil
	}
	return []Process{{PID: m.cmd.Process.Pid, Log: m.Log, Exited: m.exited, Err: m.err}}
}

// FailureReport describes why a job ended before its ranks registered:
// how mpiexec ended, and the last lines of mpiexec and of each rank that
// is not in registered.
func (m *MPIExec) FailureReport(registered []int) string {
	var b bytes.Buffer
	procs := m.Processes()
	if len(procs) == 1 && procs[0].Exited {
		fmt.Fprintf(&b, "mpiexec (pid %d) exited: %v", procs[0].PID, exitReason(procs[0].Err))
	}
	for _, r := range m.Ranks() {
		if r >= 0 && slices.Contains(registered, r) {
			continue
		}
		who := fmt.Sprintf("rank %d", r)
		if r < 0 {
			who = "mpiexec"
		}
		fmt.Fprintf(&b, "\n%s said:\n    %s", who, strings.ReplaceAll(m.Output(r), "\n", "\n    "))
	}
	return b.String()
}

func exitReason(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
