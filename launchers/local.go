package launchers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Local runs engine processes on this machine.
type Local struct {
	N       int      // how many processes
	Command []string // the program and its arguments; default: this executable with "engine"
	Env     []string // added to this process's environment
	// LogDir, if set, receives each process's output in engine-<i>.log;
	// otherwise the processes inherit this one's stdout and stderr.
	LogDir string
	// OnExit, if set, is called (from another goroutine) as each process exits.
	OnExit func(Process)

	mu        sync.Mutex
	procs     []*localProc
	done      chan struct{}
	firstExit chan struct{}
	exitOnce  sync.Once
}

type localProc struct {
	cmd    *exec.Cmd
	log    string
	exited bool
	err    error
}

var _ Launcher = (*Local)(nil)

// Start implements Launcher. Each process gets its own process group (so a
// Ctrl-C at the terminal reaches only the supervisor, which stops the
// engines in order) and, on Linux, is sent SIGTERM if the supervisor dies.
func (l *Local) Start(ctx context.Context) error {
	if l.N < 1 {
		return fmt.Errorf("launchers: %d engines: need at least one", l.N)
	}
	cmdline := l.Command
	if len(cmdline) == 0 {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("launchers: finding this executable: %w", err)
		}
		cmdline = []string{self, "engine"}
	}
	if l.LogDir != "" {
		if err := os.MkdirAll(l.LogDir, 0o700); err != nil {
			return err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done, l.firstExit = make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	for i := range l.N {
		if err := ctx.Err(); err != nil {
			l.killStarted()
			return err
		}
		cmd := exec.Command(cmdline[0], cmdline[1:]...)
		cmd.Env = append(os.Environ(), l.Env...)
		cmd.SysProcAttr = sysProcAttr()
		p := &localProc{cmd: cmd}
		if l.LogDir != "" {
			p.log = filepath.Join(l.LogDir, fmt.Sprintf("engine-%d.log", i))
			f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				l.killStarted()
				return err
			}
			cmd.Stdout, cmd.Stderr = f, f
			defer f.Close() // the child has its own copy once started
		} else {
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		}
		if err := cmd.Start(); err != nil {
			l.killStarted()
			return fmt.Errorf("launchers: starting %s: %w", cmdline[0], err)
		}
		l.procs = append(l.procs, p)
		wg.Go(func() {
			err := cmd.Wait()
			l.mu.Lock()
			p.exited, p.err = true, err
			l.mu.Unlock()
			l.exitOnce.Do(func() { close(l.firstExit) })
			if l.OnExit != nil {
				l.OnExit(Process{PID: cmd.Process.Pid, Log: p.log, Exited: true, Err: err})
			}
		})
	}
	done := l.done
	go func() { wg.Wait(); close(done) }()
	return nil
}

// killStarted kills what a failed Start started. Called with l.mu held.
func (l *Local) killStarted() {
	for _, p := range l.procs {
		p.cmd.Process.Kill()
	}
}

// Signal implements Launcher.
func (l *Local) Signal(sig os.Signal) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, p := range l.procs {
		if !p.exited {
			if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Stop implements Launcher.
func (l *Local) Stop(grace time.Duration) error {
	if l.done == nil {
		return nil
	}
	l.Signal(syscall.SIGTERM)
	select {
	case <-l.done:
		return nil
	case <-time.After(grace):
	}
	l.Signal(syscall.SIGKILL)
	<-l.done
	return nil
}

// Done implements Launcher.
func (l *Local) Done() <-chan struct{} { return l.done }

// FirstExit implements Launcher.
func (l *Local) FirstExit() <-chan struct{} { return l.firstExit }

// Processes implements Launcher.
func (l *Local) Processes() []Process {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Process, len(l.procs))
	for i, p := range l.procs {
		out[i] = Process{PID: p.cmd.Process.Pid, Log: p.log, Exited: p.exited, Err: p.err}
	}
	return out
}

// Output implements Launcher: the last lines of process i's log file.
func (l *Local) Output(i int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i < 0 || i >= len(l.procs) || l.procs[i].log == "" {
		return ""
	}
	data, err := os.ReadFile(l.procs[i].log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}
