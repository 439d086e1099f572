package profile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv tells a re-executed test binary to act as TestHelperProcess:
// "lock DIR" takes the lock of the profile in DIR, "wait" does nothing;
// both then print "ready" and wait for stdin to close.
const helperEnv = "IPCLUSTER_PROFILE_TEST_HELPER"

func TestHelperProcess(t *testing.T) {
	mode, ok := os.LookupEnv(helperEnv)
	if !ok {
		return
	}
	var l *Lock
	if dir, ok := strings.CutPrefix(mode, "lock "); ok {
		var err error
		if l, err = (&Profile{Name: filepath.Base(dir), Dir: dir}).Lock(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin) // until the parent closes it or dies
	if l != nil {
		l.Release()
	}
	os.Exit(0)
}

// startHelper runs TestHelperProcess in a child process, returning once it
// has printed "ready". The child is killed and reaped at the end of the test.
func startHelper(t *testing.T, mode string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	for sc := bufio.NewScanner(stdout); sc.Scan(); {
		if sc.Text() == "ready" {
			return cmd
		}
	}
	t.Fatalf("helper process exited without getting ready")
	return nil
}

func TestLockSameProcess(t *testing.T) {
	p := testProfile(t, "default")
	if _, running, err := p.Running(); running || err != nil {
		t.Fatalf("Running() before any lock = %v, %v", running, err)
	}
	if _, err := os.Stat(p.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Running() created the profile directory: %v", err)
	}

	l, err := p.Lock()
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(p.LockPath()); string(data) != strconv.Itoa(os.Getpid())+"\n" {
		t.Errorf("lock file holds %q; want our pid", data)
	}
	if pid, running, err := p.Running(); pid != os.Getpid() || !running || err != nil {
		t.Errorf("Running() = %d, %v, %v; want our pid, true", pid, running, err)
	}
	// flock locks belong to open file descriptions: a second open conflicts.
	l2, err := p.Lock()
	if re, ok := errors.AsType[*RunningError](err); !ok || re.PID != os.Getpid() || re.Profile != "default" {
		t.Errorf("second Lock() = %v, %v; want a *RunningError with our pid", l2, err)
	}

	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Errorf("second Release: %v", err)
	}
	if pid, running, err := p.Running(); running || err != nil {
		t.Errorf("Running() after Release = %d, %v, %v", pid, running, err)
	}
	l, err = p.Lock()
	if err != nil {
		t.Fatalf("Lock() after Release: %v", err)
	}
	l.Release()
}

func TestLockUnidentifiedHolder(t *testing.T) {
	p := testProfile(t, "default")
	if err := p.Ensure(); err != nil {
		t.Fatal(err)
	}
	// A holder that has written no pid (as a new holder does for a moment)
	// and stays.
	f, err := os.OpenFile(p.LockPath(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if pid, running, err := p.Running(); pid != 0 || !running || err != nil {
		t.Errorf("Running() = %d, %v, %v; want 0, true", pid, running, err)
	}
	_, err = p.Lock()
	if re, ok := errors.AsType[*RunningError](err); !ok || re.PID != 0 {
		t.Errorf("Lock() = %v; want a *RunningError without a pid", err)
	}
}

func TestLockOtherProcess(t *testing.T) {
	p := testProfile(t, "gpu")
	child := startHelper(t, "lock "+p.Dir)
	childPID := child.Process.Pid

	if pid, running, err := p.Running(); pid != childPID || !running || err != nil {
		t.Errorf("Running() = %d, %v, %v; want %d, true", pid, running, err, childPID)
	}
	l, err := p.Lock()
	re, ok := errors.AsType[*RunningError](err)
	if !ok || re.PID != childPID {
		t.Fatalf("Lock() = %v, %v; want a *RunningError with pid %d", l, err, childPID)
	}
	want := fmt.Sprintf(`a cluster is already running for profile "gpu" (pid %d); stop it with: ipcluster stop --profile gpu`, childPID)
	if err.Error() != want {
		t.Errorf("error %q\nwant %q", err, want)
	}

	// The kernel drops the lock of a killed holder.
	if err := syscall.Kill(childPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := child.Wait(); err == nil {
		t.Error("killed child exited cleanly")
	}
	if Alive(childPID) {
		t.Errorf("Alive(%d) after the child was reaped", childPID)
	}
	if pid, running, err := p.Running(); running || err != nil {
		t.Errorf("Running() after the holder died = %d, %v, %v", pid, running, err)
	}
	l, err = p.Lock()
	if err != nil {
		t.Fatalf("Lock() after the holder died: %v", err)
	}
	defer l.Release()
	if data, _ := os.ReadFile(p.LockPath()); string(data) != strconv.Itoa(os.Getpid())+"\n" {
		t.Errorf("lock file holds %q; want our pid", data)
	}
}

func TestLockNotInherited(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("no /proc")
	}
	p := testProfile(t, "default")
	l, err := p.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	hasLockOpen := func(pid int) bool {
		fdDir := fmt.Sprintf("/proc/%d/fd", pid)
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			t.Fatal(err)
		}
		for _, fd := range fds {
			if target, _ := os.Readlink(filepath.Join(fdDir, fd.Name())); target == p.LockPath() {
				return true
			}
		}
		return false
	}
	if !hasLockOpen(os.Getpid()) {
		t.Fatal("cannot see the lock file among our open files")
	}
	if child := startHelper(t, "wait"); hasLockOpen(child.Process.Pid) {
		t.Error("a child process inherited the lock file")
	}
}

func TestRunningError(t *testing.T) {
	tests := []struct {
		err  RunningError
		want string
	}{
		{RunningError{"default", 1234}, `a cluster is already running for profile "default" (pid 1234); stop it with: ipcluster stop`},
		{RunningError{"big", 7}, `a cluster is already running for profile "big" (pid 7); stop it with: ipcluster stop --profile big`},
		{RunningError{"default", 0}, `a cluster is already running for profile "default"; stop it with: ipcluster stop`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("got  %q\nwant %q", got, tt.want)
		}
	}
}

func TestAlive(t *testing.T) {
	done := exec.Command(os.Args[0], "-test.run=^$")
	if err := done.Run(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		pid  int
		want bool
	}{
		{os.Getpid(), true},
		{1, true}, // EPERM when not root
		{0, false},
		{-1, false},
		{done.Process.Pid, false},
	}
	for _, tt := range tests {
		if got := Alive(tt.pid); got != tt.want {
			t.Errorf("Alive(%d) = %v, want %v", tt.pid, got, tt.want)
		}
	}
}

// A process that has exited but is not yet reaped (a zombie, as a daemon
// is until init reaps it) is not alive.
func TestAliveZombie(t *testing.T) {
	child := exec.Command("/bin/sh", "-c", "exit 0")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Wait()
	// Until the child has exited it may be alive; once it has, it is a
	// zombie until Wait, and must not count as alive.
	deadline := time.Now().Add(30 * time.Second)
	for Alive(child.Process.Pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the exited, unreaped child %d still counts as alive", child.Process.Pid)
		}
		time.Sleep(time.Millisecond) // polling a condition
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", child.Process.Pid)); err != nil {
		t.Fatalf("the child was reaped before the test could see its zombie: %v", err)
	}
}
