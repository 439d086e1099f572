//go:build !linux || zmqpoll

package zmqnet

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/ipcluster/ipcluster/transport"
)

// newPoller returns a poller built on zmq_poll, which blocks the calling
// goroutine's thread in libzmq. Its wake-up pipe is an inproc PAIR of
// sockets: Wake sends a byte (once until the next Wait) under a mutex, and
// Wait polls the receiving end with the sockets. n.mu is held.
func (n *Network) newPoller(socks []*socket) (*poller, error) {
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
	p := &poller{zp: zmq.NewPoller(), n: len(socks), wakeR: r, wakeW: w}
	p.lcond = sync.NewCond(&p.lmu)
	for _, s := range socks {
		p.zp.Add(s.s, zmq.POLLIN)
	}
	p.zp.Add(r, zmq.POLLIN)
	return p, nil
}

// Here a follower takes the lead as soon as nobody holds it, and waits
// for input as the leader: goroutines take turns correctly, without the
// saving the Linux poller brings.

func (p *poller) TryLead() bool {
	p.lmu.Lock()
	defer p.lmu.Unlock()
	if p.leading {
		return false
	}
	p.leading = true
	return true
}

func (p *poller) Unlead() {
	p.lmu.Lock()
	p.leading = false
	p.lmu.Unlock()
	p.lcond.Broadcast()
}

func (p *poller) Follow() error {
	p.lmu.Lock()
	for p.leading && !p.lclosed {
		p.lcond.Wait()
	}
	if p.lclosed {
		p.lmu.Unlock()
		return fmt.Errorf("zmqnet: follow: %w", transport.ErrClosed)
	}
	p.leading = true
	p.lmu.Unlock()
	_, err := p.Wait(-1)
	return err
}

type poller struct {
	zp      *zmq.Poller
	n       int
	wakeR   *zmq.Socket
	wmu     sync.Mutex
	wakeW   *zmq.Socket
	pending atomic.Bool
	closed  bool // under wmu

	lmu     sync.Mutex
	lcond   *sync.Cond
	leading bool // under lmu
	lclosed bool // under lmu
}

func (p *poller) Wait(timeout time.Duration) ([]bool, error) {
	if timeout > 0 && timeout < time.Millisecond {
		timeout = time.Millisecond // zmq_poll counts whole milliseconds
	}
	polled, err := p.zp.PollAll(timeout)
	if err != nil {
		return nil, fmt.Errorf("zmqnet: poll: %w", err)
	}
	ready := make([]bool, p.n)
	for i := range p.n {
		ready[i] = polled[i].Events&zmq.POLLIN != 0
	}
	if polled[p.n].Events&zmq.POLLIN != 0 {
		// Drain first, then clear. Clearing first would lose a wake-up: a
		// Wake between the two would send a byte that the drain swallows,
		// leaving the flag set and the pipe empty, so no later Wake would
		// ring. A Wake that finds the flag still set here needs no byte:
		// its caller's work is seen by what this Wait's caller does next,
		// and the Swap (a read) orders that work before it.
		for {
			if _, err := p.wakeR.RecvBytes(zmq.DONTWAIT); err != nil {
				break
			}
		}
		p.pending.Swap(false)
	}
	return ready, nil
}

func (p *poller) Wake() {
	if p.pending.Swap(true) {
		return // a wake-up is already on its way
	}
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
	p.wmu.Lock()
	p.closed = true
	p.wakeW.Close()
	p.wmu.Unlock()
	return p.wakeR.Close()
}
