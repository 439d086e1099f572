//go:build !linux || zmqpoll

package zmqnet

/*
#cgo !windows pkg-config: libzmq
#include <zmq.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/ipcluster/ipcluster/transport"
)

// This poller waits in zmq_poll, which blocks the calling goroutine's
// thread in libzmq, on each socket's ZMQ_FD (not on the sockets
// themselves: zmq_poll would then use them, while other goroutines may be
// sending) and on the receiving end of a wake-up pipe, an inproc PAIR of
// sockets: Wake sends a byte (once until the next Wait) under a mutex.
// ZMQ_FD is readable while the socket has commands that libzmq has not
// processed; asking ZMQ_EVENTS processes them, and tells the truth.
//
// Here a follower takes the lead as soon as nobody holds it, and waits
// for input as the leader: goroutines take turns correctly, without the
// saving the Linux poller brings.

// newPoller returns a poller over socks. n.mu is held.
func (n *Network) newPoller(socks []*socket) (*poller, error) {
	items := make([]C.zmq_pollitem_t, len(socks)+1)
	for i, s := range socks {
		if s.poller.Load() != nil {
			return nil, errors.New("zmqnet: poller: socket already watched by another poller")
		}
		fd, err := s.s.GetFd()
		if err != nil {
			return nil, fmt.Errorf("zmqnet: poller: socket descriptor: %w", err)
		}
		items[i].fd = C.int(fd)
		items[i].events = C.ZMQ_POLLIN
	}
	n.pipes++
	addr := fmt.Sprintf("inproc://ipcluster-wake-%d", n.pipes)
	r, err := n.ctx.NewSocket(zmq.PAIR)
	if err != nil {
		return nil, err
	}
	w, err := n.ctx.NewSocket(zmq.PAIR)
	if err != nil {
		r.Close()
		return nil, err
	}
	for _, s := range []*zmq.Socket{r, w} {
		s.SetLinger(0)
	}
	if err := r.Bind(addr); err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	if err := w.Connect(addr); err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	items[len(socks)].socket = rawSocket(r)
	items[len(socks)].events = C.ZMQ_POLLIN
	p := &poller{socks: socks, items: items, ready: make([]bool, len(socks)), wakeR: r, wakeW: w}
	p.lcond = sync.NewCond(&p.lmu)
	for _, s := range socks {
		s.poller.Store(p)
	}
	return p, nil
}

func (p *poller) TryLead() bool {
	p.lmu.Lock()
	defer p.lmu.Unlock()
	if p.leading.Load() {
		return false
	}
	p.leading.Store(true)
	return true
}

func (p *poller) Unlead() {
	p.lmu.Lock()
	p.leading.Store(false)
	p.lmu.Unlock()
	p.lcond.Broadcast()
}

func (p *poller) Follow() error {
	p.lmu.Lock()
	for p.leading.Load() && !p.lclosed {
		p.lcond.Wait()
	}
	if p.lclosed {
		p.lmu.Unlock()
		return fmt.Errorf("zmqnet: follow: %w", transport.ErrClosed)
	}
	p.leading.Store(true)
	p.lmu.Unlock()
	_, err := p.Wait(-1)
	return err
}

type poller struct {
	socks   []*socket
	items   []C.zmq_pollitem_t // the sockets' descriptors, then wakeR
	ready   []bool
	wakeR   *zmq.Socket // used by the leader only
	wmu     sync.Mutex
	wakeW   *zmq.Socket
	pending atomic.Bool
	closed  bool // under wmu

	lmu     sync.Mutex
	lcond   *sync.Cond
	leading atomic.Bool // written under lmu
	waiting atomic.Bool // the leader is in Wait
	lclosed bool        // under lmu
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
		if p.pending.Swap(false) || found || timeout == 0 {
			return p.ready, nil
		}
		ms := C.long(-1)
		if timeout > 0 {
			left := time.Until(deadline)
			if left <= 0 {
				return p.ready, nil
			}
			ms = C.long(max(1, (left+time.Millisecond-1)/time.Millisecond)) // whole milliseconds, rounded up
		}
		if rc, err := C.zmq_poll(&p.items[0], C.int(len(p.items)), ms); rc < 0 && err != syscall.EINTR {
			return nil, fmt.Errorf("zmqnet: poll: %w", err)
		}
		if p.items[len(p.socks)].revents&C.ZMQ_POLLIN != 0 {
			// Drain only: the pending flag, read above, says whether Wake
			// was called, and a byte may be left from a Wake already
			// answered.
			for {
				if _, err := p.wakeR.RecvBytes(zmq.DONTWAIT); err != nil {
					break
				}
			}
		}
	}
}

func (p *poller) Wake() {
	if p.pending.Swap(true) {
		return // a wake-up is already on its way
	}
	p.ring()
}

// ring sends a byte down the wake-up pipe.
func (p *poller) ring() {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if !p.closed {
		p.wakeW.SendBytes([]byte{0}, zmq.DONTWAIT)
	}
}

func (p *poller) Close() error {
	p.lmu.Lock()
	p.lclosed = true
	p.lmu.Unlock()
	p.lcond.Broadcast()
	for _, s := range p.socks {
		s.poller.CompareAndSwap(p, nil)
	}
	p.wmu.Lock()
	if p.closed {
		p.wmu.Unlock()
		return nil
	}
	p.closed = true
	p.wakeW.Close()
	p.wmu.Unlock()
	return p.wakeR.Close()
}
