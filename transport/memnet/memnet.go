// Package memnet is an in-memory transport.Network for tests: Router and
// Dealer sockets that pass copied frames through queues, with ZeroMQ's
// semantics where the protocol relies on them (routing ids, handover of a
// reconnecting id, unreachable peers, messages queued before the router
// exists) and an emulation of CURVE's admission: a dealer whose keys the
// router does not allow is silently ignored, as a failed handshake is.
package memnet

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ipcluster/ipcluster/transport"
)

// Network is an in-memory network. The zero value is not usable; call New.
type Network struct {
	mu      sync.Mutex
	routers map[string]*router
	dealers map[string][]*dealer // dialled endpoints, including unbound ones
	ports   int
	closed  bool
}

// New returns an empty network.
func New() *Network {
	return &Network{routers: make(map[string]*router), dealers: make(map[string][]*dealer)}
}

var _ transport.Network = (*Network)(nil)

// inbox is a socket's queue of received messages.
type inbox struct {
	mu     sync.Mutex
	msgs   [][][]byte
	poller *poller
}

func (q *inbox) put(frames [][]byte) {
	cp := make([][]byte, len(frames))
	for i, f := range frames {
		cp[i] = append([]byte{}, f...)
	}
	q.mu.Lock()
	q.msgs = append(q.msgs, cp)
	p := q.poller
	q.mu.Unlock()
	if p != nil {
		p.notify()
	}
}

func (q *inbox) get() ([][]byte, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.msgs) == 0 {
		return nil, transport.ErrAgain
	}
	m := q.msgs[0]
	q.msgs[0] = nil
	q.msgs = q.msgs[1:]
	return m, nil
}

func (q *inbox) ready() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.msgs) > 0
}

type router struct {
	net      *Network
	endpoint string
	sec      *transport.ServerSecurity
	in       inbox
	peers    map[string]*dealer // by routing id; under net.mu
	closed   bool
}

type dealer struct {
	net      *Network
	endpoint string
	id       string
	sec      *transport.ClientSecurity
	in       inbox
	pending  [][][]byte // sent before the router was bound; under net.mu
	admitted *router    // the router that accepted this dealer; under net.mu
	closed   bool
}

// Bind implements transport.Network. Endpoints are any strings; one
// ending in ":0" or ":*" gets a fresh port number.
func (n *Network) Bind(endpoint string, sec *transport.ServerSecurity) (transport.Socket, string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, "", transport.ErrClosed
	}
	if base, ok := strings.CutSuffix(endpoint, ":0"); ok {
		n.ports++
		endpoint = fmt.Sprintf("%s:%d", base, 40000+n.ports)
	} else if base, ok := strings.CutSuffix(endpoint, ":*"); ok {
		n.ports++
		endpoint = fmt.Sprintf("%s:%d", base, 40000+n.ports)
	}
	if _, ok := n.routers[endpoint]; ok {
		return nil, "", fmt.Errorf("memnet: %s: address already in use", endpoint)
	}
	r := &router{net: n, endpoint: endpoint, sec: sec, peers: make(map[string]*dealer)}
	n.routers[endpoint] = r
	for _, d := range n.dealers[endpoint] {
		n.admit(r, d)
	}
	return r, endpoint, nil
}

// admit runs the emulated handshake of d with r and flushes what d
// queued. Called with n.mu held.
func (n *Network) admit(r *router, d *dealer) {
	if r.sec != nil {
		// As in libzmq, a peer without CURVE or with the wrong server key
		// fails the handshake before authentication is asked; only a key
		// that is not allowed is reported.
		if d.sec == nil || d.sec.ServerKey != r.sec.Public {
			d.pending = nil
			return
		}
		if !r.sec.Allow(d.sec.Public) {
			if r.sec.OnRefuse != nil {
				r.sec.OnRefuse(r.sec.Domain, "memnet:"+d.id, "public key "+d.sec.Public+" is not allowed")
			}
			d.pending = nil
			return
		}
	}
	if old := r.peers[d.id]; old != nil && old != d {
		old.admitted = nil // handover: the newer connection takes the id
	}
	r.peers[d.id] = d
	d.admitted = r
	for _, m := range d.pending {
		r.in.put(append([][]byte{[]byte(d.id)}, m...))
	}
	d.pending = nil
}

// Dial implements transport.Network.
func (n *Network) Dial(endpoint string, id []byte, sec *transport.ClientSecurity) (transport.Socket, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, transport.ErrClosed
	}
	if len(id) == 0 {
		n.ports++
		id = fmt.Appendf(nil, "memnet-peer-%d", n.ports)
	}
	d := &dealer{net: n, endpoint: endpoint, id: string(id), sec: sec}
	n.dealers[endpoint] = append(n.dealers[endpoint], d)
	if r := n.routers[endpoint]; r != nil {
		n.admit(r, d)
	}
	return d, nil
}

func (r *router) Send(frames [][]byte) error {
	if len(frames) < 1 {
		return fmt.Errorf("memnet: router message without a routing id")
	}
	r.net.mu.Lock()
	if r.closed {
		r.net.mu.Unlock()
		return transport.ErrClosed
	}
	d := r.peers[string(frames[0])]
	if d == nil || d.closed || d.admitted != r {
		r.net.mu.Unlock()
		return transport.ErrUnreachable
	}
	r.net.mu.Unlock()
	d.in.put(copyFrames(frames[1:]))
	return nil
}

