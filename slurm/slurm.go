// Package slurm submits, watches and cancels SLURM batch jobs with the
// scheduler's own commands: sbatch, scontrol and scancel. Their
// output is parsed by pure functions, tested on the odd cases (job arrays,
// federated cluster suffixes, multi-line errors); the commands themselves
// are tested against a real single-node SLURM.
package slurm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// State is a job's state as SLURM names it (PENDING, RUNNING, COMPLETED,
// CANCELLED, FAILED, TIMEOUT, ...). Gone means SLURM no longer knows the
// job (it ended long enough ago to be purged).
type State string

// States the package acts on.
const (
	Pending   State = "PENDING"
	Running   State = "RUNNING"
	Completed State = "COMPLETED"
	Cancelled State = "CANCELLED"
	Failed    State = "FAILED"
	Timeout   State = "TIMEOUT"
	Gone      State = "GONE"
)

// Finished reports whether a job in state s will not run any more.
func (s State) Finished() bool {
	switch s {
	case Pending, Running, "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING", "SIGNALING", "STAGE_OUT":
		return false
	}
	return true
}

// Error is a command of SLURM that failed, with what it said.
type Error struct {
	Command string // such as "sbatch"
	Message string // its standard error, trimmed
	Err     error  // how it exited
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%s: %v", e.Command, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Command, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Commands runs SLURM's commands. The zero value runs them from $PATH.
type Commands struct {
	// Dir, if set, is where the commands are (their directory).
	Dir string
}

func (c Commands) run(ctx context.Context, dir, stdin, name string, args ...string) (string, error) {
	path := name
	if c.Dir != "" {
		path = c.Dir + "/" + name
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return "", &Error{Command: name, Message: fmt.Sprintf("%s not found: is this a SLURM login node? (the SLURM client commands must be in $PATH)", name), Err: err}
		}
		return out.String(), &Error{Command: name, Message: strings.TrimSpace(errOut.String()), Err: err}
	}
	return out.String(), nil
}

// Submit submits a job script with sbatch, from the directory dir (the
// job's working directory unless the script says otherwise), and returns
// the job id.
func (c Commands) Submit(ctx context.Context, script, dir string) (string, error) {
	out, err := c.run(ctx, dir, script, "sbatch", "--parsable")
	if err != nil {
		return "", err
	}
	return ParseSubmit(out)
}

// ParseSubmit reads the job id sbatch --parsable prints: "1234", or
// "1234;cluster" on a federation.
func ParseSubmit(out string) (string, error) {
	line := strings.TrimSpace(out)
	if i := strings.LastIndexByte(line, '\n'); i >= 0 {
		line = strings.TrimSpace(line[i+1:]) // after any warnings
	}
	id, _, _ := strings.Cut(line, ";")
	if !validID(id) {
		return "", fmt.Errorf("sbatch printed %q, not a job id", strings.TrimSpace(out))
	}
	return id, nil
}

// validID reports whether id looks like a SLURM job id: digits, for an
// array task "1234_7", or a heterogeneous job component "1234+1".
func validID(id string) bool {
	if id == "" {
		return false
	}
	for i, r := range id {
		if r >= '0' && r <= '9' {
			continue
		}
		if (r == '_' || r == '+') && i > 0 && i < len(id)-1 {
			continue
		}
		return false
	}
	return true
}

// Job is what SLURM says of a job.
type Job struct {
	ID     string
	State  State
	Reason string // why it is pending, or how it ended
	StdOut string // its output file
	Nodes  string // its node list
}

// Status returns what scontrol says of job id; a job SLURM has forgotten
// (purged MinJobAge after it ended) is Gone.
func (c Commands) Status(ctx context.Context, id string) (Job, error) {
	out, err := c.run(ctx, "", "", "scontrol", "show", "job", "--oneliner", id)
	if err != nil {
		var se *Error
		if errors.As(err, &se) && strings.Contains(se.Message, "Invalid job id") {
			return Job{ID: id, State: Gone}, nil
		}
		return Job{}, err
	}
	return ParseShowJob(out)
}

// ParseShowJob reads `scontrol show job --oneliner` output: Key=Value
// fields separated by spaces (of the first record: an array's first task).
func ParseShowJob(out string) (Job, error) {
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	f := fields(line)
	id := f["JobId"]
	if id == "" {
		return Job{}, fmt.Errorf("scontrol printed no JobId: %q", line)
	}
	if task := f["ArrayTaskId"]; task != "" && f["ArrayJobId"] != "" {
		id = f["ArrayJobId"] + "_" + task
	}
	state, _, _ := strings.Cut(f["JobState"], " ") // "CANCELLED by 0" elsewhere
	return Job{ID: id, State: State(state), Reason: f["Reason"], StdOut: f["StdOut"], Nodes: f["NodeList"]}, nil
}

// fields splits "A=1 B=x y=z C=" into a map; a value runs to the next
// space (values with '=' in them, such as TRES=cpu=1,mem=2G, are kept).
func fields(line string) map[string]string {
	m := map[string]string{}
	for _, tok := range strings.Fields(line) {
		if k, v, ok := strings.Cut(tok, "="); ok {
			m[k] = v
		}
	}
	return m
}

// Cancel cancels job id (scancel). A job that has already ended is not an
// error.
func (c Commands) Cancel(ctx context.Context, id string) error {
	_, err := c.run(ctx, "", "", "scancel", id)
	var se *Error
	if errors.As(err, &se) && (strings.Contains(se.Message, "already completing or completed") || strings.Contains(se.Message, "Invalid job id")) {
		return nil
	}
	return err
}

// Name is "slurm".
func (Commands) Name() string { return "slurm" }

// Poll returns job id's state, whether it has finished, and SLURM's reason.
func (c Commands) Poll(ctx context.Context, id string) (state string, finished bool, reason string, err error) {
	j, err := c.Status(ctx, id)
	if err != nil {
		return "", false, "", err
	}
	return string(j.State), j.State.Finished(), j.Reason, nil
}

// DefaultTemplate is the job script ipcluster slurm submits unless given
// another (ipcluster template slurm prints it). It is a Go text/template
// over launchers.BatchJob.
const DefaultTemplate = `#!/bin/sh
#SBATCH --job-name={{.JobName}}
#SBATCH --ntasks={{.N}}
{{- if .Nodes}}
#SBATCH --nodes={{.Nodes}}
{{- end}}
{{- if .TasksPerNode}}
#SBATCH --ntasks-per-node={{.TasksPerNode}}
{{- end}}
{{- if .Partition}}
#SBATCH --partition={{.Partition}}
{{- end}}
{{- if .Account}}
#SBATCH --account={{.Account}}
{{- end}}
{{- if .QOS}}
#SBATCH --qos={{.QOS}}
{{- end}}
{{- if .Walltime}}
#SBATCH --time={{.Walltime}}
{{- end}}
#SBATCH --output={{.Output}}
{{- range .Extra}}
#SBATCH {{.}}
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
{{- else if .MPIExec -}}
{{.MPIExec}} -n {{.N}} {{.EngineCommand}}
{{- else -}}
srun --ntasks={{.N}} --label {{.EngineCommand}}
{{- end}}
`
