// Package pbs submits, watches and cancels PBS batch jobs (PBS Pro,
// OpenPBS, Torque, and SLURM's Torque wrappers) with qsub, qstat and qdel.
// Their output is parsed by pure functions; the commands are tested
// against SLURM's wrappers on a real single-node SLURM.
package pbs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Error is a PBS command that failed, with what it said.
type Error struct {
	Command string
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%s: %v", e.Command, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Command, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Commands runs PBS's commands from $PATH.
type Commands struct{}

func run(ctx context.Context, dir, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return "", &Error{Command: name, Message: name + " not found: is this a PBS login node? (qsub, qstat and qdel must be in $PATH)", Err: err}
		}
		msg := strings.TrimSpace(errOut.String())
		if msg == "" {
			msg = strings.TrimSpace(out.String())
		}
		return out.String(), &Error{Command: name, Message: msg, Err: err}
	}
	return out.String(), nil
}

// Name is "pbs".
func (Commands) Name() string { return "pbs" }

// Submit writes script to a file in dir and submits it with qsub from dir;
// it returns the job id.
func (Commands) Submit(ctx context.Context, script, dir string) (string, error) {
	f, err := os.CreateTemp(dir, "ipcluster-*.pbs")
	if err != nil {
		return "", fmt.Errorf("pbs: writing the job script: %w", err)
	}
	if _, err := f.WriteString(script); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	defer os.Remove(f.Name()) // qsub keeps its own copy
	out, err := run(ctx, dir, "qsub", filepath.Base(f.Name()))
	if err != nil {
		return "", err
	}
	return ParseSubmit(out)
}

// ParseSubmit reads the job id qsub prints: "1234.server" (PBS), "1234"
// (SLURM's wrapper), "1234[].server" (an array).
func ParseSubmit(out string) (string, error) {
	line := strings.TrimSpace(out)
	if i := strings.LastIndexByte(line, '\n'); i >= 0 {
		line = strings.TrimSpace(line[i+1:])
	}
	num, _, _ := strings.Cut(line, ".")
	num = strings.TrimSuffix(num, "[]")
	if num == "" || strings.Trim(num, "0123456789") != "" {
		return "", fmt.Errorf("qsub printed %q, not a job id", strings.TrimSpace(out))
	}
	return line, nil
}

// Job is what qstat says of a job.
type Job struct {
	ID       string
	State    string // one letter: Q queued, R running, E exiting, H held, C or F finished; "" when unknown to qstat
	Exit     string // the exit status, when qstat gives it
	Finished bool
}

// Status returns what `qstat -f` says of job id; a job qstat no longer
// knows is Finished with no State.
func (Commands) Status(ctx context.Context, id string) (Job, error) {
	out, err := run(ctx, "", "qstat", "-f", id)
	if err != nil {
		var pe *Error
		if errors.As(err, &pe) && (strings.Contains(pe.Message, "Unknown Job") || strings.Contains(pe.Message, "Invalid job id") ||
			strings.Contains(pe.Message, "has finished")) {
			return Job{ID: id, Finished: true}, nil
		}
		if errors.As(err, &pe) && strings.TrimSpace(out) == "" && pe.Message == "" {
			return Job{ID: id, Finished: true}, nil // SLURM's wrapper says nothing of a purged job
		}
		return Job{}, err
	}
	return ParseStatus(id, out)
}

// ParseStatus reads `qstat -f` output: "key = value" attributes.
func ParseStatus(id, out string) (Job, error) {
	j := Job{ID: id}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " = ")
		if !ok {
			continue
		}
		switch strings.ToLower(k) {
		case "job_state":
			j.State = strings.TrimSpace(v)
		case "exit_status":
			j.Exit = strings.TrimSpace(v)
		}
	}
	if j.State == "" {
		return Job{}, fmt.Errorf("qstat -f printed no job_state for %s", id)
	}
	j.Finished = j.State == "C" || j.State == "F"
	return j, nil
}

// stateNames spells out PBS's one-letter states.
var stateNames = map[string]string{"Q": "QUEUED", "R": "RUNNING", "E": "EXITING", "H": "HELD", "C": "COMPLETED",
	"F": "FINISHED", "W": "WAITING", "T": "TRANSIT", "S": "SUSPENDED", "B": "BEGUN", "": "GONE"}

// Poll returns job id's state, whether it has finished, and its exit
// status if known.
func (c Commands) Poll(ctx context.Context, id string) (string, bool, string, error) {
	j, err := c.Status(ctx, id)
	if err != nil {
		return "", false, "", err
	}
	state := stateNames[j.State]
	if state == "" {
		state = j.State
	}
	reason := ""
	if j.Exit != "" && j.Exit != "0" {
		reason = "exit status " + j.Exit
		state = "FAILED"
	}
	return state, j.Finished, reason, nil
}

// Cancel cancels job id with qdel; a job that has ended is not an error.
func (Commands) Cancel(ctx context.Context, id string) error {
	_, err := run(ctx, "", "qdel", id)
	var pe *Error
	if errors.As(err, &pe) && (strings.Contains(pe.Message, "Unknown Job") || strings.Contains(pe.Message, "Invalid job id") ||
		strings.Contains(pe.Message, "already") || pe.Message == "") {
		return nil
	}
	return err
}

// DefaultTemplate is the job script ipcluster pbs submits unless given
// another (ipcluster template pbs prints it): a Go text/template over
// launchers.BatchJob. It asks for nodes and processors per node in the
// Torque style; for PBS Pro, replace that line with
// "#PBS -l select={{.N}}:ncpus=1:mpiprocs=1".
const DefaultTemplate = `#!/bin/sh
#PBS -N {{.JobName}}
#PBS -l nodes={{if .Nodes}}{{.Nodes}}{{else}}1{{end}}:ppn={{if .TasksPerNode}}{{.TasksPerNode}}{{else}}{{.N}}{{end}}
{{- if .Queue}}
#PBS -q {{.Queue}}
{{- end}}
{{- if .Account}}
#PBS -A {{.Account}}
{{- end}}
{{- if .Walltime}}
#PBS -l walltime={{.Walltime}}
{{- end}}
#PBS -o {{.Output}}
#PBS -j oe
#PBS -V
{{- range .Extra}}
#PBS {{.}}
{{- end}}

# What ipcluster needs in the job: the controller's address and the engine keys
# (or, with --controller-in-job, where the profile is).
{{- range $name, $value := .Env}}
export {{$name}}={{shquote $value}}
{{- end}}

cd {{shquote .WorkDir}}
{{if .ControllerCommand -}}
# The controller runs here, inside the job, and starts the engines.
{{.ControllerCommand}}
{{- else -}}
{{if .MPIExec}}{{.MPIExec}}{{else}}mpiexec{{end}} -n {{.N}} {{.EngineCommand}}
{{- end}}
`
