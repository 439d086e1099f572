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

	"github.com/ipcluster/ipcluster/transport"
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
// Goroutines take turns at a poller (see transport.Poller). The leader
// waits as above. A follower parks in Go's network poller on a second
// epoll instance, follow, which watches the first and is armed
// (EPOLLIN|EPOLLONESHOT) only while nobody leads: while somebody does, no
// message wakes the follower's thread. Arming and disarming cost one
// epoll_ctl each, a fraction of the thread wake-up a hand-over would cost.
//
// ZMQ_FD is edge-triggered and says only "look again": the truth is
// ZMQ_EVENTS, which Wait reads for every socket before it waits (unless
// the socket is drained) and after every wake-up, so no message is missed
// however the edges fall. A send by a goroutine that does not lead may
// take an edge while the leader waits, or while nobody leads: the sender
// then looks itself (sent).

// newPoller returns a poller over socks. n.mu is held.
func (n *Network) newPoller(socks []*socket) (*poller, error) {
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
		if s.poller.Load() != nil {
			return fail("socket", errors.New("already watched by another poller"))
		}
		fd, err := s.s.GetFd()
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
	p.drainFn = p.drain
	if err := p.openFollow(); err != nil {
		syscall.Close(epfd)
		syscall.Close(p.wakeFD)
		return nil, err
	}
	for _, s := range socks {
		s.poller.Store(p)
	}
	n.pollers.Add(1)
	return p, nil
}

// openFollow makes the epoll instance followers wait on, armed: nobody
// leads yet.
func (p *poller) openFollow() error {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("zmqnet: epoll: %w", err)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | epollOneShot, Fd: int32(p.epfd)}
	if err := syscall.EpollCtl(fd, syscall.EPOLL_CTL_ADD, p.epfd, &ev); err != nil {
		syscall.Close(fd)
		return fmt.Errorf("zmqnet: poller: watch epoll: %w", err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return fmt.Errorf("zmqnet: poller: non-blocking epoll: %w", err)
	}
	p.followFile = os.NewFile(uintptr(fd), "zmqnet-follow")
	conn, err := p.followFile.SyscallConn()
	if err != nil {
		p.followFile.Close()
		return fmt.Errorf("zmqnet: poller: %w", err)
	}
	p.followFD, p.followConn, p.armed = fd, conn, true
	p.followFn = func(fd uintptr) bool {
		n, err := syscall.EpollWait(int(fd), p.followEv[:], 0)
		if err != nil {
			return err != syscall.EINTR
		}
		return n > 0
	}
	return nil
}

// epollET and epollOneShot are EPOLLET and EPOLLONESHOT as the uint32
// EpollEvent.Events holds.
const (
	epollET      = 1 << 31
	epollOneShot = 1 << 30
)

type poller struct {
	net      *Network
	socks    []*socket
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

	// Taking turns.
	followFD   int
	followFile *os.File
	followConn syscall.RawConn
	followFn   func(fd uintptr) bool
	followEv   [1]syscall.EpollEvent // used under followFile's read lock
	lmu        sync.Mutex
	leading    atomic.Bool // written under lmu
	waiting    atomic.Bool // the leader is in Wait
	armed      bool        // follow may fire; under lmu
	lclosed    bool        // under lmu

	beforeBlock func() // for tests: runs when Wait has looked and is about to block
}

func (p *poller) TryLead() bool {
	p.lmu.Lock()
	defer p.lmu.Unlock()
	if p.leading.Load() {
		return false
	}
	p.leading.Store(true)
	if p.armed {
		p.arm(false)
	}
	return true
}

func (p *poller) Unlead() {
	p.lmu.Lock()
	p.leading.Store(false)
	p.arm(true)
	p.lmu.Unlock()
	// Ring again for what the leader has not seen: a message waiting (its
	// edge came while the leader still looked), or a Wake that no Wait has
	// answered. A drained socket needs no look: a message makes an edge.
	// Looking after letting go, not before, closes a gap: a send by another
	// goroutine meanwhile either comes before this look, which then sees
	// what the send hid, or finds nobody leading and looks itself.
	ring := p.pending.Load()
	for _, s := range p.socks {
		if !s.drained.Load() {
			if in, _ := s.input(); in {
				ring = true
			}
		}
	}
	if ring {
		p.ring()
	}
}

