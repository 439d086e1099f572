package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Output capture redirects the process's file descriptors 1 and 2, so it
// is tested in a child process (this test binary, running only
// TestHelperCapture): the test binary's own output stays untouched, and
// the parent sees what reached the child's real stdout and stderr.

const captureHelperEnv = "IPCLUSTER_TEST_CAPTURE_HELPER"

// pattern returns n bytes of numbered lines, so that a lost or reordered
// piece shows.
func pattern(prefix string, n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%s %08d\n", prefix, i)
	}
	return b.Bytes()[:n]
}

// The content of the capture scenario, as the parent expects it.
var (
	bigOut = pattern("stdout", 200<<10) // well over a pipe's 64 KiB buffer
	bigErr = pattern("stderr", 100<<10)

	wantT1Stdout = "to task\nfrom child\n" + string(bigOut) + "last line\n"
	wantT1Stderr = "err to task\nchild err\n" + string(bigErr)
	wantT2Stdout = "second task"
)

// captured is what the child reports of one task's stream.
type captured struct {
	Bytes  int
	SHA256 string
	Head   string // the first bytes, for failure messages
}

type captureSummary struct {
	Second  string              // the error of a second startCapture
	Streams map[string]captured // by "task/stream"
	Empty   int                 // emits of no data
}

func summarize(data []byte) captured {
	sum := sha256.Sum256(data)
	return captured{Bytes: len(data), SHA256: hex.EncodeToString(sum[:]), Head: string(data[:min(len(data), 40)])}
}

const summaryMark = "CAPTURE SUMMARY: "

// TestHelperCapture is the child's side of TestCapture.
func TestHelperCapture(t *testing.T) {
	if os.Getenv(captureHelperEnv) != "1" {
		t.Skip("run by TestCapture in a child process")
	}
	var mu sync.Mutex
	streams := make(map[string][]byte)
	empty := 0
	emit := func(task, stream string, data []byte) {
		mu.Lock()
		defer mu.Unlock()
		if len(data) == 0 {
			empty++
		}
		streams[task+"/"+stream] = append(streams[task+"/"+stream], data...)
	}
	c, err := startCapture(emit)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			c.stop()
		}
	}()
	var summary captureSummary
	if c2, err := startCapture(emit); err == nil {
		c2.stop()
		summary.Second = "<nil>"
	} else {
		summary.Second = err.Error()
	}

	// Between tasks: to the original descriptors.
	os.Stdout.WriteString("before\n")
	os.Stderr.WriteString("before on stderr\n")

	c.begin("t1")
	fmt.Println("to task")
	fmt.Fprintln(os.Stderr, "err to task")
	cmd := exec.Command("sh", "-c", "echo from child; echo child err >&2")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr // the child inherits fds 1 and 2
	if err := cmd.Run(); err != nil {
		t.Errorf("child process: %v", err)
	}
	if n, err := os.Stdout.Write(bigOut); n != len(bigOut) || err != nil {
		t.Errorf("writing %d bytes to stdout: %d, %v", len(bigOut), n, err)
	}
	if n, err := os.Stderr.Write(bigErr); n != len(bigErr) || err != nil {
		t.Errorf("writing %d bytes to stderr: %d, %v", len(bigErr), n, err)
	}
	fmt.Println("last line")
	c.end()

	os.Stdout.WriteString("after\n")
	c.begin("t2")
	fmt.Print(wantT2Stdout)
	c.end()
	// A process that outlives its task and keeps the pipes open must
	// not keep stop from returning, nor make it lose what was written.
	bg := exec.Command("sleep", "3600")
	bg.Stdout, bg.Stderr = os.Stdout, os.Stderr
	if err := bg.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		bg.Process.Kill()
		bg.Wait()
	}()
	os.Stdout.WriteString("at the end\n")

	c.stop()
	stopped = true

	// After stop, emit must not be called any more, and the descriptors
	// are the original ones again: this goes to the parent directly.
	mu.Lock()
	summary.Streams = make(map[string]captured)
	for k, v := range streams {
		summary.Streams[k] = summarize(v)
	}
	summary.Empty = empty
	mu.Unlock()
	data, err := json.Marshal(summary)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%s%s\n", summaryMark, data)
}

