package testenv

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHD is an OpenSSH server on a loopback port, started for a test: its
// own host key, one authorized user key, and nothing else (no password
// login, no PAM).
type SSHD struct {
	Addr         string // 127.0.0.1:port
	Server       string // user@127.0.0.1:port, for tunnels
	IdentityFile string // the authorized private key
	KnownHosts   string // a known_hosts file that knows the server's key
	HostKey      ssh.PublicKey
	dir          string
	stop         func()
}

// Stop kills the server and the sessions it serves, ending every tunnel
// through it. It may be called more than once.
func (s *SSHD) Stop() { s.stop() }

// NeedSSHD starts an sshd for t, stopped (by its pid) when t ends. It
// skips t when there is no sshd, or fails it when the run requires one:
// make test installs openssh-server and sets IPCLUSTER_REQUIRE_SSHD=1.
func NeedSSHD(t testing.TB) *SSHD {
	t.Helper()
	return NeedSSHDWith(t)
}

// NeedSSHDWith is NeedSSHD with sshd_config lines of the test's own, which
// win over the defaults (sshd takes a keyword's first value).
func NeedSSHDWith(t testing.TB, config ...string) *SSHD {
	t.Helper()
	if _, err := os.Stat(sshdPath); err != nil {
		if os.Getenv("IPCLUSTER_REQUIRE_SSHD") == "1" {
			t.Fatalf("no %s: install openssh-server (apt-get install openssh-server), as make test does", sshdPath)
		}
		t.Skipf("no %s here: apt-get install openssh-server; make test does", sshdPath)
	}
	s, _, err := StartSSHD(t.TempDir(), config...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

const sshdPath = "/usr/sbin/sshd"

// StartSSHD starts an sshd whose files live in dir, for the current user,
// with the given sshd_config lines before its own, and returns once it
// listens; stop kills it and its sessions (by their pids) and waits.
func StartSSHD(dir string, config ...string) (s *SSHD, stop func(), err error) {
	u, err := user.Current()
	if err != nil {
		return nil, nil, err
	}
	if os.Getuid() == 0 {
		os.MkdirAll("/run/sshd", 0o755) // its privilege separation directory
	}
	hostPub, err := writeKey(filepath.Join(dir, "host_ed25519"))
	if err != nil {
		return nil, nil, err
	}
	userPub, err := writeKey(filepath.Join(dir, "id_ed25519"))
	if err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(userPub), 0o600); err != nil {
		return nil, nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, nil, err
	}
	config = append(config,
		"Port "+strconv.Itoa(port),
		"ListenAddress 127.0.0.1",
		"HostKey "+filepath.Join(dir, "host_ed25519"),
		"PidFile "+filepath.Join(dir, "sshd.pid"),
		"AuthorizedKeysFile "+filepath.Join(dir, "authorized_keys"),
		"StrictModes no",
		"UsePAM no",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"AllowTcpForwarding yes",
		"LogLevel ERROR",
	)
	cfgFile := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfgFile, []byte(strings.Join(config, "\n")+"\n"), 0o600); err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(sshdPath, "-D", "-e", "-f", cfgFile)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			// The sessions it forked run in sessions of their own
			// (setsid): end them by their pids, then the server.
			for _, pid := range descendants(cmd.Process.Pid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			cmd.Process.Kill()
			<-exited
		})
	}
	s = &SSHD{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), IdentityFile: filepath.Join(dir, "id_ed25519"),
		KnownHosts: filepath.Join(dir, "known_hosts"), HostKey: hostPub, dir: dir, stop: stop}
	s.Server = u.Username + "@" + s.Addr
	line := fmt.Sprintf("[127.0.0.1]:%d %s", port, ssh.MarshalAuthorizedKey(hostPub))
	if err := os.WriteFile(s.KnownHosts, []byte(line), 0o600); err != nil {
		stop()
		return nil, nil, err
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) { // polling a condition: sshd gives no sign when it listens
		if c, err := net.Dial("tcp", s.Addr); err == nil {
			c.Close()
			return s, stop, nil
		}
		select {
		case err := <-exited:
			exited <- err
			stop()
			return nil, nil, fmt.Errorf("sshd exited: %v\n%s", err, out)
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return nil, nil, fmt.Errorf("sshd does not listen on %s:\n%s", s.Addr, out)
		}
	}
}

// EmptyKnownHosts returns a known_hosts file that knows no host.
func (s *SSHD) EmptyKnownHosts(t testing.TB) string {
	f := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// writeKey writes a new ed25519 private key in OpenSSH format to path,
// and returns its public key.
func writeKey(path string) (ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	return ssh.NewPublicKey(pub)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// descendants lists the processes below pid, from /proc.
func descendants(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		rest := string(data[strings.LastIndexByte(string(data), ')')+1:])
		fields := strings.Fields(rest)
		if len(fields) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(fields[1]); err == nil {
			children[ppid] = append(children[ppid], p)
		}
	}
	var out []int
	var walk func(int)
	walk = func(p int) {
		for _, c := range children[p] {
			out = append(out, c)
			walk(c)
		}
	}
	walk(pid)
	return out
}
