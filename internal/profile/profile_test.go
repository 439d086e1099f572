package profile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testProfile returns a profile in a fresh base directory, with the
// IPCLUSTER_* environment cleared.
func testProfile(t *testing.T, name string) *Profile {
	t.Helper()
	for _, v := range []string{"IPCLUSTER_IP", "IPCLUSTER_HEARTBEAT_PERIOD", "IPCLUSTER_SCHEDULER", "IPCLUSTER_N", "IPCLUSTER_LOG_LEVEL"} {
		t.Setenv(v, "")
	}
	t.Setenv("IPCLUSTER_DIR", t.TempDir())
	p, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBaseDir(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	tests := []struct{ env, want string }{
		{"", filepath.Join(home, ".ipcluster")},
		{"/srv/ipc", "/srv/ipc"},
		{"/srv/ipc/../other/", "/srv/other"},
	}
	for _, tt := range tests {
		t.Setenv("IPCLUSTER_DIR", tt.env)
		got, err := BaseDir()
		if err != nil || got != tt.want {
			t.Errorf("IPCLUSTER_DIR=%q: BaseDir() = %q, %v; want %q", tt.env, got, err, tt.want)
		}
	}

	t.Chdir(home)
	t.Setenv("IPCLUSTER_DIR", "rel")
	if got, err := BaseDir(); err != nil || got != filepath.Join(home, "rel") {
		t.Errorf("relative IPCLUSTER_DIR: BaseDir() = %q, %v; want it made absolute", got, err)
	}
}

func TestOpen(t *testing.T) {
	base := t.TempDir()
	t.Setenv("IPCLUSTER_DIR", base)
	tests := []struct {
		name, wantName string
		ok             bool
	}{
		{"", "default", true},
		{"default", "default", true},
		{"gpu-nodes_2.x", "gpu-nodes_2.x", true},
		{"...", "...", true},
		{".", "", false},
		{"..", "", false},
		{"a/b", "", false},
		{"../x", "", false},
		{"has space", "", false},
		{"ünï", "", false},
		{"a\x00", "", false},
	}
	for _, tt := range tests {
		p, err := Open(tt.name)
		if !tt.ok {
			if err == nil || !strings.Contains(err.Error(), strings.ReplaceAll(tt.name, "\x00", `\x00`)) {
				t.Errorf("Open(%q) = %v; want an error naming it", tt.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Open(%q): %v", tt.name, err)
			continue
		}
		if p.Name != tt.wantName || p.Dir != filepath.Join(base, tt.wantName) {
			t.Errorf("Open(%q) = %+v", tt.name, p)
		}
		if _, err := os.Stat(p.Dir); !os.IsNotExist(err) {
			t.Errorf("Open(%q) created %s", tt.name, p.Dir)
		}
	}
}

func TestEnsureAndPaths(t *testing.T) {
	p := testProfile(t, "x")
	if err := p.Ensure(); err != nil {
		t.Fatal(err)
	}
	if err := p.Ensure(); err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	for _, dir := range []string{p.Dir, filepath.Dir(p.ClientFile()), p.LogDir()} {
		st, err := os.Stat(dir)
		if err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, %v; want a directory with mode 0700", dir, st.Mode(), err)
		}
	}
	paths := map[string]string{
		p.ConfigPath(): "ipcluster.toml",
		p.ClientFile(): "security/client.json",
		p.EngineFile(): "security/engine.json",
		p.StatePath():  "cluster.json",
		p.LockPath():   "cluster.lock",
		p.LogDir():     "log",
	}
	for got, rel := range paths {
		if want := filepath.Join(p.Dir, rel); got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}