func TestCapture(t *testing.T) {
	if os.Getenv(captureHelperEnv) != "" {
		t.Skip("in the child")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCapture$", "-test.count=1")
	cmd.Env = append(os.Environ(), captureHelperEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\nstdout:\n%.2000s\nstderr:\n%.2000s", err, stdout.String(), stderr.String())
	}
	out, errOut := stdout.String(), stderr.String()

	// Output between tasks reached the real descriptors, in order.
	mark := strings.Index(out, summaryMark)
	if mark < 0 {
		t.Fatalf("no summary from the child; stdout:\n%.2000s", out)
	}
	real := out[:mark]
	if real != "before\nafter\nat the end\n" {
		t.Errorf("the child's real stdout before its summary = %q, want before, after and at the end", real)
	}
	if errOut != "before on stderr\n" {
		t.Errorf("the child's real stderr = %.300q, want only what was written between tasks", errOut)
	}

	line, _, _ := strings.Cut(out[mark+len(summaryMark):], "\n")
	var sum captureSummary
	if err := json.Unmarshal([]byte(line), &sum); err != nil {
		t.Fatalf("summary %q: %v", line, err)
	}
	if !strings.Contains(sum.Second, "already captures") {
		t.Errorf("a second startCapture while one is active: %q, want a clear error", sum.Second)
	}
	want := map[string]captured{
		"t1/stdout": summarize([]byte(wantT1Stdout)),
		"t1/stderr": summarize([]byte(wantT1Stderr)),
		"t2/stdout": summarize([]byte(wantT2Stdout)),
	}
	for k, w := range want {
		got, ok := sum.Streams[k]
		if !ok {
			t.Errorf("nothing captured for %s", k)
			continue
		}
		if got != w {
			t.Errorf("%s: captured %d bytes starting %q (sha256 %.12s), want %d bytes starting %q (sha256 %.12s): output lost, reordered or misattributed",
				k, got.Bytes, got.Head, got.SHA256, w.Bytes, w.Head, w.SHA256)
		}
	}
	for k := range sum.Streams {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected capture %s: %+v", k, sum.Streams[k])
		}
	}
	if sum.Empty != 0 {
		t.Errorf("%d emits without data", sum.Empty)
	}
}

const crashHelperEnv = "IPCLUSTER_TEST_CRASH_HELPER"

// crashMessage is a panic message larger than a default pipe buffer.
var crashMessage = strings.Repeat("crash! ", (200<<10)/7)

// TestHelperCrash is the child's side of TestCaptureCrash: it dies of a
// panic in a goroutine while a task's output is captured.
func TestHelperCrash(t *testing.T) {
	if os.Getenv(crashHelperEnv) != "1" {
		t.Skip("run by TestCaptureCrash in a child process")
	}
	c, err := startCapture(func(task, stream string, data []byte) {})
	if err != nil {
		t.Fatal(err)
	}
	c.begin("t1")
	fmt.Fprintln(os.Stderr, "the task's own output")
	never := make(chan struct{})
	go func() { panic(crashMessage) }()
	<-never
}

// A crash while output is captured must still end the process, with its
// trace on the original stderr.
func TestCaptureCrash(t *testing.T) {
	if os.Getenv(crashHelperEnv) != "" {
		t.Skip("in the child")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperCrash$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashHelperEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("the crashing child hung (killed after the deadline); its stderr has %d bytes: %.200q", stderr.Len(), stderr.String())
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("the crashing child ended with %v, want exit status 2", err)
	}
	trace := stderr.String()
	if !strings.Contains(trace, "panic: "+crashMessage) || !strings.Contains(trace, "TestHelperCrash") {
		t.Fatalf("the crash trace did not reach the original stderr whole (%d bytes): %.200q ... %.200q",
			len(trace), trace, trace[max(0, len(trace)-200):])
	}
}
