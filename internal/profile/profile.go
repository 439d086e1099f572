// Package profile says where a cluster's files live, how it is configured,
// and whether it is running.
//
// A profile is a directory, <base>/<name>, where base is $IPCLUSTER_DIR or
// ~/.ipcluster and the default name is "default". It holds:
//
//	ipcluster.toml         configuration (optional; see [Load])
//	security/client.json   connection files, written by the controller
//	security/engine.json
//	cluster.json           run state of the cluster (see [State])
//	cluster.lock           held by the running cluster's supervisor (see [Profile.Lock])
//	log/                   log files
//
// The package is Unix-only: the cluster lock is flock(2).
package profile

import (
	"fmt"
	"os"
	"path/filepath"
)

// DefaultName is the profile used when none is named.
const DefaultName = "default"

// Profile is a named profile and its directory.
type Profile struct {
	Name string
	Dir  string
}

// BaseDir returns the directory holding all profiles: $IPCLUSTER_DIR if it
// is set and not empty, else ~/.ipcluster. The result is absolute.
func BaseDir() (string, error) {
	if dir := os.Getenv("IPCLUSTER_DIR"); dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return "", fmt.Errorf("IPCLUSTER_DIR: %w", err)
		}
		return abs, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cannot find the profile directory (set IPCLUSTER_DIR): %w", err)
	}
	return filepath.Join(home, ".ipcluster"), nil
}

// Open resolves the profile called name ("" means [DefaultName]) without
// creating anything. A name is made of letters, digits, '.', '_' and '-',
// and is not "." or "..".
func Open(name string) (*Profile, error) {
	if name == "" {
		name = DefaultName
	}
	if err := checkName(name); err != nil {
		return nil, err
	}
	base, err := BaseDir()
	if err != nil {
		return nil, err
	}
	return &Profile{Name: name, Dir: filepath.Join(base, name)}, nil
}

func checkName(name string) error {
	if name == "." || name == ".." {
		return fmt.Errorf("invalid profile name %q", name)
	}
	for _, r := range name {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("invalid profile name %q: use only letters, digits, '.', '_' and '-'", name)
		}
	}
	return nil
}

// Ensure creates the profile directory and its security/ and log/
// subdirectories (mode 0700) where missing.
func (p *Profile) Ensure() error {
	for _, dir := range []string{p.Dir, p.securityDir(), p.LogDir()} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("profile %q: %w", p.Name, err)
		}
	}
	return nil
}

func (p *Profile) securityDir() string { return filepath.Join(p.Dir, "security") }

// ConfigPath returns the path of the configuration file, ipcluster.toml.
func (p *Profile) ConfigPath() string { return filepath.Join(p.Dir, "ipcluster.toml") }

// ClientFile returns the path of the clients' connection file.
func (p *Profile) ClientFile() string { return filepath.Join(p.securityDir(), "client.json") }

// EngineFile returns the path of the engines' connection file.
func (p *Profile) EngineFile() string { return filepath.Join(p.securityDir(), "engine.json") }

// StatePath returns the path of the run state file, cluster.json.
func (p *Profile) StatePath() string { return filepath.Join(p.Dir, "cluster.json") }

// LockPath returns the path of the cluster lock file, cluster.lock.
func (p *Profile) LockPath() string { return filepath.Join(p.Dir, "cluster.lock") }

// LogDir returns the directory for log files.
func (p *Profile) LogDir() string { return filepath.Join(p.Dir, "log") }
