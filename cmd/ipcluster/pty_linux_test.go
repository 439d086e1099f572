package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// openPTY opens a pseudo-terminal: the master, and the slave for a child.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatal(e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatal(e)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	ws := struct{ row, col, x, y uint16 }{24, 100, 0, 0}
	syscall.Syscall(syscall.SYS_IOCTL, s.Fd(), syscall.TIOCSWINSZ, uintptr(unsafe.Pointer(&ws)))
	return m, s
}

// screen collects what a terminal shows.
type screen struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	cond *sync.Cond
}

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	s.cond.Broadcast()
	return len(p), nil
}

// waitFor waits until the screen shows text after offset from, and
// returns the offset after it.
func (s *screen) waitFor(t *testing.T, from int, text string) int {
	t.Helper()
	deadline := time.AfterFunc(30*time.Second, func() { s.mu.Lock(); s.cond.Broadcast(); s.mu.Unlock() })
	defer deadline.Stop()
	start := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if i := strings.Index(s.buf.String()[from:], text); i >= 0 {
			return from + i + len(text)
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("the terminal never showed %q; it shows:\n%q", text, s.buf.String()[from:])
		}
		s.cond.Wait()
	}
}

// The console on a real pseudo-terminal: line editing, Tab completion,
// Ctrl-C at the prompt and during a cell, history kept in the profile,
// Ctrl-D to leave.
func TestConsoleTerminal(t *testing.T) {
	e := newEnv(t)
	e.mustRun("start", "-n", "2", "--daemon")
	master, slave := openPTY(t)
	defer master.Close()
	cmd := e.command(ctxT(t, time.Minute), "console")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	scr := &screen{}
	scr.cond = sync.NewCond(&scr.mu)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			scr.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	type step struct{ keys, want string }
	at := scr.waitFor(t, 0, "ipcluster> ")
	for _, s := range []step{
		{"%px x = engine.id + 5\r", "\r\n"},
		{"rc.pul\t(\"x\")\r", "{0: 5, 1: 6}"},                  // Tab completes rc.pull
		{"abc\x7f\x7fd = 1\r", "\r\n"},                         // backspace edits the line: ad = 1
		{"ad\r", "1\r\n"},                                      // ad is defined
		{"half typed\x03", "KeyboardInterrupt"},                // Ctrl-C at the prompt
		{"%%px\rwhile True:\r    pass\r\r", "...        \r\n"}, // a cell that never ends
		{"\x03", "error: the cell failed on 2 of 2 engines"},   // Ctrl-C interrupts it
		{"\x1b[A\x1b[A\x1b[A\r", "[0, 1]"},                     // history: up three times
	} {
		if s.keys == "\x1b[A\x1b[A\x1b[A\r" {
			master.WriteString("rc.ids\r")
			at = scr.waitFor(t, at, "[0, 1]")
			at = scr.waitFor(t, at, "ipcluster> ")
			s.keys = "\x1b[A\r" // the line before: rc.ids again
		}
		if s.keys == "\x03" {
			waitBusy(t, e.connect(), 2)
		}
		master.WriteString(s.keys)
		at = scr.waitFor(t, at, s.want)
		if !strings.HasPrefix(s.keys, "%%px") {
			// Keys typed before the prompt would reach a terminal in its
			// normal mode, where Ctrl-C is a signal.
			at = scr.waitFor(t, at, "ipcluster> ")
		}
	}
	master.WriteString("\x04") // Ctrl-D
	if err := cmd.Wait(); err != nil {
		t.Errorf("the console ended with %v", err)
	}
	hist, _ := os.ReadFile(filepath.Join(e.profile().Dir, "console_history"))
	for _, want := range []string{"%px x = engine.id + 5\n", "rc.pull(\"x\")\n", "ad = 1\n"} {
		if !strings.Contains(string(hist), want) {
			t.Errorf("the history file lacks %q:\n%s", want, hist)
		}
	}
}
