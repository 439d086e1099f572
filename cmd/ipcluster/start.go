package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ipcluster/ipcluster/internal/profile"
	"github.com/ipcluster/ipcluster/internal/supervisor"
)

// daemonEnv tells a re-executed `ipcluster start --daemon` that it is the
// background child, and on which descriptor to report readiness.
const daemonEnv = "IPCLUSTER_DAEMON_READY_FD"

func newStart(g *globals) *cobra.Command {
	var n int
	var daemon bool
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Start a controller and engines on this machine",
		Long: `Start runs a controller in this process and engines as child processes,
waits until every engine has registered, and serves until Ctrl-C (or
ipcluster stop from another shell) stops everything in order.

Clients connect with the profile's client connection file, printed at start.
Only one cluster runs per profile; use --profile for more.`,
		Example: `  ipcluster start -n 4
  ipcluster start -n 8 --daemon
  ipcluster start --profile big -n 16 --ip 0.0.0.0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStart(cmd, g, n, daemon)
		},
	}
	cmd.Flags().IntVarP(&n, "n", "n", 0, "number of engines (default: [engines] n in ipcluster.toml, else one per CPU core)")
	cmd.Flags().BoolVar(&daemon, "daemon", false, "run in the background: return once the cluster is ready")
	return cmd
}

func runStart(cmd *cobra.Command, g *globals, n int, daemon bool) error {
	p, cfg, err := g.load()
	if err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("-n %d: the number of engines cannot be negative", n)
	}
	if n == 0 {
		n = cfg.Engines.N
	}
	if n == 0 {
		n = runtime.NumCPU()
	}
	if pid, running, err := p.Running(); err == nil && running {
		return &profile.RunningError{Profile: p.Name, PID: pid}
	}
	out := cmd.OutOrStdout()
	if daemon && os.Getenv(daemonEnv) == "" {
		return spawnDaemon(cmd.Context(), p, "ipcluster.log", out)
	}

	log, closeLog, err := g.newLogger(p, cfg, "ipcluster.log", cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer closeLog()
	report, err := daemonReport()
	if err != nil {
		return err
	}
	err = supervisor.Run(cmd.Context(), supervisor.Options{
		Profile: p, Config: cfg, Engines: n, Logger: log, Daemon: report != nil,
		Ready: func(r supervisor.Ready) {
			msg := fmt.Sprintf("ipcluster: %d engines ready in %.2f s (profile %q)\n", r.Engines, r.Elapsed.Seconds(), p.Name) +
				fmt.Sprintf("  connection file: %s\n  controller:      %s\n  logs:            %s\n", r.ClientFile, r.Endpoint, p.LogDir())
			if report.ready(msg + "Stop it with: " + stopCommand(p, 0) + "\n") {
				return
			}
			fmt.Fprint(out, msg)
			fmt.Fprintln(out, "Press Ctrl-C to stop.")
		},
	})
	if err != nil {
		report.failed(err)
		return err
	}
	if report == nil {
		fmt.Fprintln(out, "ipcluster: stopped")
	}
	return nil
}

// daemonPipe is how a background child (started by spawnDaemon) tells
// its parent that it is ready, or why it failed.
type daemonPipe struct{ f *os.File }

// daemonReport returns the pipe to the parent if this process is a
// background child, else nil.
func daemonReport() (*daemonPipe, error) {
	fd := os.Getenv(daemonEnv)
	if fd == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(fd)
	if err != nil {
		return nil, fmt.Errorf("$%s=%q is not a descriptor", daemonEnv, fd)
	}
	return &daemonPipe{os.NewFile(uintptr(n), "daemon-ready")}, nil
}

// ready sends msg, what the parent prints, and reports whether there was
// a parent to send it to.
func (d *daemonPipe) ready(msg string) bool {
	if d == nil || d.f == nil {
		return false
	}
	fmt.Fprintf(d.f, "ready\t%s\n", strings.ReplaceAll(msg, "\n", "\\n"))
	d.f.Close()
	d.f = nil
	return true
}

// failed sends err, if nothing was sent yet.
func (d *daemonPipe) failed(err error) {
	if d == nil || d.f == nil {
		return
	}
	fmt.Fprintf(d.f, "error\t%s\n", strings.ReplaceAll(err.Error(), "\n", "\\n"))
	d.f.Close()
	d.f = nil
}

// spawnDaemon starts this command again in the background, detached from
// the terminal, and returns once it reports the cluster ready (or failed).
func spawnDaemon(ctx context.Context, p *profile.Profile, logName string, out io.Writer) error {
	if err := p.Ensure(); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logPath := filepath.Join(p.LogDir(), logName)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	child := exec.Command(self, os.Args[1:]...)
	child.Env = append(os.Environ(), daemonEnv+"=3")
	child.ExtraFiles = []*os.File{w}
	child.Stdout, child.Stderr = logf, logf
	child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := child.Start(); err != nil {
		w.Close()
		return fmt.Errorf("starting the background cluster: %w", err)
	}
	w.Close()
	pid := child.Process.Pid
	child.Process.Release()

	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		lines <- strings.TrimSuffix(line, "\n")
	}()
	var line string
	select {
	case line = <-lines:
	case <-ctx.Done():
		syscall.Kill(pid, syscall.SIGTERM)
		return ctx.Err()
	}
	kind, msg, _ := strings.Cut(line, "\t")
	msg = strings.ReplaceAll(msg, "\\n", "\n")
	switch kind {
	case "ready":
		// The message ends with how to stop what was started.
		fmt.Fprint(out, strings.Replace(msg, "Stop it with:", fmt.Sprintf("Running in the background (pid %d). Stop it with:", pid), 1))
		return nil
	case "error":
		return errors.New(msg)
	}
	return fmt.Errorf("the background process (pid %d) exited while starting; see %s", pid, logPath)
}

// stopCommand is the command that stops the profile's cluster, or one job.
func stopCommand(p *profile.Profile, job int) string {
	stop := "ipcluster stop"
	if p.Name != profile.DefaultName {
		stop += " --profile " + p.Name
	}
	if job > 0 {
		stop += fmt.Sprintf(" --job %d", job)
	}
	return stop
}
