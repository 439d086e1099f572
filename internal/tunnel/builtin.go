package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// builtinTunnel forwards with golang.org/x/crypto/ssh: one local listener
// per remote address, one ssh connection for all, redialled when it
// drops.
type builtinTunnel struct {
	opts    Options
	addr    string // host:port
	config  *ssh.ClientConfig
	agentFn func() // closes the agent connection, if any

	listeners []net.Listener
	wg        sync.WaitGroup
	stop      chan struct{}
	once      sync.Once

	mu     sync.Mutex
	client *ssh.Client
	conns  map[net.Conn]bool // forwarded connections, closed with the tunnel
}

func openBuiltin(ctx context.Context, opts Options, remotes []string) (*Tunnel, error) {
	sv, err := parseServer(opts.Server)
	if err != nil {
		return nil, err
	}
	if sv.user == "" {
		sv.user = currentUser()
	}
	if sv.port == "" {
		sv.port = "22"
	}
	bt := &builtinTunnel{opts: opts, addr: net.JoinHostPort(sv.host, sv.port), stop: make(chan struct{}), conns: map[net.Conn]bool{}}
	hostKeys, err := hostKeyCallback(opts.KnownHosts, sv)
	if err != nil {
		return nil, err
	}
	auth, closeAgent := authMethods(opts)
	bt.agentFn = closeAgent
	bt.config = &ssh.ClientConfig{User: sv.user, Auth: auth, HostKeyCallback: hostKeys, Timeout: 15 * time.Second}
	if err := bt.dial(ctx); err != nil {
		closeAgent()
		return nil, err
	}
	t := &Tunnel{locals: make(map[string]string, len(remotes)), closer: bt}
	for _, r := range remotes {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			bt.close()
			return nil, fmt.Errorf("tunnel: a local port: %w", err)
		}
		bt.listeners = append(bt.listeners, l)
		t.locals[r] = l.Addr().String()
		bt.wg.Go(func() { bt.serve(l, r) })
	}
	bt.wg.Go(bt.keepalive)
	return t, nil
}