// copyFrames copies a message, as ZeroMQ does on sending, so that neither
// side can change what the other holds.
func copyFrames(frames [][]byte) [][]byte {
	cp := make([][]byte, len(frames))
	for i, f := range frames {
		cp[i] = append([]byte{}, f...)
	}
	return cp
}

func (r *router) Recv() ([][]byte, error) {
	if r.isClosed() {
		return nil, transport.ErrClosed
	}
	return r.in.get()
}

func (r *router) isClosed() bool {
	r.net.mu.Lock()
	defer r.net.mu.Unlock()
	return r.closed
}

func (r *router) Close() error {
	r.net.mu.Lock()
	defer r.net.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	delete(r.net.routers, r.endpoint)
	for _, d := range r.peers {
		if d.admitted == r {
			d.admitted = nil
		}
	}
	return nil
}

func (d *dealer) Send(frames [][]byte) error {
	d.net.mu.Lock()
	if d.closed {
		d.net.mu.Unlock()
		return transport.ErrClosed
	}
	r := d.admitted
	if r == nil {
		if d.net.routers[d.endpoint] == nil { // not bound yet: queue, as ZeroMQ does
			d.pending = append(d.pending, copyFrames(frames))
		}
		d.net.mu.Unlock()
		return nil // refused or disconnected: dropped silently, as ZeroMQ does
	}
	d.net.mu.Unlock()
	r.in.put(append([][]byte{[]byte(d.id)}, copyFrames(frames)...))
	return nil
}

func (d *dealer) Recv() ([][]byte, error) {
	d.net.mu.Lock()
	closed := d.closed
	d.net.mu.Unlock()
	if closed {
		return nil, transport.ErrClosed
	}
	return d.in.get()
}

func (d *dealer) Close() error {
	d.net.mu.Lock()
	defer d.net.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if r := d.admitted; r != nil && r.peers[d.id] == d {
		delete(r.peers, d.id)
	}
	list := d.net.dealers[d.endpoint]
	for i, x := range list {
		if x == d {
			d.net.dealers[d.endpoint] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	return nil
}

type poller struct {
	inboxes []*inbox
	wake    chan struct{}

	mu      sync.Mutex
	leading bool
	closed  bool
	follow  chan struct{} // a Follow may find something to do
}

// notify rings for input or a Wake: the leader's Wait, or a follower.
func (p *poller) notify() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
	p.mu.Lock()
	if !p.leading {
		p.ringFollow()
	}
	p.mu.Unlock()
}

// ringFollow lets a Follow look. p.mu is held.
func (p *poller) ringFollow() {
	if p.closed {
		return
	}
	select {
	case p.follow <- struct{}{}:
	default:
	}
}

func (p *poller) TryLead() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.leading {
		return false
	}
	p.leading = true
	return true
}

func (p *poller) Unlead() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.leading = false
	pending := len(p.wake) > 0 // a Wake the leader did not see
	for _, q := range p.inboxes {
		pending = pending || q.ready()
	}
	if pending {
		p.ringFollow()
	}
}

func (p *poller) Follow() error {
	for range p.follow {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return fmt.Errorf("memnet: follow: %w", transport.ErrClosed)
		}
		if !p.leading {
			p.leading = true
			p.mu.Unlock()
			return nil
		}
		p.mu.Unlock()
	}
	return fmt.Errorf("memnet: follow: %w", transport.ErrClosed)
}

// NewPoller implements transport.Network.
func (n *Network) NewPoller(socks ...transport.Socket) (transport.Poller, error) {
	p := &poller{wake: make(chan struct{}, 1), follow: make(chan struct{}, 1)}
	for _, s := range socks {
		var q *inbox
		switch s := s.(type) {
		case *router:
			q = &s.in
		case *dealer:
			q = &s.in
		default:
			return nil, fmt.Errorf("memnet: cannot poll a %T", s)
		}
		p.inboxes = append(p.inboxes, q)
	}
	for _, q := range p.inboxes {
		q.mu.Lock()
		watched := q.poller != nil
		q.mu.Unlock()
		if watched {
			return nil, fmt.Errorf("memnet: poller: a socket is already watched by another poller")
		}
	}
	for _, q := range p.inboxes {
		q.mu.Lock()
		q.poller = p
		q.mu.Unlock()
	}
	return p, nil
}

func (p *poller) Wait(timeout time.Duration) ([]bool, error) {
	ready := make([]bool, len(p.inboxes))
	check := func() bool {
		any := false
		for i, q := range p.inboxes {
			ready[i] = q.ready()
			any = any || ready[i]
		}
		return any
	}
	if check() {
		return ready, nil
	}
	var timer <-chan time.Time
	if timeout >= 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-p.wake:
	case <-timer:
	}
	check()
	return ready, nil
}

func (p *poller) Wake() { p.notify() }

func (p *poller) Close() error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.follow)
	}
	p.mu.Unlock()
	for _, q := range p.inboxes {
		q.mu.Lock()
		if q.poller == p {
			q.poller = nil
		}
		q.mu.Unlock()
	}
	return nil
}

// Close implements transport.Network.
func (n *Network) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed = true
	return nil
}
