//go:build linux && !zmqpoll

package zmqnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// The Linux poller waits on an epoll instance of its own. Each ZeroMQ
// socket exposes a file descriptor (ZMQ_FD) that becomes readable when the
// socket's state may have changed; the poller watches those and an eventfd
// for Wake.
//
// It waits in one of two ways. While its network has few pollers (a
// controller, a client, an engine process) it blocks its thread in
// epoll_wait, as zmq_poll would: the thread keeps its P, and a message
// wakes the goroutine with no scheduler hand-off, the fastest wake-up
// there is. When a process holds many pollers (many engines in one
// process) a thread each would cost more than it saves, so it parks the
// goroutine in Go's network poller instead, on the epoll instance's own
// descriptor, like any network connection.
//
// ZMQ_FD is edge-triggered and says only "look again": the truth is
// ZMQ_EVENTS, which Wait reads for every socket before it waits and after
// every wake-up, so no message is missed however the edges fall.

// newPoller returns a poller over socks. n.mu is held.
func (n *Network) newPoller(socks []*zmq.Socket) (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("zmqnet: epoll: %w", err)
	}
	wake, _, errno := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if errno != 0 {
		syscall.Close(epfd)
		return nil, fmt.Errorf("zmqnet: eventfd: %w", errno)
	}
	p := &poller{net: n, socks: socks, ready: make([]bool, len(socks)), epfd: epfd, wakeFD: int(wake),
		events: make([]syscall.EpollEvent, len(socks)+1)}
	fail := func(what string, err error) (*poller, error) {
		syscall.Close(epfd)
		syscall.Close(p.wakeFD)
		return nil, fmt.Errorf("zmqnet: poller: %s: %w", what, err)
	}
	add := func(fd int) error {
		return syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, fd,
			&syscall.EpollEvent{Events: syscall.EPOLLIN | epollET, Fd: int32(fd)})
	}
	for _, s := range socks {
		fd, err := s.GetFd()
		if err != nil {
			return fail("socket descriptor", err)
		}
		if err := add(fd); err != nil {
			return fail("watch socket", err)
		}
	}
	if err := add(p.wakeFD); err != nil {
		return fail("watch eventfd", err)
	}
	// A non-blocking descriptor given to os.NewFile joins Go's network
	// poller; an epoll instance is readable when one of its own is.
	if err := syscall.SetNonblock(epfd, true); err != nil {
		return fail("non-blocking epoll", err)
	}
	p.file = os.NewFile(uintptr(epfd), "zmqnet-poller")
	if p.conn, err = p.file.SyscallConn(); err != nil {
		p.file.Close()
		syscall.Close(p.wakeFD)
		return nil, fmt.Errorf("zmqnet: poller: %w", err)
	}
	p.drainFn = p.drain
	n.pollers.Add(1)
	return p, nil
}

// epollET is EPOLLET as the uint32 EpollEvent.Events holds.
const epollET = 1 << 31

type poller struct {
	net      *Network
	socks    []*zmq.Socket
	epfd     int
	ready    []bool
	file     *os.File // the epoll instance
	conn     syscall.RawConn
	events   []syscall.EpollEvent
	drainFn  func(fd uintptr) bool
	deadline time.Time // the file's read deadline, as last set

	wakeFD  int
	pending atomic.Bool // a Wake not yet seen by Wait
	wmu     sync.Mutex  // orders Wake's write against Close
	closed  bool        // under wmu
}

func (p *poller) Wait(timeout time.Duration) ([]bool, error) {
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		any := false
		for i, s := range p.socks {
			ev, err := s.GetEvents()
			if err != nil {
				return nil, fmt.Errorf("zmqnet: poll: %w", err)
			}
			p.ready[i] = ev&zmq.POLLIN != 0
			any = any || p.ready[i]
		}
		// The flag, not the eventfd, says whether Wake was called: an
		// eventfd count may be left from a Wake this loop has already
		// answered, and is only drained.
		if p.pending.Swap(false) || any || timeout == 0 {
			return p.ready, nil
		}
		if timeout > 0 && !time.Now().Before(deadline) {
			return p.ready, nil
		}
		if p.net.pollers.Load() <= p.net.blocking {
			if err := p.block(deadline); err != nil {
				return nil, err
			}
			continue
		}
		if !deadline.Equal(p.deadline) {
			if err := p.file.SetReadDeadline(deadline); err != nil {
				return nil, fmt.Errorf("zmqnet: poll: %w", err)
			}
			p.deadline = deadline
		}
		if err := p.conn.Read(p.drainFn); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("zmqnet: poll: %w", err)
		}
	}
}

// block waits in epoll_wait until an event or the deadline (zero: none).
func (p *poller) block(deadline time.Time) error {
	ms := -1
	if !deadline.IsZero() {
		// Whole milliseconds, rounded up: waking early would only spin.
		ms = int((time.Until(deadline) + time.Millisecond - 1) / time.Millisecond)
		ms = max(ms, 1)
	}
	n, err := syscall.EpollWait(p.epfd, p.events, ms)
	if err != nil {
		if err == syscall.EINTR {
			return nil
		}
		return fmt.Errorf("zmqnet: poll: %w", err)
	}
	p.drainWake(n)
	return nil
}

// drain takes the epoll instance's events without waiting, reads the
// eventfd if it rang, and reports whether there was any event. Go's
// poller parks the caller while it reports none.
func (p *poller) drain(fd uintptr) bool {
	n, err := syscall.EpollWait(int(fd), p.events, 0)
	if err != nil {
		return err != syscall.EINTR // anything else: let Wait look again
	}
	p.drainWake(n)
	return n > 0
}

// drainWake reads the eventfd if it is among the first n events.
func (p *poller) drainWake(n int) {
	for _, ev := range p.events[:n] {
		if int(ev.Fd) == p.wakeFD {
			var b [8]byte
			syscall.Read(p.wakeFD, b[:])
		}
	}
}

func (p *poller) Wake() {
	if p.pending.Swap(true) {
		return // a wake-up is already on its way
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if !p.closed {
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		syscall.Write(p.wakeFD, one[:])
	}
}

func (p *poller) Close() error {
	p.wmu.Lock()
	if p.closed {
		p.wmu.Unlock()
		return nil
	}
	p.closed = true
	syscall.Close(p.wakeFD)
	p.wmu.Unlock()
	p.net.pollers.Add(-1)
	return p.file.Close()
}
