package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipcluster/ipcluster/client"
	"github.com/ipcluster/ipcluster/engine"
	"github.com/ipcluster/ipcluster/internal/clustertest"
)

// An engine with CaptureOutput, end to end: the tasks' output reaches the
// client that asked for them, and output between tasks the process's real
// stdout. Run in a child process, as capture takes the process's fds 1
// and 2.

const engineCaptureEnv = "IPCLUSTER_TEST_ENGINE_CAPTURE_HELPER"

type engineCaptureReport struct {
	Stdout, Stderr []string // per task
	Second         string   // Run of a second capturing engine
}

const engineCaptureMark = "ENGINE CAPTURE REPORT: "

func TestHelperEngineCapture(t *testing.T) {
	if os.Getenv(engineCaptureEnv) != "1" {
		t.Skip("run by TestEngineCapture in a child process")
	}
	cl := clustertest.Start(t, clustertest.Options{Engines: 0})
	e, err := engine.New(engine.Options{Connection: cl.Controller.EngineInfo(), Network: cl.Net, CaptureOutput: true})
	if err != nil {
		t.Fatal(err)
	}
	e.Register("talk", func(n int) (int, error) {
		fmt.Printf("hello %d\n", n)
		fmt.Fprintf(os.Stderr, "warning %d\n", n)
		cmd := exec.Command("sh", "-c", `echo "child $0"`, fmt.Sprint(n))
		cmd.Stdout = os.Stdout
		return n, cmd.Run()
	})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	waitRegistered(t, e)

	var report engineCaptureReport
	other, err := engine.New(engine.Options{Connection: cl.Controller.EngineInfo(), Network: cl.Net, CaptureOutput: true})
	if err != nil {
		t.Fatal(err)
	}
	report.Second = fmt.Sprint(other.Run(ctx))

	c := cl.Connect(t)
	tctx := testCtx(t)
	for n := range 3 {
		fmt.Printf("between tasks %d\n", n) // to the real stdout
		r, err := c.DirectView(client.Engines(0)).Apply(tctx, "talk", n)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := r.Value(tctx); err != nil || v != int64(n) {
			t.Fatalf("talk(%d) = %v, %v", n, v, err)
		}
		md := r.Metadata()[0]
		report.Stdout = append(report.Stdout, md.Stdout)
		report.Stderr = append(report.Stderr, md.Stderr)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(report)
	fmt.Printf("%s%s\n", engineCaptureMark, data)
}

func TestEngineCapture(t *testing.T) {
	if os.Getenv(engineCaptureEnv) != "" {
		t.Skip("in the child")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperEngineCapture$", "-test.count=1")
	cmd.Env = append(os.Environ(), engineCaptureEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\nstdout:\n%.2000s\nstderr:\n%.2000s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	mark := strings.Index(out, engineCaptureMark)
	if mark < 0 {
		t.Fatalf("no report from the child; stdout:\n%.2000s", out)
	}
	if real := out[:mark]; real != "between tasks 0\nbetween tasks 1\nbetween tasks 2\n" {
		t.Errorf("the child's real stdout = %q, want only what it wrote between tasks", real)
	}
	if stderr.Len() != 0 {
		t.Errorf("the child's real stderr = %.300q, want nothing", stderr.String())
	}
	line, _, _ := strings.Cut(out[mark+len(engineCaptureMark):], "\n")
	var report engineCaptureReport
	if err := json.Unmarshal([]byte(line), &report); err != nil {
		t.Fatalf("report %q: %v", line, err)
	}
	var wantOut, wantErr []string
	for n := range 3 {
		wantOut = append(wantOut, fmt.Sprintf("hello %d\nchild %d\n", n, n))
		wantErr = append(wantErr, fmt.Sprintf("warning %d\n", n))
	}
	if !slices.Equal(report.Stdout, wantOut) || !slices.Equal(report.Stderr, wantErr) {
		t.Errorf("the client got stdout %q and stderr %q, want %q and %q", report.Stdout, report.Stderr, wantOut, wantErr)
	}
	if !strings.Contains(report.Second, "already captures") {
		t.Errorf("a second capturing engine in the process: %q", report.Second)
	}
}
