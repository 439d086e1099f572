//go:build linux && !zmqpoll

package zmqnet

import (
	"syscall"
	"testing"
	"time"

	"github.com/ipcluster/ipcluster/transport"
)

// A send processes the socket's pending commands, as libzmq does at most
// once a millisecond: it may take the signal of a message that came
// meanwhile, so that its edge never reaches the poller. These tests make
// that happen at the worst moment, by doing what such a send does inside
// libzmq (process the commands) and then what Send does after it.
func takeEdge(t *testing.T, s *socket) {
	t.Helper()
	s.mu.Lock()
	s.drained.Store(false)
	if _, err := s.s.GetEvents(); err != nil {
		t.Fatal(err)
	}
	s.mu.Unlock()
	s.poller.Load().sent(s)
}

// edgePair returns a router and a dealer connected to it, the dealer
// drained, and a poller over the dealer.
func edgePair(t *testing.T, opts Options) (r, d *socket, p *poller) {
	t.Helper()
	n, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	rs, ep, err := n.Bind("tcp://127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := n.Dial(ep, []byte("d"), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, d = rs.(*socket), ds.(*socket)
	tp, err := n.NewPoller(d)
	if err != nil {
		t.Fatal(err)
	}
	p = tp.(*poller)
	rp, err := n.NewPoller(r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		rp.Close()
		d.Close()
		r.Close()
		n.Close()
	})
	// The router learns the dealer's id from a first message.
	if err := d.Send([][]byte{[]byte("hello")}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := r.Recv(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the router heard nothing within 10 s")
		}
		rp.Wait(time.Until(deadline))
	}
	for {
		if _, err := d.Recv(); err == transport.ErrAgain {
			break
		}
	}
	return r, d, p
}

// arrive sends a message from the router to the dealer and returns once
// its signal has reached the dealer's ZMQ_FD, unseen by anyone yet.
func arrive(t *testing.T, r, d *socket) {
	t.Helper()
	if err := r.Send([][]byte{[]byte("d"), []byte("answer")}); err != nil {
		t.Fatal(err)
	}
	fd, err := d.s.GetFd()
	if err != nil {
		t.Fatal(err)
	}
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(ep)
	if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}); err != nil {
		t.Fatal(err)
	}
	events := make([]syscall.EpollEvent, 1)
	for {
		n, err := syscall.EpollWait(ep, events, 10_000)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n == 0 {
			t.Fatalf("the message's signal did not reach the dealer within 10 s (%v)", err)
		}
		return
	}
}

func TestSendTakesEdge(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"blocking", Options{}},
		{"parking", Options{BlockingPollers: -1}},
	} {
		// The leader has looked and found nothing; before it blocks, a
		// message comes and another goroutine's send takes its signal.
		t.Run(tc.name+"/leader waiting", func(t *testing.T) {
			r, d, p := edgePair(t, tc.opts)
			if !p.TryLead() {
				t.Fatal("TryLead failed")
			}
			p.beforeBlock = func() {
				p.beforeBlock = nil
				arrive(t, r, d)
				takeEdge(t, d)
			}
			// Without a limit: one would have Wait look again when it
			// passes, hiding the miss.
			waited := make(chan bool, 1)
			go func() {
				ready, err := p.Wait(-1)
				waited <- err == nil && ready[0]
			}()
			select {
			case ok := <-waited:
				if !ok {
					t.Fatal("the leader's Wait returned without the message")
				}
			case <-time.After(10 * time.Second):
				p.Wake() // frees the Wait
				<-waited
				t.Fatal("the leader's Wait missed a message whose edge a send took")
			}
		})
		// Nobody leads: a message comes, a send takes its signal, and a
		// follower must still be told.
		t.Run(tc.name+"/nobody leading", func(t *testing.T) {
			r, d, p := edgePair(t, tc.opts)
			arrive(t, r, d)
			takeEdge(t, d)
			followed := make(chan error, 1)
			go func() { followed <- p.Follow() }()
			select {
			case err := <-followed:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				p.Close() // frees the follower
				<-followed
				t.Fatal("no follower took the lead for a message whose edge a send took")
			}
			ready, err := p.Wait(0)
			if err != nil || !ready[0] {
				t.Fatalf("the follower's Wait = %v, %v", ready, err)
			}
		})
	}
}
