package engine

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// capturing is set while an engine of this process captures its output.
// The captured file descriptors, 1 and 2, belong to the process, so at
// most one engine per process can capture them.
var capturing atomic.Bool

// capture points the process's stdout and stderr at pipes for the
// engine's life, so that whatever a task writes, from Go, C or a child
// process that inherits them, reaches the task's client. Output written
// between tasks goes to the original descriptors.
//
// The pipes are made as large as the system allows. That spares writers
// some waiting, and it matters for a crash: the runtime writes the trace of
// a fatal panic to fd 2 (the pipe) before its copy to the original stderr
// (debug.SetCrashOutput), with every goroutine frozen, the readers too. A
// trace larger than the room left in the pipe blocks that write, and the
// process hangs instead of dying, with its trace lost. Linux's default
// pipe of 64 KiB is filled by one large panic message; the usual maximum,
// 1 MiB, makes that much less likely, but a trace larger than the pipe,
// while the engine captures, still hangs the process.
//
// Every read of the pipes happens under mu: a reader goroutine per pipe
// reads as data arrives, and at the start and the end of a task the
// executor drains both pipes itself. Since the reads and the forwarding
// are done under the same lock, when the executor's drain finds the pipes
// empty, all output written before (at the start of a task) or during the
// task (at its end) has been forwarded where it belongs.
type capture struct {
	emit  func(task, stream string, data []byte)
	saved [2]*os.File // the original stdout and stderr
	r, w  [2]*os.File
	wg    sync.WaitGroup

	mu   sync.Mutex
	task string // the task being captured, "" between tasks
	buf  []byte
}

var streamNames = [2]string{"stdout", "stderr"}

func startCapture(emit func(task, stream string, data []byte)) (*capture, error) {
	if !capturing.CompareAndSwap(false, true) {
		return nil, errors.New("engine: another engine of this process already captures its output")
	}
	c := &capture{emit: emit, buf: make([]byte, 64<<10)}
	for i, fd := range []int{1, 2} {
		dup, err := syscall.Dup(fd)
		if err != nil {
			c.undo(i)
			return nil, fmt.Errorf("engine: capturing output: %w", err)
		}
		syscall.CloseOnExec(dup)
		c.saved[i] = os.NewFile(uintptr(dup), "original "+streamNames[i])
		r, w, err := os.Pipe()
		if err != nil {
			c.saved[i].Close()
			c.undo(i)
			return nil, fmt.Errorf("engine: capturing output: %w", err)
		}
		// Fd puts the write end in blocking mode, so writers to fd 1 and 2
		// wait for a full pipe instead of failing with EAGAIN.
		if err := syscall.Dup3(int(w.Fd()), fd, 0); err != nil {
			r.Close()
			w.Close()
			c.saved[i].Close()
			c.undo(i)
			return nil, fmt.Errorf("engine: capturing output: %w", err)
		}
		growPipe(int(w.Fd()))
		c.r[i], c.w[i] = r, w
	}
	debug.SetCrashOutput(c.saved[1], debug.CrashOptions{}) // a crash's trace must not die in a pipe
	for i := range 2 {
		c.wg.Go(func() { c.read(i) })
	}
	return c, nil
}

// growPipe asks for the largest buffer an unprivileged process may give
// the pipe of fd, up to 8 MiB; it keeps the default if refused.
func growPipe(fd int) {
	size := 1 << 20
	if b, err := os.ReadFile("/proc/sys/fs/pipe-max-size"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n > 0 {
			size = min(n, 8<<20)
		}
	}
	for ; size > 64<<10; size /= 2 {
		if _, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_SETPIPE_SZ, uintptr(size)); errno == 0 {
			return
		}
	}
}

// undo restores the first n descriptors after a failed start.
func (c *capture) undo(n int) {
	for i := range n {
		syscall.Dup3(int(c.saved[i].Fd()), i+1, 0)
		c.r[i].Close()
		c.w[i].Close()
		c.saved[i].Close()
	}
	capturing.Store(false)
}

// read forwards output as it arrives, until the pipe's writers are gone.
func (c *capture) read(i int) {
	rc, err := c.r[i].SyscallConn()
	if err != nil {
		return
	}
	rc.Read(func(fd uintptr) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.drainLocked(i, int(fd))
	})
}

// drainLocked reads pipe i until it is empty and reports whether it has
// reached its end.
func (c *capture) drainLocked(i, fd int) bool {
	for {
		n, err := syscall.Read(fd, c.buf)
		if n > 0 {
			if c.task != "" {
				c.emit(c.task, streamNames[i], append([]byte(nil), c.buf[:n]...))
			} else {
				c.saved[i].Write(c.buf[:n])
			}
			continue
		}
		if err == syscall.EINTR {
			continue
		}
		return err != syscall.EAGAIN // n == 0 is the end; other errors end it too
	}
}

// begin attributes output from now on to task. What was written before,
// and is still in the pipes, goes where it belongs first: to the original
// descriptors.
func (c *capture) begin(task string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.task = ""
	c.drainAllLocked()
	c.task = task
}

// end forwards what task wrote and not yet forwarded, then stops
// attributing output to it.
func (c *capture) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drainAllLocked()
	c.task = ""
}

// drainAllLocked forwards whatever is in the pipes now.
func (c *capture) drainAllLocked() {
	for i := range 2 {
		if rc, err := c.r[i].SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { c.drainLocked(i, int(fd)) })
		}
	}
}

// stop restores the original descriptors and waits for the readers.
func (c *capture) stop() {
	for i, fd := range []int{1, 2} {
		syscall.Dup3(int(c.saved[i].Fd()), fd, 0)
		c.w[i].Close() // with fd 1 and 2 restored, the pipes' last writers are gone
	}
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		// A child process of some task still holds a copy of the pipes:
		// forward what is in them, and closing the read ends ends the
		// readers anyway. (That child gets EPIPE or SIGPIPE if it writes
		// again.)
		c.mu.Lock()
		c.drainAllLocked()
		c.mu.Unlock()
		c.r[0].Close()
		c.r[1].Close()
		<-done
	}
	for i := range 2 {
		c.r[i].Close()
		c.saved[i].Close()
	}
	debug.SetCrashOutput(nil, debug.CrashOptions{})
	capturing.Store(false)
}
