package profile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// RunningError reports that a cluster already holds a profile's lock.
type RunningError struct {
	Profile string
	PID     int // the holder's pid; 0 if it could not be read
}

func (e *RunningError) Error() string {
	msg := fmt.Sprintf("a cluster is already running for profile %q", e.Profile)
	if e.PID > 0 {
		msg += fmt.Sprintf(" (pid %d)", e.PID)
	}
	msg += "; stop it with: ipcluster stop"
	if e.Profile != DefaultName {
		msg += " --profile " + e.Profile
	}
	return msg
}

// Lock is a held cluster lock: an flock(2) on cluster.lock, which the
// kernel releases when its process exits, however it exits. The file
// holds the holder's pid.
type Lock struct {
	f *os.File
}

// Lock takes the profile's cluster lock, creating the profile directory as
// needed, and records this process's pid in it. If another holder has it,
// the error is a [*RunningError]. Two Locks conflict even within one
// process.
//
// The lock lasts until [Lock.Release] or the process's exit, provided the
// *Lock stays reachable: a collected *Lock closes its file and so drops
// the lock. The file is not inherited by child processes.
func (p *Profile) Lock() (*Lock, error) {
	if err := p.Ensure(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p.LockPath(), os.O_RDWR|os.O_CREATE, 0o600) // O_CLOEXEC
	if err != nil {
		return nil, fmt.Errorf("cluster lock: %w", err)
	}
	for wait := time.Millisecond; ; wait *= 2 {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("cluster lock %s: %w", p.LockPath(), err)
		}
		// A holder that is not a live process named in the file is
		// momentarily there: a Running probe, or a new holder that has not
		// yet written its pid. Give it a moment.
		pid := readPID(p.LockPath())
		if Alive(pid) || wait > 64*time.Millisecond {
			f.Close()
			return nil, &RunningError{Profile: p.Name, PID: pid}
		}
		time.Sleep(wait)
	}
	l := &Lock{f: f}
	if err := f.Truncate(0); err != nil {
		return nil, errors.Join(fmt.Errorf("cluster lock: %w", err), l.Release())
	}
	if _, err := f.WriteString(strconv.Itoa(os.Getpid()) + "\n"); err != nil {
		return nil, errors.Join(fmt.Errorf("cluster lock: %w", err), l.Release())
	}
	return l, nil
}

// Release clears the pid and releases the lock. Releasing again does
// nothing.
func (l *Lock) Release() error {
	if l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	return errors.Join(f.Truncate(0), syscall.Flock(int(f.Fd()), syscall.LOCK_UN), f.Close())
}

// Running reports whether a cluster holds p's lock, and the pid recorded
// by the holder (0 if unknown). It tests the lock by taking it briefly
// (shared), and creates nothing.
func (p *Profile) Running() (pid int, running bool, err error) {
	f, err := os.Open(p.LockPath())
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("cluster lock: %w", err)
	}
	defer f.Close()
	switch err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); {
	case err == nil:
		return 0, false, nil // closing f releases it
	case errors.Is(err, syscall.EWOULDBLOCK):
		return readPID(p.LockPath()), true, nil
	default:
		return 0, false, fmt.Errorf("cluster lock %s: %w", p.LockPath(), err)
	}
}

// readPID returns the pid in a lock file, or 0.
func readPID(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// Alive reports whether a process with this pid exists (kill(pid, 0)
// succeeds or fails with EPERM) and, where /proc tells, is not a zombie.
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	// A zombie has exited: it only waits for its parent (for a daemon,
	// init, which in a container may take its time) to reap it.
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return false
		}
	}
	return true
}
