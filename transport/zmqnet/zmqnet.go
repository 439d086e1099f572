// Package zmqnet is the ZeroMQ implementation of transport.Network, over
// libzmq through github.com/pebbe/zmq4.
//
// Each Network has its own libzmq context and, once a secured socket is
// bound, its own ZAP handler bound in that context. (pebbe's zmq.AuthStart
// serves only the default context: a CURVE server made in any other context
// would accept every key.) Sockets have no high-water mark, so sending
// never blocks (bounding queues is the protocol's job), and a bounded
// linger: closing the Network waits at most that long for queued messages
// to leave, so a last goodbye gets out and a dead peer cannot hang it.
package zmqnet

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/ipcluster/ipcluster/transport"
)

// Network makes ZeroMQ sockets in a context of its own.
type Network struct {
	ctx      *zmq.Context
	linger   time.Duration
	blocking int32 // see Options.BlockingPollers

	mu     sync.Mutex
	zap    *zapHandler
	pipes  int // inproc wake pipes made, for unique names
	closed bool

	pollers atomic.Int32 // open pollers
}

// Options tune a Network.
type Options struct {
	// IOThreads is the number of libzmq I/O threads (default 1). CURVE
	// encryption runs on them, so bulk transfers gain from more.
	IOThreads int
	// Linger bounds how long Close waits for queued messages to be sent
	// (default 500 ms; negative means not at all).
	Linger time.Duration
	// BlockingPollers is how many of the network's pollers may each hold a
	// thread while they wait, for the fastest wake-up; with more, they wait
	// in Go's network poller instead (Linux; default 8, negative: none).
	BlockingPollers int
}

// New returns a Network with a fresh libzmq context.
func New(opts Options) (*Network, error) {
	if !zmq.HasCurve() {
		return nil, errors.New("zmqnet: libzmq was built without CURVE security (it needs libsodium)")
	}
	ctx, err := zmq.NewContext()
	if err != nil {
		return nil, fmt.Errorf("zmqnet: new context: %w", err)
	}
	if opts.IOThreads > 0 {
		if err := ctx.SetIoThreads(opts.IOThreads); err != nil {
			ctx.Term()
			return nil, fmt.Errorf("zmqnet: io threads: %w", err)
		}
	}
	linger := opts.Linger
	switch {
	case linger == 0:
		linger = 500 * time.Millisecond
	case linger < 0:
		linger = 0
	}
	blocking := opts.BlockingPollers
	switch {
	case blocking == 0:
		blocking = 8
	case blocking < 0:
		blocking = 0
	}
	return &Network{ctx: ctx, linger: linger, blocking: int32(blocking)}, nil
}

var _ transport.Network = (*Network)(nil)

// listenBacklog is the TCP accept queue asked for on bound sockets.
const listenBacklog = 4096

// Bind implements transport.Network. An endpoint port of 0 is bound to a
// free port, as "*" is.
func (n *Network) Bind(endpoint string, sec *transport.ServerSecurity) (transport.Socket, string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, "", transport.ErrClosed
	}
	ep := endpoint
	if strings.HasPrefix(ep, "tcp://") && strings.HasSuffix(ep, ":0") {
		ep = strings.TrimSuffix(ep, ":0") + ":*"
	}
	s, err := n.ctx.NewSocket(zmq.ROUTER)
	if err != nil {
		return nil, "", fmt.Errorf("zmqnet: new socket: %w", err)
	}
	fail := func(what string, err error) (transport.Socket, string, error) {
		s.Close()
		return nil, "", fmt.Errorf("zmqnet: bind %s: %s: %w", endpoint, what, err)
	}
	if err := n.commonOptions(s, ep); err != nil {
		return fail("options", err)
	}
	if err := s.SetRouterMandatory(1); err != nil {
		return fail("router mandatory", err)
	}
	if err := s.SetRouterHandover(true); err != nil {
		return fail("router handover", err)
	}
	// A thousand engines connect at once when a big job starts; with
	// libzmq's default backlog of 100 the kernel drops their SYNs and they
	// wait out TCP's retransmission back-off (1 s, 3 s, 7 s, ...). The
	// kernel caps this at net.core.somaxconn.
	if err := s.SetBacklog(listenBacklog); err != nil {
		return fail("backlog", err)
	}
	if sec != nil {
		if sec.Allow == nil {
			return fail("security", errors.New("no Allow function"))
		}
		if err := n.startZAP(); err != nil {
			return fail("authentication handler", err)
		}
		domain := sec.Domain
		if domain == "" {
			domain = "default"
		}
		if err := n.zap.add(domain, sec); err != nil {
			return fail("security", err)
		}
		for _, set := range []func() error{
			func() error { return s.SetZapDomain(domain) },
			func() error { return s.SetCurveServer(1) },
			func() error { return s.SetCurveSecretkey(sec.Secret) },
		} {
			if err := set(); err != nil {
				return fail("CURVE keys", err)
			}
		}
	}
	if err := s.Bind(ep); err != nil {
		return fail("listen", err)
	}
	bound, err := s.GetLastEndpoint()
	if err != nil {
		return fail("endpoint", err)
	}
	return newSocket(s), bound, nil
}

