package launchers

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestLocalStartStop(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var exits []Process
	l := &Local{
		N: 3, LogDir: dir, Env: []string{"GREETING=hello"},
		Command: []string{"/bin/sh", "-c", `echo "$GREETING from $$"; exec sleep 3600`},
		OnExit:  func(p Process) { mu.Lock(); exits = append(exits, p); mu.Unlock() },
	}
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	procs := l.Processes()
	if len(procs) != 3 {
		t.Fatalf("%d processes", len(procs))
	}
	for i, p := range procs {
		if p.Exited || p.PID <= 0 || p.Log != filepath.Join(dir, "engine-"+string(rune('0'+i))+".log") {
			t.Errorf("process %d: %+v", i, p)
		}
		// Each child leads its own process group.
		if pgid, err := syscall.Getpgid(p.PID); err != nil || pgid != p.PID {
			t.Errorf("process %d: pgid %d, %v", p.PID, pgid, err)
		}
	}
	for _, p := range procs {
		waitLog(t, p.Log, "hello from ")
	}
	if err := l.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	<-l.Done()
	mu.Lock()
	defer mu.Unlock()
	if len(exits) != 3 {
		t.Fatalf("OnExit called %d times", len(exits))
	}
	for _, p := range l.Processes() {
		if !p.Exited || p.Err == nil || !strings.Contains(p.Err.Error(), "terminated") {
			t.Errorf("after Stop: %+v", p)
		}
		log, _ := os.ReadFile(p.Log)
		if !strings.HasPrefix(string(log), "hello from ") {
			t.Errorf("log %s: %q", p.Log, log)
		}
	}
}

func TestLocalStopKillsStubborn(t *testing.T) {
	l := &Local{N: 2, Command: []string{"/bin/sh", "-c", `trap "" TERM; echo ready; while :; do sleep 1; done`}, LogDir: t.TempDir()}
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Wait until both have installed their trap (they print "ready" after it).
	for _, p := range l.Processes() {
		waitLog(t, p.Log, "ready")
	}
	if err := l.Stop(100 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	for _, p := range l.Processes() {
		if !p.Exited || p.Err == nil || !strings.Contains(p.Err.Error(), "killed") {
			t.Errorf("a process that ignores SIGTERM: %+v", p)
		}
	}
}

func TestLocalErrors(t *testing.T) {
	if err := (&Local{N: 0}).Start(context.Background()); err == nil || !strings.Contains(err.Error(), "at least one") {
		t.Errorf("N=0: %v", err)
	}
	l := &Local{N: 2, Command: []string{"/nonexistent/engine"}}
	if err := l.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "/nonexistent/engine") {
		t.Errorf("missing program: %v", err)
	}
}

// waitLog polls a log file until it contains text.
func waitLog(t *testing.T, path, text string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(path); strings.Contains(string(b), text) {
			return
		}
		time.Sleep(2 * time.Millisecond) // polling a condition
	}
	t.Fatalf("%s never said %q", path, text)
}