func (p *poller) Follow() error {
	for {
		if err := p.followConn.Read(p.followFn); err != nil {
			return fmt.Errorf("zmqnet: follow: %w", transport.ErrClosed)
		}
		p.lmu.Lock()
		if !p.leading.Load() {
			p.leading.Store(true)
			p.armed = false // the one-shot has fired
			p.lmu.Unlock()
			// Take the edges that woke this follower, or the next Unlead
			// would fire at once for them again; the leader's Wait then
			// asks libzmq what they meant.
			if n, err := syscall.EpollWait(p.epfd, p.events, 0); err == nil {
				p.drainWake(n)
			}
			for _, s := range p.socks {
				s.drained.Store(false)
			}
			return nil
		}
		p.lmu.Unlock()
	}
}

// arm lets input wake a follower, or stops it. p.lmu is held.
func (p *poller) arm(on bool) {
	if p.lclosed {
		return
	}
	ev := syscall.EpollEvent{Events: epollOneShot, Fd: int32(p.epfd)}
	if on {
		ev.Events |= syscall.EPOLLIN
	}
	syscall.EpollCtl(p.followFD, syscall.EPOLL_CTL_MOD, p.epfd, &ev)
	p.armed = on
}

func (p *poller) Wait(timeout time.Duration) ([]bool, error) {
	p.waiting.Store(true)
	defer p.waiting.Store(false)
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	for first := true; ; first = false {
		found, err := look(p.socks, p.ready, first)
		if err != nil {
			return nil, err
		}
		// The flag, not the eventfd, says whether Wake was called: an
		// eventfd count may be left from a Wake this loop has already
		// answered, and is only drained.
		if p.pending.Swap(false) || found || timeout == 0 {
			return p.ready, nil
		}
		if timeout > 0 && !time.Now().Before(deadline) {
			return p.ready, nil
		}
		if p.beforeBlock != nil {
			p.beforeBlock()
		}
		if p.net.pollers.Load() <= p.net.blocking {
			if err := p.block(deadline); err != nil {
				return nil, err
			}
			continue
		}
		if p.file == nil {
			if err := p.park(); err != nil {
				return nil, err
			}
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

// park makes the epoll instance a descriptor of Go's network poller, the
// first time Wait parks: a poller that only ever blocks keeps it out, or
// every message would also wake whichever thread sleeps in Go's poller.
func (p *poller) park() error {
	// A non-blocking descriptor given to os.NewFile joins Go's network
	// poller; an epoll instance is readable when one of its own is.
	if err := syscall.SetNonblock(p.epfd, true); err != nil {
		return fmt.Errorf("zmqnet: poller: non-blocking epoll: %w", err)
	}
	p.file = os.NewFile(uintptr(p.epfd), "zmqnet-poller")
	conn, err := p.file.SyscallConn()
	if err != nil {
		return fmt.Errorf("zmqnet: poller: %w", err)
	}
	p.conn = conn
	return nil
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
	p.ring()
}

// ring makes the wake-up descriptor readable.
func (p *poller) ring() {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if !p.closed {
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		syscall.Write(p.wakeFD, one[:])
	}
}

func (p *poller) Close() error {
	p.lmu.Lock()
	if !p.lclosed {
		p.lclosed = true
		p.followFile.Close() // a parked Follow returns
	}
	p.lmu.Unlock()
	p.wmu.Lock()
	if p.closed {
		p.wmu.Unlock()
		return nil
	}
	p.closed = true
	syscall.Close(p.wakeFD)
	p.wmu.Unlock()
	for _, s := range p.socks {
		s.poller.CompareAndSwap(p, nil)
	}
	p.net.pollers.Add(-1)
	if p.file == nil {
		return syscall.Close(p.epfd)
	}
	return p.file.Close()
}