// dial connects and authenticates to the server.
func (bt *builtinTunnel) dial(ctx context.Context) error {
	d := net.Dialer{Timeout: bt.config.Timeout}
	conn, err := d.DialContext(ctx, "tcp", bt.addr)
	if err != nil {
		return fmt.Errorf("tunnel: ssh %s: %w", bt.opts.Server, err)
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, bt.addr, bt.config)
	if err != nil {
		conn.Close()
		return fmt.Errorf("tunnel: ssh %s: %w", bt.opts.Server, err)
	}
	bt.mu.Lock()
	old := bt.client
	bt.client = ssh.NewClient(c, chans, reqs)
	bt.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// current returns the ssh client, or nil once closed.
func (bt *builtinTunnel) current() *ssh.Client {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	return bt.client
}

// serve forwards each connection accepted on l to remote.
func (bt *builtinTunnel) serve(l net.Listener, remote string) {
	for {
		local, err := l.Accept()
		if err != nil {
			return // closed
		}
		bt.wg.Go(func() { bt.forward(local, remote) })
	}
}

// forward copies between a local connection and remote, through the
// server; if the ssh connection is dead, it is rebuilt first.
func (bt *builtinTunnel) forward(local net.Conn, remote string) {
	defer local.Close()
	var far net.Conn
	for attempt := 0; far == nil; attempt++ {
		c := bt.current()
		if c == nil {
			return
		}
		var err error
		if far, err = c.Dial("tcp", remote); err == nil {
			break
		}
		if !bt.rebuild(c, fmt.Errorf("forwarding to %s: %w", remote, err), attempt) {
			return
		}
	}
	defer far.Close()
	if !bt.track(local, far) {
		return
	}
	defer bt.untrack(local, far)
	done := make(chan struct{})
	go func() {
		io.Copy(far, local)
		far.Close()
		close(done)
	}()
	io.Copy(local, far)
	local.Close()
	<-done
}

func (bt *builtinTunnel) track(cs ...net.Conn) bool {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	if bt.client == nil {
		return false
	}
	for _, c := range cs {
		bt.conns[c] = true
	}
	return true
}

func (bt *builtinTunnel) untrack(cs ...net.Conn) {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	for _, c := range cs {
		delete(bt.conns, c)
	}
}

// rebuild reports a drop of client c and dials again, unless another
// goroutine did already or the tunnel is closed (false). It waits before
// dialling after failed attempts.
func (bt *builtinTunnel) rebuild(c *ssh.Client, why error, attempt int) bool {
	bt.mu.Lock()
	if bt.client != c {
		bt.mu.Unlock()
		return bt.current() != nil // somebody rebuilt it meanwhile
	}
	bt.mu.Unlock()
	if attempt == 0 {
		bt.opts.Logger.Warn("the ssh tunnel dropped; rebuilding it", "server", bt.opts.Server, "err", why)
		if bt.opts.OnDrop != nil {
			bt.opts.OnDrop(why)
		}
	}
	select {
	case <-bt.stop:
		return false
	case <-time.After(backoff(attempt)):
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-bt.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := bt.dial(ctx); err != nil {
		bt.opts.Logger.Warn("rebuilding the ssh tunnel", "err", err)
		return bt.current() != nil
	}
	bt.opts.Logger.Info("the ssh tunnel is back", "server", bt.opts.Server)
	return true
}

// keepalive checks the connection every 10 s, and rebuilds it when the
// server stops answering, so that a drop is noticed before it is used.
func (bt *builtinTunnel) keepalive() {
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	failures := 0
	for {
		select {
		case <-bt.stop:
			return
		case <-tick.C:
		}
		c := bt.current()
		if c == nil {
			return
		}
		if _, _, err := c.SendRequest("keepalive@openssh.com", true, nil); err != nil {
			if !bt.rebuild(c, fmt.Errorf("keepalive: %w", err), failures) {
				return
			}
			failures++
			continue
		}
		failures = 0
	}
}

func (bt *builtinTunnel) close() error {
	bt.once.Do(func() {
		close(bt.stop)
		for _, l := range bt.listeners {
			l.Close()
		}
		bt.mu.Lock()
		c := bt.client
		bt.client = nil
		for conn := range bt.conns {
			conn.Close()
		}
		bt.mu.Unlock()
		if c != nil {
			c.Close()
		}
		bt.wg.Wait()
		bt.agentFn()
	})
	return nil
}

// authMethods offers the agent's keys, the identity file (or the default
// ones), and keyboard-interactive answers by opts.Prompt.
func authMethods(opts Options) ([]ssh.AuthMethod, func()) {
	var signers []ssh.Signer
	closeAgent := func() {}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" && opts.IdentityFile == "" {
		if conn, err := net.Dial("unix", sock); err == nil {
			if ss, err := agent.NewClient(conn).Signers(); err == nil {
				signers = append(signers, ss...)
			}
			closeAgent = func() { conn.Close() }
		}
	}
	files := []string{opts.IdentityFile}
	if opts.IdentityFile == "" {
		home, _ := os.UserHomeDir()
		files = []string{filepath.Join(home, ".ssh", "id_ed25519"), filepath.Join(home, ".ssh", "id_ecdsa"), filepath.Join(home, ".ssh", "id_rsa")}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			if opts.IdentityFile != "" {
				opts.Logger.Warn("cannot read the ssh identity file", "file", f, "err", err)
			}
			continue
		}
		s, err := ssh.ParsePrivateKey(data)
		if err != nil {
			opts.Logger.Warn("cannot use the ssh identity file (a key with a passphrase needs the agent, or the system ssh)", "file", f, "err", err)
			continue
		}
		signers = append(signers, s)
	}
	var methods []ssh.AuthMethod
	if len(signers) > 0 {
		methods = append(methods, ssh.PublicKeys(signers...))
	}
	if opts.Prompt != nil {
		methods = append(methods, ssh.KeyboardInteractive(func(name, instruction string, questions []string, echos []bool) ([]string, error) {
			answers := make([]string, len(questions))
			for i, q := range questions {
				if i == 0 && instruction != "" {
					q = instruction + "\n" + q
				}
				a, err := opts.Prompt(q, echos[i])
				if err != nil {
					return nil, err
				}
				answers[i] = a
			}
			return answers, nil
		}))
	}
	return methods, closeAgent
}

// hostKeyCallback checks host keys against known_hosts files. An unknown
// key is refused with how to accept it; a changed one with a warning.
func hostKeyCallback(files []string, sv server) (ssh.HostKeyCallback, error) {
	if len(files) == 0 {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("tunnel: no home directory for known_hosts: %w", err)
		}
		files = []string{filepath.Join(home, ".ssh", "known_hosts")}
	}
	var present []string
	for _, f := range files {
		if _, err := os.Stat(f); err == nil {
			present = append(present, f)
		}
	}
	check := func(string, net.Addr, ssh.PublicKey) error { return &knownhosts.KeyError{} }
	if len(present) > 0 {
		cb, err := knownhosts.New(present...)
		if err != nil {
			return nil, fmt.Errorf("tunnel: reading known_hosts: %w", err)
		}
		check = cb
	}
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := check(hostname, remote, key)
		var ke *knownhosts.KeyError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &ke) && len(ke.Want) == 0:
			accept := "ssh " + sv.host
			if sv.port != "" && sv.port != "22" {
				accept = "ssh -p " + sv.port + " " + sv.host
			}
			return fmt.Errorf("the host key of %s is not known (%s %s, in %s): if that fingerprint is the server's, "+
				"accept it by connecting once with `%s`, or add this line to known_hosts:\n%s",
				hostname, key.Type(), ssh.FingerprintSHA256(key), strings.Join(files, ", "), accept,
				knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key))
		case errors.As(err, &ke):
			return fmt.Errorf("the host key of %s (%s %s) does NOT match the one in %s:%d: someone may be "+
				"intercepting the connection, or the server's key changed; refusing to connect",
				hostname, key.Type(), ssh.FingerprintSHA256(key), ke.Want[0].Filename, ke.Want[0].Line)
		}
		return err
	}, nil
}
