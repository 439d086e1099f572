package tunnel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// systemTunnel runs `ssh -N -L ...`, again whenever it exits, until
// closed.
type systemTunnel struct {
	opts   Options
	ssh    string
	args   []string
	locals []string

	stop chan struct{} // closed by close
	done chan struct{} // closed when watch has returned
	once sync.Once

	mu  sync.Mutex
	cmd *exec.Cmd
}

func openSystem(ctx context.Context, opts Options, remotes []string) (*Tunnel, error) {
	sv, err := parseServer(opts.Server)
	if err != nil {
		return nil, err
	}
	ssh, err := exec.LookPath("ssh")
	if err != nil {
		return nil, errors.New("tunnel: no ssh command here: install OpenSSH's client, or use the built-in ssh (--ssh-mode builtin)")
	}
	ports, err := freePorts(len(remotes))
	if err != nil {
		return nil, err
	}
	// -n: ssh must not read our standard input (passwords and codes it
	// asks on the terminal). Keepalives notice a dead connection, after
	// which ssh exits and is started again.
	args := []string{"-N", "-n", "-o", "ExitOnForwardFailure=yes", "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3"}
	if opts.IdentityFile != "" {
		args = append(args, "-i", opts.IdentityFile, "-o", "IdentitiesOnly=yes")
	}
	if len(opts.KnownHosts) > 0 {
		args = append(args, "-o", "UserKnownHostsFile="+strings.Join(opts.KnownHosts, " "))
	}
	if sv.port != "" {
		args = append(args, "-p", sv.port)
	}
	t := &Tunnel{locals: make(map[string]string, len(remotes))}
	st := &systemTunnel{opts: opts, ssh: ssh, stop: make(chan struct{}), done: make(chan struct{})}
	for i, r := range remotes {
		local := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i]))
		args = append(args, "-L", local+":"+r)
		t.locals[r] = local
		st.locals = append(st.locals, local)
	}
	args = append(args, opts.SSHArgs...)
	dest := sv.host
	if sv.user != "" {
		dest = sv.user + "@" + sv.host
	}
	st.args = append(args, "--", dest)
	exited, stderr, err := st.start()
	if err != nil {
		return nil, err
	}
	if err := st.ready(ctx, exited, stderr); err != nil {
		st.kill()
		<-exited
		return nil, err
	}
	go st.watch(exited, stderr)
	t.closer = st
	return t, nil
}

// start starts ssh; exited delivers how it ended.
func (st *systemTunnel) start() (exited chan error, stderr *tailBuffer, err error) {
	cmd := exec.Command(st.ssh, st.args...)
	stderr = &tailBuffer{max: 4096}
	cmd.Stderr = stderr
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("tunnel: starting ssh: %w", err)
	}
	st.mu.Lock()
	st.cmd = cmd
	st.mu.Unlock()
	exited = make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	return exited, stderr, nil
}

// ready waits until ssh listens on every local port, or exits.
func (st *systemTunnel) ready(ctx context.Context, exited chan error, stderr *tailBuffer) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if st.listening() {
			return nil
		}
		select {
		case err := <-exited:
			exited <- err // for the caller
			return fmt.Errorf("tunnel: ssh %s: %v: %s", st.opts.Server, err, stderr.text())
		case <-ctx.Done():
			return fmt.Errorf("tunnel: ssh %s: %w (ssh said: %s)", st.opts.Server, context.Cause(ctx), stderr.text())
		case <-tick.C: // ssh gives no sign when it listens: look again
		}
	}
}

// listening reports whether every local port accepts connections.
func (st *systemTunnel) listening() bool {
	for _, l := range st.locals {
		c, err := net.DialTimeout("tcp", l, time.Second)
		if err != nil {
			return false
		}
		c.Close()
	}
	return true
}

// watch starts ssh again whenever it exits, until the tunnel is closed.
func (st *systemTunnel) watch(exited chan error, stderr *tailBuffer) {
	defer close(st.done)
	for attempt := 0; ; {
		select {
		case err := <-exited:
			select {
			case <-st.stop:
				return
			default:
			}
			drop := fmt.Errorf("ssh to %s exited: %v: %s", st.opts.Server, err, stderr.text())
			st.opts.Logger.Warn("the ssh tunnel dropped; rebuilding it", "err", drop)
			if st.opts.OnDrop != nil {
				st.opts.OnDrop(drop)
			}
		case <-st.stop:
			st.kill()
			<-exited
			return
		}
		for {
			select {
			case <-st.stop:
				return
			case <-time.After(backoff(attempt)):
			}
			attempt++
			var err error
			if exited, stderr, err = st.start(); err == nil {
				break
			}
			st.opts.Logger.Warn("rebuilding the ssh tunnel", "err", err)
		}
		if !st.waitListening(exited) {
			continue // it exited again: the next round reports it
		}
		attempt = 0
		st.opts.Logger.Info("the ssh tunnel is back", "server", st.opts.Server)
	}
}

// waitListening waits until ssh listens or exits (false), or the tunnel
// is closed.
func (st *systemTunnel) waitListening(exited chan error) bool {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-st.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return st.ready(ctx, exited, &tailBuffer{}) == nil
}

func (st *systemTunnel) kill() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.cmd != nil && st.cmd.Process != nil {
		st.cmd.Process.Kill()
	}
}

func (st *systemTunnel) close() error {
	st.once.Do(func() { close(st.stop) })
	st.kill()
	<-st.done
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if t.max > 0 && len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) text() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := string(bytes.TrimSpace(t.b))
	if s == "" {
		return "(no message)"
	}
	return s
}
