package main

import (
	"bufio"
	"context"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipcluster/ipcluster/client"
)

// A console session piped in: local Starlark with rc, magics, cells on
// the engines, and errors that do not end the session.
func TestConsolePiped(t *testing.T) {
	e := newEnv(t)
	e.mustRun("start", "-n", "2", "--daemon")
	ctx := ctxT(t, time.Minute)
	cmd := e.command(ctx, "console")
	cmd.Stdin = strings.NewReader(strings.Join([]string{
		"rc.ids",
		"%px x = engine.id * 10",
		"%px print(x)",
		`rc[:].pull("x")`,
		"%%px",
		"y = x + 1",
		"y",
		"",
		"%px 1 // 0",
		"def twice(n):",
		"    return 2 * n",
		"",
		"twice(21)",
	}, "\n") + "\n")
	out, err := cmd.CombinedOutput()
	text := string(out)
	if err == nil || !strings.Contains(text, "1 inputs failed") {
		t.Errorf("the failed input: %v", err)
	}
	for _, want := range []string{
		"[0, 1]\n",
		"[0] 0\n[1] 10\n",
		"{0: 0, 1: 10}\n",
		"[0] Out: 1\n[1] Out: 11\n",
		"[0] StarlarkError: <px 4>:1:3: floored division by zero",
		"42\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the console's output lacks %q:\n%s", want, text)
		}
	}
}

// Ctrl-C (SIGINT) interrupts the engines' running cell; the console goes on.
func TestConsoleInterrupt(t *testing.T) {
	e := newEnv(t)
	e.mustRun("start", "-n", "2", "--daemon")
	ctx := ctxT(t, time.Minute)
	cmd := e.command(ctx, "console")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	io.WriteString(stdin, "rc.ids\n%%px\nwhile True:\n    pass\n\n")
	if !lines.Scan() || lines.Text() != "[0, 1]" {
		t.Fatalf("first output %q", lines.Text())
	}
	// Wait until both engines run the cell, then press Ctrl-C.
	c := e.connect()
	waitBusy(t, c, 2)
	cmd.Process.Signal(syscall.SIGINT)
	var got []string
	for len(got) < 3 && lines.Scan() {
		got = append(got, lines.Text())
	}
	want := []string{"[0] Interrupted: interrupted by a client", "[1] Interrupted: interrupted by a client", "error: the cell failed on 2 of 2 engines"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("after Ctrl-C: %q, want %q", got, want)
	}
	io.WriteString(stdin, "rc.ids\n")
	stdin.Close()
	if !lines.Scan() || lines.Text() != "[0, 1]" {
		t.Errorf("the console did not go on: %q", lines.Text())
	}
	cmd.Wait()
}

// waitBusy waits until n engines are busy.
func waitBusy(t *testing.T, c *client.Client, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		engines, err := c.Engines(ctx)
		if err != nil {
			t.Fatal(err)
		}
		busy := 0
		for _, e := range engines {
			if e.State == "busy" {
				busy++
			}
		}
		if busy >= n {
			return
		}
		time.Sleep(5 * time.Millisecond) // polling a condition
	}
}
