package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Role says which controller port a connection file opens.
type Role string

// The two roles. Their keys differ, and the controller admits each on its
// own port only, so an engine's credential cannot act as a client.
const (
	RoleClient Role = "client"
	RoleEngine Role = "engine"
)

// ConnectionInfo is one party's credential and address: all a client or an
// engine needs to reach the controller. It lives in a connection file
// (JSON, mode 0600) or, for engines, in an environment variable.
type ConnectionInfo struct {
	Version       int    `json:"version"`
	Role          Role   `json:"role"`
	Endpoint      string `json:"endpoint"`       // the controller port for this role, e.g. tcp://127.0.0.1:40123
	ControllerKey string `json:"controller_key"` // the controller's CURVE public key
	KeyPair              // this holder's CURVE key pair
	HMACKey       string `json:"hmac_key"`           // hex-encoded message signing key
	Location      string `json:"location,omitempty"` // the controller's host name
	SSHServer     string `json:"ssh,omitempty"`      // an ssh server to tunnel through, if any
	Profile       string `json:"profile,omitempty"`  // the profile that wrote it
	ClusterID     string `json:"cluster_id"`         // identifies one run of a controller
	ControllerPID int    `json:"controller_pid,omitempty"`
}

// Check reports the first thing wrong with ci, naming the field.
func (ci *ConnectionInfo) Check() error {
	switch {
	case ci.Version != Version:
		return fmt.Errorf("version is %d, this ipcluster speaks %d", ci.Version, Version)
	case ci.Role != RoleClient && ci.Role != RoleEngine:
		return fmt.Errorf("role is %q, want %q or %q", ci.Role, RoleClient, RoleEngine)
	case ci.Endpoint == "":
		return errors.New("endpoint is empty")
	case !strings.Contains(ci.Endpoint, "://"):
		return fmt.Errorf("endpoint %q has no transport (tcp://host:port)", ci.Endpoint)
	}
	if err := CheckPublicKey(ci.ControllerKey); err != nil {
		return fmt.Errorf("controller_key: %w", err)
	}
	if err := ci.KeyPair.Check(); err != nil {
		return fmt.Errorf("key pair: %w", err)
	}
	if k, err := hex.DecodeString(ci.HMACKey); err != nil || len(k) < 16 {
		return errors.New("hmac_key is not at least 16 hex-encoded bytes")
	}
	return nil
}

// SigningKey returns the decoded HMAC key.
func (ci *ConnectionInfo) SigningKey() []byte {
	k, _ := hex.DecodeString(ci.HMACKey)
	return k
}

// Marshal returns ci as compact JSON, as carried in an environment variable.
func (ci *ConnectionInfo) Marshal() ([]byte, error) {
	return json.Marshal(ci)
}

// ParseConnection reads connection info from JSON, refusing unknown fields
// and checking the result.
func ParseConnection(data []byte) (*ConnectionInfo, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	ci := new(ConnectionInfo)
	if err := d.Decode(ci); err != nil {
		return nil, fmt.Errorf("connection info: %w", err)
	}
	if d.More() {
		return nil, errors.New("connection info: data after the JSON object")
	}
	if err := ci.Check(); err != nil {
		return nil, fmt.Errorf("connection info: %w", err)
	}
	return ci, nil
}

// InsecureFileError reports a connection file that others can read.
type InsecureFileError struct {
	Path string
	Mode fs.FileMode
}

func (e *InsecureFileError) Error() string {
	return fmt.Sprintf("connection file %s is accessible by other users (mode %04o): it holds secret keys; fix it with: chmod 600 %s",
		e.Path, e.Mode.Perm(), e.Path)
}

// ReadConnectionFile reads and checks a connection file. A file that
// users other than its owner can read or write is refused.
func ReadConnectionFile(path string) (*ConnectionInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, &InsecureFileError{Path: path, Mode: st.Mode()}
	}
	data := make([]byte, st.Size())
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	ci, err := ParseConnection(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ci, nil
}

// WriteConnectionFile writes ci to path with mode 0600, atomically: a
// reader sees the old file or the new one, never a part. Missing parent
// directories are made with mode 0700.
func WriteConnectionFile(path string, ci *ConnectionInfo) error {
	if err := ci.Check(); err != nil {
		return fmt.Errorf("refusing to write connection file %s: %w", path, err)
	}
	data, err := json.MarshalIndent(ci, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, append(data, '\n'), 0o600)
}

// WriteFileAtomic writes data to path through a temporary file in the
// same directory, renamed into place, with the given mode.
func WriteFileAtomic(path string, data []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