// Dial implements transport.Network.
func (n *Network) Dial(endpoint string, id []byte, sec *transport.ClientSecurity) (transport.Socket, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, transport.ErrClosed
	}
	s, err := n.ctx.NewSocket(zmq.DEALER)
	if err != nil {
		return nil, fmt.Errorf("zmqnet: new socket: %w", err)
	}
	fail := func(what string, err error) (transport.Socket, error) {
		s.Close()
		return nil, fmt.Errorf("zmqnet: connect %s: %s: %w", endpoint, what, err)
	}
	if err := n.commonOptions(s, endpoint); err != nil {
		return fail("options", err)
	}
	if len(id) > 0 {
		if err := s.SetIdentity(string(id)); err != nil {
			return fail("routing id", err)
		}
	}
	if err := s.SetReconnectIvl(100 * time.Millisecond); err != nil {
		return fail("reconnect interval", err)
	}
	if err := s.SetReconnectIvlMax(2 * time.Second); err != nil {
		return fail("reconnect interval", err)
	}
	if sec != nil {
		for _, set := range []func() error{
			func() error { return s.SetCurveServerkey(sec.ServerKey) },
			func() error { return s.SetCurvePublickey(sec.Public) },
			func() error { return s.SetCurveSecretkey(sec.Secret) },
		} {
			if err := set(); err != nil {
				return fail("CURVE keys", err)
			}
		}
	}
	if err := s.Connect(endpoint); err != nil {
		return fail("connect", err)
	}
	return newSocket(s), nil
}

// commonOptions applies what every socket gets.
func (n *Network) commonOptions(s *zmq.Socket, endpoint string) error {
	for _, set := range []func() error{
		func() error { return s.SetLinger(n.linger) },
		func() error { return s.SetSndhwm(0) },
		func() error { return s.SetRcvhwm(0) },
		func() error { return s.SetTcpKeepalive(1) },
	} {
		if err := set(); err != nil {
			return err
		}
	}
	if host := hostOf(endpoint); strings.Contains(host, ":") || host == "*" {
		return s.SetIpv6(true)
	}
	return nil
}

// hostOf returns the host part of a tcp endpoint, without brackets.
func hostOf(endpoint string) string {
	rest, ok := strings.CutPrefix(endpoint, "tcp://")
	if !ok {
		return ""
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		rest = rest[:i]
	}
	return strings.Trim(rest, "[]")
}

// NewPoller implements transport.Network.
func (n *Network) NewPoller(socks ...transport.Socket) (transport.Poller, error) {
	zs := make([]*socket, len(socks))
	for i, s := range socks {
		s, ok := s.(*socket)
		if !ok {
			return nil, fmt.Errorf("zmqnet: cannot poll a %T", socks[i])
		}
		zs[i] = s
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, transport.ErrClosed
	}
	return n.newPoller(zs)
}

// Close terminates the context. All sockets and pollers must be closed
// first; the ZAP handler is stopped here.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	zap := n.zap
	n.mu.Unlock()
	err := n.ctx.Term() // makes the ZAP handler's Recv fail with ETERM; it then closes its socket
	if zap != nil {
		<-zap.done
	}
	return err
}

