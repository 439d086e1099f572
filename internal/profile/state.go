package profile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/ipcluster/ipcluster/wire"
)

// State is what a running cluster records in cluster.json so that other
// commands (ipcluster stop, engines, ...) can find and manage it.
type State struct {
	Profile        string    `json:"profile"`
	ClusterID      string    `json:"cluster_id,omitempty"` // as in the connection files
	ControllerPID  int       `json:"controller_pid"`
	SupervisorPID  int       `json:"supervisor_pid"` // the `ipcluster start` process; may be the controller
	Started        time.Time `json:"started"`
	ClientEndpoint string    `json:"client_endpoint"`
	EngineEndpoint string    `json:"engine_endpoint"`
	Daemon         bool      `json:"daemon"` // the supervisor detached from its terminal
	Engines        []Engine  `json:"engines,omitempty"`
	Jobs           []Job     `json:"jobs,omitempty"`
	// Host is the machine the controller runs on. Batch names the batch
	// system and BatchID the batch job the controller runs inside, if
	// any (ipcluster slurm --controller-in-job): then ControllerPID is a
	// process of Host, and other hosts reach the cluster through its
	// connection files and the batch system.
	Host    string `json:"host,omitempty"`
	Batch   string `json:"batch,omitempty"`
	BatchID string `json:"batch_id,omitempty"`
}

// Engine is an engine process the supervisor launched.
type Engine struct {
	PID int    `json:"pid"`
	Log string `json:"log,omitempty"` // its log file
}

// Job is a group of engines launched together by one launcher.
type Job struct {
	ID      int       `json:"id,omitempty"`       // the controller's number, once its engines registered
	Key     string    `json:"key,omitempty"`      // the launcher's key ($IPCLUSTER_JOB)
	Kind    string    `json:"kind"`               // the launcher: "local", "mpiexec", "slurm", ...
	N       int       `json:"n,omitempty"`        // how many engines it starts
	BatchID string    `json:"batch_id,omitempty"` // the batch system's job id, if any
	PIDs    []int     `json:"pids,omitempty"`     // local processes, if any (for mpiexec, mpiexec itself)
	Owner   int       `json:"owner,omitempty"`    // the ipcluster process that launched it and waits on it
	Log     string    `json:"log,omitempty"`      // where its output goes
	Started time.Time `json:"started"`
}

// JobsDir holds a record of each job that joined the cluster from another
// ipcluster process, such as a second ipcluster mpiexec.
func (p *Profile) JobsDir() string { return filepath.Join(p.Dir, "jobs") }

// WriteJob records a job in JobsDir under its key, mode 0600.
func (p *Profile) WriteJob(j *Job) error {
	if err := os.MkdirAll(p.JobsDir(), 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	return wire.WriteFileAtomic(filepath.Join(p.JobsDir(), j.Key+".json"), append(data, '\n'), 0o600)
}

// RemoveJob removes a job's record; a missing one is not an error.
func (p *Profile) RemoveJob(key string) error {
	err := os.Remove(filepath.Join(p.JobsDir(), key+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Jobs returns the recorded jobs of JobsDir, skipping unreadable records.
func (p *Profile) Jobs() []Job {
	paths, _ := filepath.Glob(filepath.Join(p.JobsDir(), "*.json"))
	var out []Job
	for _, path := range paths {
		data, err := os.ReadFile(path)
		var j Job
		if err == nil && json.Unmarshal(data, &j) == nil {
			out = append(out, j)
		}
	}
	return out
}

// WriteState writes s to path as JSON with mode 0600, atomically: readers
// see the old file or the new one.
func WriteState(path string, s *State) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("cluster state: %w", err)
	}
	if err := wire.WriteFileAtomic(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write cluster state: %w", err)
	}
	return nil
}

// ReadState reads the state written by [WriteState]. If there is no file
// (no cluster has run, or it stopped cleanly) the error satisfies
// errors.Is(err, fs.ErrNotExist).
func ReadState(path string) (*State, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read cluster state: %w", err)
	}
	s := new(State)
	if err := json.Unmarshal(data, s); err != nil {
		return nil, fmt.Errorf("cluster state %s: %w", path, err)
	}
	return s, nil
}

// RemoveState removes the state file; a missing file is not an error.
func RemoveState(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove cluster state: %w", err)
	}
	return nil
}
