package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipcluster/ipcluster/internal/testenv"
	"github.com/ipcluster/ipcluster/wire"
)

// TestRemoteAccess exports the client credential with an ssh server in it,
// and runs the console, px and engines from it through a real sshd on
// loopback, with the ssh command and with the built-in ssh.
func TestRemoteAccess(t *testing.T) {
	s := testenv.NeedSSHD(t)
	e := newEnv(t)
	e.mustRun("start", "-n", "2", "--daemon")
	creds := filepath.Join(t.TempDir(), "cluster.json")
	if out := e.mustRun("connection", "export", "--ssh", s.Server, "-o", creds); !strings.Contains(out, "keep it private") {
		t.Errorf("export said %q", out)
	}
	info, err := os.Stat(creds)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("exported file: %v, mode %v; want mode 0600", err, info.Mode())
	}
	ci, err := wire.ReadConnectionFile(creds)
	if err != nil || ci.SSHServer != s.Server || ci.Location == "" {
		t.Fatalf("exported %+v, %v; want ssh %q and a location", ci, err, s.Server)
	}
	printed := e.mustRun("connection", "export")
	if !strings.Contains(printed, `"role": "client"`) || strings.Contains(printed, `"ssh"`) {
		t.Errorf("export printed:\n%s", printed)
	}

	script := filepath.Join(t.TempDir(), "tour.star")
	os.WriteFile(script, []byte("rc.ids\nrc[:].apply('echo', 'via ssh')\n"), 0o600)
	for _, mode := range [][]string{nil, {"--ssh-builtin"}} {
		flags := append([]string{"--ssh-key", s.IdentityFile, "--ssh-known-hosts", s.KnownHosts}, mode...)
		out := e.mustRun(append([]string{"console", "--file", creds, script}, flags...)...)
		if !strings.Contains(out, "[0, 1]") || !strings.Contains(out, `{0: "via ssh", 1: "via ssh"}`) {
			t.Errorf("console through ssh %v printed:\n%s", mode, out)
		}
		out = e.mustRun(append([]string{"px", "--connection-file", creds, "print('engine', engine.id)"}, flags...)...)
		if !strings.Contains(out, "[1] engine 1") {
			t.Errorf("px through ssh %v printed:\n%s", mode, out)
		}
		out = e.mustRun(append([]string{"engines", "--file", creds}, flags...)...)
		if !strings.Contains(out, "ID") || strings.Count(out, "\n") != 3 {
			t.Errorf("engines through ssh %v printed:\n%s", mode, out)
		}
	}
	// An unknown host key is refused, saying how to accept it.
	out, err := e.ipcluster("engines", "--file", creds, "--ssh-builtin", "--ssh-key", s.IdentityFile,
		"--ssh-known-hosts", s.EmptyKnownHosts(t))
	if err == nil || !strings.Contains(out, "is not known") || !strings.Contains(out, "accept it") {
		t.Errorf("an unknown host key: %v\n%s", err, out)
	}
	// A connection file others can read is refused, with the fix.
	os.Chmod(creds, 0o644)
	out, err = e.ipcluster("engines", "--file", creds)
	if err == nil || !strings.Contains(out, "chmod 600") {
		t.Errorf("a world-readable connection file: %v\n%s", err, out)
	}
}

// TestLocation: a controller listening on every interface advertises the
// location given, which clients and engines then use.
func TestLocation(t *testing.T) {
	e := newEnv(t)
	e.mustRun("start", "-n", "1", "--daemon", "--ip", "0.0.0.0", "--location", "localhost")
	defer e.mustRun("stop")
	ci, err := wire.ReadConnectionFile(e.profile().ClientFile())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ci.Endpoint, "tcp://localhost:") || ci.Location != "localhost" {
		t.Errorf("endpoint %q, location %q; want tcp://localhost:PORT", ci.Endpoint, ci.Location)
	}
	if out := e.mustRun("px", "engine.id"); !strings.Contains(out, "[0] Out: 0") {
		t.Errorf("px printed %q", out)
	}
	// A bad engine ssh server is refused by name before anything starts.
	out, err := e.ipcluster("start", "-n", "1", "--profile", "other", "--engine-ssh", "-oProxyCommand=x")
	if err == nil || !strings.Contains(out, "engines.ssh") {
		t.Errorf("start with --engine-ssh -oProxyCommand=x: %v\n%s", err, out)
	}
}
