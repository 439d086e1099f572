package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// ipcluster px runs a cell on engines, prints their output prefixed by
// engine, and fails if any engine's cell failed.
func TestPx(t *testing.T) {
	e := newEnv(t)
	e.mustRun("start", "-n", "2", "--daemon")

	out := e.mustRun("px", "x = engine.id * 10\nprint('engine', engine.id, 'has', x)\nx + 1")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	slices.Sort(lines)
	want := []string{"[0] Out: 1", "[0] engine 0 has 0", "[1] Out: 11", "[1] engine 1 has 10"}
	if !slices.Equal(lines, want) {
		t.Errorf("px printed %q, want %q", lines, want)
	}

	// The namespace lasts; a file names the cell in errors.
	script := filepath.Join(t.TempDir(), "check.star")
	os.WriteFile(script, []byte("y = x + 1\nz = [1][y]\n"), 0o600)
	out, err := e.ipcluster("px", "--targets", "1", "-f", script)
	if err == nil {
		t.Fatalf("a failing cell exited 0:\n%s", out)
	}
	for _, want := range []string{"[1] StarlarkError: check.star:2:8: list index 11 out of range", "[1]     z = [1][y]", "the cell failed on 1 of 1 engines"} {
		if !strings.Contains(out, want) {
			t.Errorf("px output lacks %q:\n%s", want, out)
		}
	}
	// What the failed cell assigned stays, on engine 1 only.
	if out, err := e.ipcluster("px", "--job", "1", "y"); err == nil || !strings.Contains(out, "[1] Out: 11") ||
		!strings.Contains(out, "[0] NameError: <cell 2>:1:1: undefined: y") {
		t.Errorf("px --job 1 y: %v\n%s", err, out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"px"}, "no code"},
		{[]string{"px", "--targets", "1-x", "1"}, `"1-x" is not a range`},
		{[]string{"px", "--targets", "0", "--job", "1", "1"}, "give one"},
		{[]string{"px", "--targets", "7", "1"}, "engine 7 is not registered"},
		{[]string{"px", "-f", script, "1"}, "not both"},
	} {
		if out, err := e.ipcluster(tc.args...); err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("ipcluster %q: %v\n%s\nwant an error with %q", tc.args, err, out, tc.want)
		}
	}
}

// A wait of more than a second shows progress: on a terminal a bar, here
// (a pipe) plain lines on standard error.
func TestPxProgress(t *testing.T) {
	e := newEnv(t)
	e.mustRun("start", "-n", "2", "--daemon")
	out := e.mustRun("px", "if engine.id == 1:\n    call('sleep', 2.0)\nprint('done')")
	for _, want := range []string{"tasks done: 1/2, 1 busy\n", "[0] done\n", "[1] done\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("px output lacks %q:\n%s", want, out)
		}
	}
}