// socket is a ZeroMQ socket that any goroutine may send on. libzmq lets
// a socket move between threads but not be used by two at once: mu
// serialises every call into it. A send may take the edge of a message
// that came meanwhile (see drained), so each send tells the socket's
// poller, which makes sure that somebody looks (poller.sent).
type socket struct {
	mu     sync.Mutex
	s      *zmq.Socket
	r      *receiver
	closed bool // under mu

	// drained is set, under mu, when libzmq had no message for the socket
	// and no command left to process: a message then comes with a new
	// edge of ZMQ_FD. Anything that may take an edge unseen (a send, a
	// wait) clears it. A poller skips asking libzmq about a drained socket
	// before it waits (a poll and a getpid each time).
	drained atomic.Bool
	poller  atomic.Pointer[poller] // the poller watching the socket, if any
}

func newSocket(s *zmq.Socket) *socket { return &socket{s: s, r: newReceiver(s)} }

func (s *socket) Send(frames [][]byte) error {
	s.mu.Lock()
	err := s.send(frames)
	s.mu.Unlock()
	if p := s.poller.Load(); p != nil {
		p.sent(s)
	}
	return err
}

// send sends frames. s.mu is held.
func (s *socket) send(frames [][]byte) error {
	if s.closed {
		return transport.ErrClosed
	}
	// Sending makes libzmq process the socket's commands, which may take
	// the signal of a message that came since the last receive: its edge
	// is then gone, and only ZMQ_EVENTS tells of it.
	s.drained.Store(false)
	for i, f := range frames {
		flag := zmq.DONTWAIT
		if i < len(frames)-1 {
			flag |= zmq.SNDMORE
		}
		if _, err := s.s.SendBytes(f, flag); err != nil {
			if zmq.AsErrno(err) == zmq.EHOSTUNREACH {
				return transport.ErrUnreachable
			}
			return fmt.Errorf("zmqnet: send: %w", err)
		}
	}
	return nil
}

func (s *socket) Recv() ([][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, transport.ErrClosed
	}
	frames, err := s.r.recv()
	s.drained.Store(err == transport.ErrAgain)
	return frames, err
}

// input reports whether s has a message waiting, by ZMQ_EVENTS.
func (s *socket) input() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, transport.ErrClosed
	}
	ev, err := s.r.events()
	if err != nil {
		return false, err
	}
	in := zmq.State(ev)&zmq.POLLIN != 0
	// Asking processed every command: with no message now, the next one
	// makes a new edge.
	s.drained.Store(!in)
	return in, nil
}

// sent is told of each send on one of the poller's sockets, which may have
// taken the edge of a message that came meanwhile. A leader that is not
// waiting looks before it waits (the send left the socket not drained):
// either it sent, or it will see. Otherwise nobody would look, so the
// sender does, and rings if a message waits. The flags are read after
// the send cleared drained, and Wait sets waiting before it reads drained:
// of any send and wait, one sees the other. (Both pollers, Linux's and
// zmq_poll's, have these flags and ring.)
func (p *poller) sent(s *socket) {
	if p.leading.Load() && !p.waiting.Load() {
		return
	}
	if in, _ := s.input(); in {
		p.ring()
	}
}

// look sets ready[i] to whether the i-th socket has a message, asking
// libzmq, and reports whether any has. On a first look, before any wait,
// a drained socket is skipped: it has no message without a new edge,
// which the wait would see, and asking costs a poll and a getpid. After a
// wait, every socket is asked: the wait may have taken its edge.
func look(socks []*socket, ready []bool, first bool) (bool, error) {
	found := false
	for i, s := range socks {
		if first && s.drained.Load() {
			ready[i] = false
			continue
		}
		in, err := s.input()
		if err != nil {
			return false, fmt.Errorf("zmqnet: poll: %w", err)
		}
		ready[i] = in
		found = found || in
	}
	return found, nil
}

func (s *socket) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.r.close()
	return s.s.Close()
}
