// Package tunnel forwards local TCP ports through an ssh server, as
// `ssh -N -L` does, so that a client on a laptop reaches a controller that
// listens on a cluster's login node.
//
// By default it runs the system's ssh, so that the user's ~/.ssh/config,
// ProxyJump, Kerberos, agents and ControlMaster all apply as they do for
// the user's own ssh. Where there is no ssh binary, or when asked, it
// speaks ssh itself (golang.org/x/crypto/ssh): agent, identity files and
// keyboard-interactive authentication (one-time codes), with host keys
// checked against known_hosts; an unknown host key is refused, never
// trusted silently.
//
// A tunnel lives until Close. If it drops (the network, the server), it
// says so and builds itself again on the same local ports.
package tunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"time"
)

// Mode chooses how a tunnel speaks ssh.
type Mode string

// Modes.
const (
	Auto    Mode = ""        // the system ssh if there is one, else built in
	System  Mode = "system"  // the ssh command (its config, agents, ProxyJump, ...)
	Builtin Mode = "builtin" // golang.org/x/crypto/ssh
)

// Options configure a tunnel. Only Server is required.
type Options struct {
	// Server is the ssh server: [user@]host[:port].
	Server string
	Mode   Mode
	// IdentityFile is a private key to offer (ssh -i); with none, the
	// system ssh uses its configuration, and the built-in one the agent
	// and ~/.ssh/id_ed25519, id_ecdsa, id_rsa.
	IdentityFile string
	// KnownHosts lists known_hosts files (default ~/.ssh/known_hosts).
	KnownHosts []string
	// SSHArgs are extra arguments for the system ssh, before the server
	// (such as "-F", "/dev/null" or "-o", "ProxyJump=gw").
	SSHArgs []string
	// Prompt answers keyboard-interactive questions for the built-in
	// ssh (a password, a one-time code). Nil: questions are refused.
	Prompt func(question string, echo bool) (string, error)
	// Logger receives drops and rebuilds; nil discards.
	Logger *slog.Logger
	// OnDrop, if set, is told each time the tunnel drops, with why; it is
	// being rebuilt meanwhile.
	OnDrop func(error)
}

// Tunnel forwards local ports to remote addresses through one server.
type Tunnel struct {
	locals map[string]string // remote address -> local address
	closer interface{ close() error }
}

// Open forwards a free local port on 127.0.0.1 to each remote address
// ("host:port", as the server resolves it) and returns once they are
// ready, or the error that stopped them (ssh's own message, for the
// system ssh).
func Open(ctx context.Context, opts Options, remotes ...string) (*Tunnel, error) {
	if len(remotes) == 0 {
		return nil, errors.New("tunnel: no remote address to forward")
	}
	if opts.Server == "" {
		return nil, errors.New("tunnel: no ssh server")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	for _, r := range remotes {
		if _, _, err := net.SplitHostPort(r); err != nil {
			return nil, fmt.Errorf("tunnel: remote address %q: %w", r, err)
		}
	}
	mode := opts.Mode
	if mode == Auto {
		mode = Builtin
		if _, err := exec.LookPath("ssh"); err == nil {
			mode = System
		}
	}
	switch mode {
	case System:
		return openSystem(ctx, opts, remotes)
	case Builtin:
		return openBuiltin(ctx, opts, remotes)
	}
	return nil, fmt.Errorf("tunnel: unknown mode %q (want %q or %q)", opts.Mode, System, Builtin)
}

// Local returns the local address ("127.0.0.1:port") that forwards to
// remote, or "" if remote is not forwarded.
func (t *Tunnel) Local(remote string) string { return t.locals[remote] }

// Close stops forwarding and waits until the tunnel's processes and
// goroutines are gone.
func (t *Tunnel) Close() error { return t.closer.close() }

// server is a parsed [user@]host[:port].
type server struct {
	user, host, port string
}

// parseServer reads [user@]host[:port]; the user defaults to the current
// one and the port to "" (ssh's default, 22).
func parseServer(s string) (server, error) {
	var sv server
	if at := strings.LastIndexByte(s, '@'); at >= 0 {
		sv.user, s = s[:at], s[at+1:]
	}
	sv.host = s
	if h, p, err := net.SplitHostPort(s); err == nil {
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return server{}, fmt.Errorf("tunnel: ssh server %q: port %q is not a number", s, p)
		}
		sv.host, sv.port = h, p
	}
	if sv.host == "" || strings.ContainsAny(sv.host, " /") || strings.HasPrefix(sv.host, "-") {
		return server{}, fmt.Errorf("tunnel: ssh server %q: want [user@]host[:port]", s)
	}
	return sv, nil
}

func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

// freePorts reserves n local ports by binding them, and releases them for
// the system ssh to bind.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("tunnel: a free local port: %w", err)
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// backoff is the wait before the n-th attempt to rebuild a tunnel.
func backoff(n int) time.Duration {
	return min(30*time.Second, time.Duration(1<<min(n, 5))*250*time.Millisecond)
}

// OpenEndpoint forwards a local port to a ZeroMQ endpoint, tcp://host:port
// as the ssh server sees it, and returns the tunnel and the local endpoint
// to dial instead. A wildcard host (a controller listening on every
// interface) is reached at the server's own loopback.
func OpenEndpoint(ctx context.Context, opts Options, endpoint string) (*Tunnel, string, error) {
	rest, ok := strings.CutPrefix(endpoint, "tcp://")
	host, port, err := net.SplitHostPort(rest)
	if !ok || err != nil {
		return nil, "", fmt.Errorf("tunnel: cannot forward to %q: want a tcp://host:port endpoint", endpoint)
	}
	if ip := net.ParseIP(host); host == "*" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	remote := net.JoinHostPort(host, port)
	t, err := Open(ctx, opts, remote)
	if err != nil {
		return nil, "", fmt.Errorf("reaching %s through ssh: %w", remote, err)
	}
	return t, "tcp://" + t.Local(remote), nil
}
