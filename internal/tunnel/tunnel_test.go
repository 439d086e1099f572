package tunnel

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ipcluster/ipcluster/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer echoes each connection on a loopback port until the test
// ends.
func echoServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String()
}

// roundTrip sends a line through local and reads it back.
func roundTrip(local string) error {
	c, err := net.DialTimeout("tcp", local, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := "hello through the tunnel\n"
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("read back %q", buf)
	}
	return nil
}

func options(s *testenv.SSHD, mode Mode) Options {
	return Options{Server: s.Server, Mode: mode, IdentityFile: s.IdentityFile, KnownHosts: []string{s.KnownHosts},
		SSHArgs: []string{"-F", "/dev/null", "-o", "BatchMode=yes"}}
}

func TestForwardThroughSSHD(t *testing.T) {
	s := testenv.NeedSSHD(t)
	remote := echoServer(t)
	for _, mode := range []Mode{System, Builtin} {
		t.Run(string(mode), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			tun, err := Open(ctx, options(s, mode), remote)
			if err != nil {
				t.Fatal(err)
			}
			local := tun.Local(remote)
			if !strings.HasPrefix(local, "127.0.0.1:") || local == remote {
				t.Fatalf("local address %q for %q", local, remote)
			}
			for range 3 {
				if err := roundTrip(local); err != nil {
					t.Fatal(err)
				}
			}
			if err := tun.Close(); err != nil {
				t.Fatal(err)
			}
			if err := roundTrip(local); err == nil {
				t.Error("the tunnel still forwards after Close")
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	s := testenv.NeedSSHD(t)
	remote := echoServer(t)
	other := testenv.NeedSSHD(t) // its key is not authorized on s
	for _, tc := range []struct {
		name string
		mode Mode
		edit func(*Options)
		want []string
	}{
		{"unknown host, built in", Builtin, func(o *Options) { o.KnownHosts = []string{s.EmptyKnownHosts(t)} },
			[]string{"is not known", "SHA256:", "accept it by connecting once with `ssh -p"}},
		{"unknown host, system", System, func(o *Options) { o.KnownHosts = []string{s.EmptyKnownHosts(t)} },
			[]string{"Host key verification failed"}},
		{"changed host key, built in", Builtin, func(o *Options) { o.KnownHosts = []string{otherKnownHosts(t, s, other)} },
			[]string{"does NOT match"}},
		{"key not authorized, built in", Builtin, func(o *Options) { o.IdentityFile = other.IdentityFile },
			[]string{"unable to authenticate"}},
		{"key not authorized, system", System, func(o *Options) { o.IdentityFile = other.IdentityFile },
			[]string{"Permission denied"}},
		{"bad server", Builtin, func(o *Options) { o.Server = "alice@-oProxyCommand=x" }, []string{"want [user@]host[:port]"}},
		{"bad mode", "carrier-pigeon", func(*Options) {}, []string{`unknown mode "carrier-pigeon"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			o := options(s, tc.mode)
			tc.edit(&o)
			tun, err := Open(ctx, o, remote)
			if err == nil {
				tun.Close()
				t.Fatal("opened")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// otherKnownHosts is a known_hosts file that gives s's address the host
// key of other: as if s's key had changed.
func otherKnownHosts(t *testing.T, s, other *testenv.SSHD) string {
	f := s.EmptyKnownHosts(t)
	line := fmt.Sprintf("[127.0.0.1]:%s %s", s.Addr[strings.LastIndexByte(s.Addr, ':')+1:], sshAuthorizedKey(other))
	if err := writeFile(f, line); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestRebuiltAfterADrop(t *testing.T) {
	s := testenv.NeedSSHD(t)
	remote := echoServer(t)
	for _, mode := range []Mode{System, Builtin} {
		t.Run(string(mode), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			drops := make(chan error, 10)
			o := options(s, mode)
			o.OnDrop = func(err error) { drops <- err }
			tun, err := Open(ctx, o, remote)
			if err != nil {
				t.Fatal(err)
			}
			defer tun.Close()
			local := tun.Local(remote)
			if err := roundTrip(local); err != nil {
				t.Fatal(err)
			}
			// Cut the ssh connection underneath.
			switch c := tun.closer.(type) {
			case *systemTunnel:
				c.kill()
			case *builtinTunnel:
				c.current().Close()
			}
			if mode == Builtin {
				roundTrip(local) // the first use finds the connection dead
			}
			select {
			case err := <-drops:
				t.Logf("drop reported: %v", err)
			case <-ctx.Done():
				t.Fatal("the drop was not reported")
			}
			for err := roundTrip(local); err != nil; err = roundTrip(local) { // polling a condition: until rebuilt
				if ctx.Err() != nil {
					t.Fatalf("not rebuilt: %v", err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

func TestParseServer(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want server
		err  string
	}{
		{"login.cluster.org", server{host: "login.cluster.org"}, ""},
		{"alice@login.cluster.org", server{user: "alice", host: "login.cluster.org"}, ""},
		{"alice@login:2222", server{user: "alice", host: "login", port: "2222"}, ""},
		{"a@b@host", server{user: "a@b", host: "host"}, ""},
		{"[::1]:22", server{host: "::1", port: "22"}, ""},
		{"host:http", server{}, "is not a number"},
		{"", server{}, "want [user@]host"},
		{"-oProxyCommand=evil", server{}, "want [user@]host"},
	} {
		got, err := parseServer(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseServer(%q) = %v, want an error saying %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseServer(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestOpenEndpoint(t *testing.T) {
	s := testenv.NeedSSHD(t)
	remote := echoServer(t)
	_, port, _ := net.SplitHostPort(remote)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A wildcard host is the server's loopback.
	tun, local, err := OpenEndpoint(ctx, options(s, Builtin), "tcp://0.0.0.0:"+port)
	if err != nil {
		t.Fatal(err)
	}
	defer tun.Close()
	addr, ok := strings.CutPrefix(local, "tcp://127.0.0.1:")
	if !ok || addr == port {
		t.Fatalf("local endpoint %q", local)
	}
	if err := roundTrip(strings.TrimPrefix(local, "tcp://")); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"ipc:///tmp/x", "tcp://no-port", "127.0.0.1:5"} {
		if _, _, err := OpenEndpoint(ctx, options(s, Builtin), bad); err == nil || !strings.Contains(err.Error(), "want a tcp://host:port endpoint") {
			t.Errorf("OpenEndpoint(%q) = %v", bad, err)
		}
	}
}
