package main

import (
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
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

// laptopUser is the account that plays a laptop in TestLaptopTour.
const laptopUser = "ipcluster-laptop"

// TestLaptopTour is the remote-access issue's "done when": another user of
// this machine, holding only the exported connection file and an ssh key
// for the cluster owner's account, runs the README's console tour through
// sshd. It needs root (to make that user, removed again afterwards).
func TestLaptopTour(t *testing.T) {
	s := testenv.NeedSSHD(t)
	if os.Getuid() != 0 {
		t.Skip("needs root, to make a second user (make test runs as root in CI)")
	}
	if err := exec.Command("id", laptopUser).Run(); err != nil {
		if out, err := exec.Command("useradd", "--create-home", "--shell", "/bin/sh", laptopUser).CombinedOutput(); err != nil {
			t.Fatalf("useradd: %v\n%s", err, out)
		}
		t.Cleanup(func() { exec.Command("userdel", "--remove", laptopUser).Run() })
	}
	u, err := user.Lookup(laptopUser)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)

	e := newEnv(t)
	e.mustRun("start", "-n", "4", "--daemon")
	defer e.mustRun("stop")

	// What the laptop holds, in its own home: the credential, the ssh key
	// and known host; and the ipcluster binary, somewhere it may run it.
	home, err := os.MkdirTemp(u.HomeDir, "tour-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(home)
	creds := filepath.Join(home, "cluster.json")
	e.mustRun("connection", "export", "--ssh", s.Server, "-o", creds)
	key, _ := os.ReadFile(s.IdentityFile)
	known, _ := os.ReadFile(s.KnownHosts)
	os.WriteFile(filepath.Join(home, "id_ed25519"), key, 0o600)
	os.WriteFile(filepath.Join(home, "known_hosts"), known, 0o600)
	tour := "rc.ids\n%px x = engine.id * 10\n%px print(x)\nrc[:].pull(\"x\")\nrc.jobs()[0][\"engines\"]\n"
	os.WriteFile(filepath.Join(home, "tour.star"), []byte(tour), 0o600)
	binDir, err := os.MkdirTemp("", "ipcluster-bin-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(binDir)
	os.Chmod(binDir, 0o755)
	bin := filepath.Join(binDir, "ipcluster")
	self, _ := os.ReadFile(os.Args[0])
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(home, func(p string, _ fs.DirEntry, _ error) error { return os.Chown(p, uid, gid) })

	cmd := exec.Command("runuser", "-u", laptopUser, "--", bin, "console", "--file", creds,
		"--ssh-key", filepath.Join(home, "id_ed25519"), "--ssh-known-hosts", filepath.Join(home, "known_hosts"),
		filepath.Join(home, "tour.star"))
	cmd.Env = []string{asCommand + "=1", "HOME=" + home, "IPCLUSTER_DIR=" + filepath.Join(home, "ipcluster"), "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the tour as %s: %v\n%s", laptopUser, err, out)
	}
	for _, want := range []string{"[0, 1, 2, 3]", "[3] 30", "{0: 0, 1: 10, 2: 20, 3: 30}"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the tour printed no %q:\n%s", want, out)
		}
	}
	// The laptop's own profile holds nothing of the cluster's.
	if _, err := os.Stat(filepath.Join(home, "ipcluster", "default", "security")); err == nil {
		t.Error("the laptop's console wrote connection files of its own")
	}
}
