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
	"time"

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
	readyFD := os.Getenv(daemonEnv)
	if daemon && readyFD == "" {
		return spawnDaemon(cmd.Context(), p, out)
	}

	log, closeLog, err := g.newLogger(p, cfg, "ipcluster.log", cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer closeLog()
	var report *os.File
	if readyFD != "" {
		fd, err := strconv.Atoi(readyFD)
		if err != nil {
			return fmt.Errorf("$%s=%q is not a descriptor", daemonEnv, readyFD)
		}
		report = os.NewFile(uintptr(fd), "daemon-ready")
		defer report.Close()
	}
	err = supervisor.Run(cmd.Context(), supervisor.Options{
		Profile: p, Config: cfg, Engines: n, Logger: log, Daemon: report != nil,
		Ready: func(r supervisor.Ready) {
			if report != nil {
				fmt.Fprintf(report, "ready\t%s\t%d\t%s\t%d\n", r.ClientFile, r.Engines, r.Endpoint, r.Elapsed.Microseconds())
				report.Close()
				report = nil
				return
			}
			fmt.Fprintf(out, "ipcluster: %d engines ready in %.2f s (profile %q)\n", r.Engines, r.Elapsed.Seconds(), p.Name)
			fmt.Fprintf(out, "  connection file: %s\n  controller:      %s\n  logs:            %s\n", r.ClientFile, r.Endpoint, p.LogDir())
			fmt.Fprintln(out, "Press Ctrl-C to stop.")
		},
	})
	if err != nil {
		if report != nil {
			fmt.Fprintf(report, "error\t%s\n", strings.ReplaceAll(err.Error(), "\n", "\\n"))
		}
		return err
	}
	if readyFD == "" {
		fmt.Fprintln(out, "ipcluster: stopped")
	}
	return nil
}

// spawnDaemon starts this command again in the background, detached from
// the terminal, and returns once it reports the cluster ready (or failed).
func spawnDaemon(ctx context.Context, p *profile.Profile, out io.Writer) error {
	if err := p.Ensure(); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logPath := filepath.Join(p.LogDir(), "ipcluster.log")
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
	fields := strings.Split(line, "\t")
	switch {
	case fields[0] == "ready" && len(fields) == 5:
		us, _ := strconv.ParseInt(fields[4], 10, 64)
		fmt.Fprintf(out, "ipcluster: %s engines ready in %.2f s, in the background (pid %d, profile %q)\n",
			fields[2], (time.Duration(us) * time.Microsecond).Seconds(), pid, p.Name)
		fmt.Fprintf(out, "  connection file: %s\n  controller:      %s\n  logs:            %s\n", fields[1], fields[3], p.LogDir())
		stop := "ipcluster stop"
		if p.Name != profile.DefaultName {
			stop += " --profile " + p.Name
		}
		fmt.Fprintf(out, "Stop it with: %s\n", stop)
		return nil
	case fields[0] == "error" && len(fields) >= 2:
		return errors.New(strings.ReplaceAll(strings.Join(fields[1:], "\t"), "\\n", "\n"))
	}
	return fmt.Errorf("the background cluster (pid %d) exited while starting; see %s", pid, logPath)
}
