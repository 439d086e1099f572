// Package transporttest is a conformance suite for transport.Network
// implementations, run against ZeroMQ and against the in-memory fake so
// that tests written over the fake mean something for the real thing.
package transporttest

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipcluster/ipcluster/transport"
	"github.com/ipcluster/ipcluster/wire"
)

// Setup describes the implementation under test.
type Setup struct {
	// New returns a fresh network; the suite closes it.
	New func(t *testing.T) transport.Network
	// Endpoint returns a bindable endpoint with a free port ("...:0").
	Endpoint func() string
	// Fixed returns a concrete endpoint that nothing listens on.
	Fixed func(t *testing.T) string
}

// Run runs every conformance test.
func Run(t *testing.T, s Setup) {
	t.Run("Echo", func(t *testing.T) { testEcho(t, s) })
	t.Run("DialBeforeBind", func(t *testing.T) { testDialBeforeBind(t, s) })
	t.Run("Unreachable", func(t *testing.T) { testUnreachable(t, s) })
	t.Run("Security", func(t *testing.T) { testSecurity(t, s) })
	t.Run("Wake", func(t *testing.T) { testWake(t, s) })
	t.Run("WakeStress", func(t *testing.T) { testWakeStress(t, s) })
	t.Run("Handover", func(t *testing.T) { testHandover(t, s) })
	t.Run("Turns", func(t *testing.T) { testTurns(t, s) })
	t.Run("TurnsStress", func(t *testing.T) { testTurnsStress(t, s) })
	t.Run("SendWhileReceiving", func(t *testing.T) { testSendWhileReceiving(t, s) })
	t.Run("SendWhileWaiting", func(t *testing.T) { testSendWhileWaiting(t, s) })
	t.Run("OnePoller", func(t *testing.T) { testOnePoller(t, s) })
}

// recvWait polls one socket until a message arrives or a generous deadline
// passes (a failure, not a synchronisation: correct code returns at once).
func recvWait(t *testing.T, n transport.Network, s transport.Socket) [][]byte {
	t.Helper()
	p, err := n.NewPoller(s)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m, err := s.Recv(); err == nil {
			return m
		} else if !errors.Is(err, transport.ErrAgain) {
			t.Fatalf("recv: %v", err)
		}
		if _, err := p.Wait(time.Until(deadline)); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("no message within 10 s")
	return nil
}

func closeAll(t *testing.T, n transport.Network, socks ...transport.Socket) {
	t.Helper()
	for _, s := range socks {
		if err := s.Close(); err != nil {
			t.Errorf("close socket: %v", err)
		}
	}
	if err := n.Close(); err != nil {
		t.Errorf("close network: %v", err)
	}
}

func testEcho(t *testing.T, s Setup) {
	n := s.New(t)
	r, ep, err := n.Bind(s.Endpoint(), nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := n.Dial(ep, []byte("peer-1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(t, n, d, r)
	if _, err := r.Recv(); !errors.Is(err, transport.ErrAgain) {
		t.Fatalf("Recv on an empty socket = %v, want ErrAgain", err)
	}
	msg := [][]byte{[]byte("a"), {}, bytes.Repeat([]byte{7}, 1<<20)}
	if err := d.Send(msg); err != nil {
		t.Fatal(err)
	}
	msg[2][0] = 8 // the frames were copied: the caller may reuse them
	got := recvWait(t, n, r)
	if len(got) != 4 || string(got[0]) != "peer-1" || string(got[1]) != "a" || len(got[2]) != 0 || len(got[3]) != len(msg[2]) {
		t.Fatalf("router got %d frames, id %q", len(got), got[0])
	}
	if got[3][0] != 7 || !bytes.Equal(got[3][1:], msg[2][1:]) {
		t.Fatal("the large frame differs, or a change to it after Send reached the receiver")
	}
	back := []byte("back")
	if err := r.Send([][]byte{[]byte("peer-1"), back}); err != nil {
		t.Fatal(err)
	}
	copy(back, "gone")
	if got := recvWait(t, n, d); len(got) != 1 || string(got[0]) != "back" {
		t.Fatalf("dealer got %q", got)
	}
}

func testDialBeforeBind(t *testing.T, s Setup) {
	n := s.New(t)
	ep := s.Fixed(t)
	d, err := n.Dial(ep, []byte("early"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Send([][]byte{[]byte("queued")}); err != nil {
		t.Fatal(err)
	}
	r, _, err := n.Bind(ep, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(t, n, d, r)
	got := recvWait(t, n, r)
	if string(got[1]) != "queued" {
		t.Fatalf("got %q", got)
	}
}

func testUnreachable(t *testing.T, s Setup) {
	n := s.New(t)
	r, _, err := n.Bind(s.Endpoint(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(t, n, r)
	if err := r.Send([][]byte{[]byte("nobody"), []byte("x")}); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("send to an unknown peer = %v, want ErrUnreachable", err)
	}
}

func keys(t *testing.T) wire.KeyPair {
	kp, err := wire.NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func testSecurity(t *testing.T, s Setup) {
	n := s.New(t)
	server, good, bad := keys(t), keys(t), keys(t)
	refused := make(chan string, 100)
	r, ep, err := n.Bind(s.Endpoint(), &transport.ServerSecurity{
		Public: server.Public, Secret: server.Secret, Domain: "test",
		Allow: func(k string) bool { return k == good.Public },
		OnRefuse: func(domain, addr, reason string) {
			select {
			case refused <- domain + ": " + reason:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// A peer without CURVE fails the handshake before authentication is
	// asked (libzmq compares mechanisms first), so it is not reported; its
	// message must simply never arrive.
	plain, err := n.Dial(ep, []byte("plain"), nil)
	if err != nil {
		t.Fatal(err)
	}
	plain.Send([][]byte{[]byte("from plain")})
	wrongServer := &transport.ClientSecurity{ServerKey: bad.Public, Public: good.Public, Secret: good.Secret}
	misdirected, err := n.Dial(ep, []byte("misdirected"), wrongServer)
	if err != nil {
		t.Fatal(err)
	}
	misdirected.Send([][]byte{[]byte("from misdirected")})
	socks := []transport.Socket{plain, misdirected}
	cases := []struct {
		name string
		sec  *transport.ClientSecurity
		want string // in the refusal reason
	}{
		{"unknown key", &transport.ClientSecurity{ServerKey: server.Public, Public: bad.Public, Secret: bad.Secret}, bad.Public},
	}
	for _, c := range cases {
		d, err := n.Dial(ep, []byte(c.name), c.sec)
		if err != nil {
			t.Fatal(err)
		}
		socks = append(socks, d)
		d.Send([][]byte{[]byte("from " + c.name)})
		select {
		case reason := <-refused:
			if !bytes.Contains([]byte(reason), []byte(c.want)) || !bytes.HasPrefix([]byte(reason), []byte("test: ")) {
				t.Errorf("%s: refusal reason %q, want it to mention %q", c.name, reason, c.want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: not refused within 10 s", c.name)
		}
	}
	d, err := n.Dial(ep, []byte("good"), &transport.ClientSecurity{ServerKey: server.Public, Public: good.Public, Secret: good.Secret})
	if err != nil {
		t.Fatal(err)
	}
	socks = append(socks, d, r)
	defer closeAll(t, n, socks...)
	d.Send([][]byte{[]byte("from good")})
	got := recvWait(t, n, r)
	if string(got[0]) != "good" || string(got[1]) != "from good" {
		t.Fatalf("first message through is %q, want the allowed peer's", got)
	}
	if m, err := r.Recv(); err == nil {
		t.Fatalf("a refused peer's message arrived: %q", m)
	}
}

func testWake(t *testing.T, s Setup) {
	n := s.New(t)
	r, _, err := n.Bind(s.Endpoint(), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := n.NewPoller(r)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		p.Close()
		closeAll(t, n, r)
	}()
	// A wake before Wait makes Wait return at once, with nothing ready.
	p.Wake()
	p.Wake()
	ready, err := p.Wait(time.Minute)
	if err != nil || len(ready) != 1 || ready[0] {
		t.Fatalf("Wait after Wake = %v, %v", ready, err)
	}
	// A wake from another goroutine ends a Wait in progress.
	var woke atomic.Bool
	go func() {
		woke.Store(true)
		p.Wake()
	}()
	for !woke.Load() {
		if _, err := p.Wait(time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	// Without input or wake, Wait returns after its timeout.
	ready, err = p.Wait(20 * time.Millisecond)
	if err != nil || ready[0] {
		t.Fatalf("idle Wait = %v, %v", ready, err)
	}
}

func testHandover(t *testing.T, s Setup) {
	n := s.New(t)
	r, ep, err := n.Bind(s.Endpoint(), nil)
	if err != nil {
		t.Fatal(err)
	}
	d1, err := n.Dial(ep, []byte("same"), nil)
	if err != nil {
		t.Fatal(err)
	}
	d1.Send([][]byte{[]byte("one")})
	recvWait(t, n, r)
	d2, err := n.Dial(ep, []byte("same"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(t, n, d1, d2, r)
	d2.Send([][]byte{[]byte("two")})
	if got := recvWait(t, n, r); string(got[1]) != "two" {
		t.Fatalf("got %q", got)
	}
	for i := range 3 {
		if err := r.Send([][]byte{[]byte("same"), fmt.Appendf(nil, "to-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := recvWait(t, n, d2); string(got[0]) != "to-0" {
		t.Fatalf("the newer connection got %q", got)
	}
}

// testWakeStress has goroutines hand work to a socket owner with Wake
// while it waits without a timeout, as clients and engines do. A lost
// wake-up leaves work unseen and the owner blocked for good.
func testWakeStress(t *testing.T, s Setup) {
	n := s.New(t)
	r, _, err := n.Bind(s.Endpoint(), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := n.NewPoller(r)
	if err != nil {
		t.Fatal(err)
	}
	const producers, items = 8, 50000
	var mu sync.Mutex
	queued := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		taken := 0
		for taken < producers*items {
			if _, err := p.Wait(-1); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			taken += queued
			queued = 0
			mu.Unlock()
		}
	}()
	var wg sync.WaitGroup
	for range producers {
		wg.Go(func() {
			for range items {
				mu.Lock()
				queued++
				mu.Unlock()
				p.Wake()
			}
		})
	}
	wg.Wait()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("a wake-up was lost: the owner still waits with work queued")
	}
	p.Close()
	closeAll(t, n, r)
}

// await fails the test unless ch yields within a generous deadline (a
// failure, not a synchronisation: correct code is immediate).
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: nothing within 10 s", what)
		panic("unreachable")
	}
}

// connected returns a router, its endpoint, and a dealer, id "d", that it
// can reach.
func connected(t *testing.T, s Setup, n transport.Network) (r transport.Socket, ep string, d transport.Socket) {
	t.Helper()
	var err error
	if r, ep, err = n.Bind(s.Endpoint(), nil); err != nil {
		t.Fatal(err)
	}
	if d, err = n.Dial(ep, []byte("d"), nil); err != nil {
		t.Fatal(err)
	}
	d.Send([][]byte{[]byte("hello")})
	recvWait(t, n, r)
	return r, ep, d
}

// testTurns checks leader and followers: one leader at a time; a follower
// takes over for input or a wake only while nobody leads; Close frees it.
func testTurns(t *testing.T, s Setup) {
	n := s.New(t)
	r, _, d := connected(t, s, n)
	p, err := n.NewPoller(d)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		p.Close()
		closeAll(t, n, d, r)
	}()
	send := func(text string) {
		t.Helper()
		if err := r.Send([][]byte{[]byte("d"), []byte(text)}); err != nil {
			t.Fatal(err)
		}
	}
	if !p.TryLead() {
		t.Fatal("TryLead of a new poller failed")
	}
	if p.TryLead() {
		t.Fatal("a second TryLead succeeded")
	}
	followed := make(chan error, 1)
	follow := func() { go func() { followed <- p.Follow() }() }

	// Input while somebody leads is the leader's: the follower stays put.
	follow()
	send("one")
	if _, err := p.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if m, err := d.Recv(); err != nil || string(m[0]) != "one" {
		t.Fatalf("leader's Recv = %q, %v", m, err)
	}
	select {
	case err := <-followed:
		t.Fatalf("Follow returned (%v) while somebody led", err)
	default:
	}
	// Input with nobody leading makes the follower the leader.
	p.Unlead()
	send("two")
	if err := await(t, followed, "Follow after input"); err != nil {
		t.Fatal(err)
	}
	if p.TryLead() {
		t.Fatal("TryLead succeeded while the follower led")
	}
	recvWaitReady(t, p, d)
	if m, err := d.Recv(); err != nil || string(m[0]) != "two" {
		t.Fatalf("follower's Recv = %q, %v", m, err)
	}
	// Input that came while the leader led, and that it left, is a
	// follower's once it lets go.
	send("three")
	recvWaitReady(t, p, d)
	follow()
	p.Unlead()
	if err := await(t, followed, "Follow for input left by the leader"); err != nil {
		t.Fatal(err)
	}
	if m, err := d.Recv(); err != nil || string(m[0]) != "three" {
		t.Fatalf("Recv = %q, %v", m, err)
	}
	// A wake with nobody leading makes the follower the leader.
	follow()
	p.Unlead()
	p.Wake()
	if err := await(t, followed, "Follow after Wake"); err != nil {
		t.Fatal(err)
	}
	p.Wait(0) // the leader sees the wake
	// Close frees a follower, with ErrClosed.
	follow()
	p.Close()
	if err := await(t, followed, "Follow after Close"); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Follow after Close = %v, want ErrClosed", err)
	}
}

// recvWaitReady waits, as the leader, until d has a message, and leaves
// it there.
func recvWaitReady(t *testing.T, p transport.Poller, d transport.Socket) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ready, err := p.Wait(time.Until(deadline))
		if err != nil {
			t.Fatal(err)
		}
		if ready[0] {
			return
		}
	}
	t.Fatal("no message within 10 s")
}

// testTurnsStress has two goroutines take turns as engines do: the leader
// receives a message, lets go of the lead, and answers it, while the other
// follows. A message left unseen stalls the exchange for good.
func testTurnsStress(t *testing.T, s Setup) {
	n := s.New(t)
	r, _, d := connected(t, s, n)
	p, err := n.NewPoller(d)
	if err != nil {
		t.Fatal(err)
	}
	const total = 2000
	var wg sync.WaitGroup
	var handled atomic.Int64
	serve := func() {
		defer wg.Done()
		for {
			if !p.TryLead() {
				if err := p.Follow(); err != nil {
					return
				}
			}
			for {
				if handled.Load() >= total {
					p.Unlead()
					return
				}
				if _, err := p.Wait(-1); err != nil {
					p.Unlead()
					return
				}
				m, err := d.Recv()
				if errors.Is(err, transport.ErrAgain) {
					continue
				}
				if err != nil {
					p.Unlead()
					return
				}
				p.Unlead()
				handled.Add(1) // before the echo: the last one ends the test
				// Answer without the lead, as an engine does: the other
				// goroutine may be waiting meanwhile, or nobody.
				d.Send(m)
				break
			}
		}
	}
	wg.Add(2)
	go serve()
	go serve()
	rp, err := n.NewPoller(r)
	if err != nil {
		t.Fatal(err)
	}
	for i := range total {
		if err := r.Send([][]byte{[]byte("d"), fmt.Appendf(nil, "%d", i)}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			m, err := r.Recv()
			if err == nil {
				if string(m[1]) != fmt.Sprint(i) {
					t.Fatalf("echo %d = %q", i, m[1])
				}
				break
			}
			if !time.Now().Before(deadline) {
				t.Fatalf("echo %d: nothing within 10 s: a message was left unseen", i)
			}
			rp.Wait(time.Until(deadline))
		}
	}
	p.Wake()
	p.Close()
	wg.Wait()
	rp.Close()
	closeAll(t, n, d, r)
}

// testSendWhileReceiving has a router answer each message while the next
// may be arriving, as the controller does: a send between a receive that
// found nothing and the next Wait must not hide a message from the Wait.
func testSendWhileReceiving(t *testing.T, s Setup) {
	n := s.New(t)
	r, _, d := connected(t, s, n)
	p, err := n.NewPoller(r)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		p.Close()
		closeAll(t, n, d, r)
	}()
	const rounds = 3000
	go func() {
		for i := range rounds {
			d.Send([][]byte{fmt.Appendf(nil, "%d", i)})
			if i%10 == 0 {
				runtime.Gosched() // let the router catch up now and then
			}
		}
	}()
	var stalled time.Time // when the last receive found nothing
	for got := 0; got < rounds; {
		_, err := r.Recv()
		if errors.Is(err, transport.ErrAgain) {
			if stalled.IsZero() {
				stalled = time.Now()
			} else if time.Since(stalled) > 10*time.Second {
				t.Fatalf("after %d of %d messages, Wait saw no more within 10 s", got, rounds)
			}
			// Say something first, as a controller flushes what it has
			// before it waits: a message may come meanwhile.
			if err := r.Send([][]byte{[]byte("d"), []byte("tick")}); err != nil {
				t.Fatal(err)
			}
			if _, err := p.Wait(10 * time.Second); err != nil {
				t.Fatal(err)
			}
			continue
		}
		stalled = time.Time{}
		if err != nil {
			t.Fatal(err)
		}
		got++
		// Answer, as a controller would, before looking for more.
		if err := r.Send([][]byte{[]byte("d"), []byte("ok")}); err != nil {
			t.Fatal(err)
		}
	}
}

// testSendWhileWaiting has goroutines send on a dealer while its leader
// waits for the router's answers, as a client's callers submit while one
// of them waits for its reply: a send may take the signal of an answer
// that came meanwhile, and the waiting leader must still see it.
func testSendWhileWaiting(t *testing.T, s Setup) {
	n := s.New(t)
	r, _, d := connected(t, s, n)
	p, err := n.NewPoller(d)
	if err != nil {
		t.Fatal(err)
	}
	rp, err := n.NewPoller(r)
	if err != nil {
		t.Fatal(err)
	}
	const senders, each = 4, 500
	var wg sync.WaitGroup
	for g := range senders {
		wg.Go(func() {
			for i := range each {
				if err := d.Send([][]byte{fmt.Appendf(nil, "%d.%d", g, i)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	// The router answers everything, from a goroutine of its own.
	stop := make(chan struct{})
	echoed := make(chan error, 1)
	go func() {
		for {
			m, err := r.Recv()
			if errors.Is(err, transport.ErrAgain) {
				select {
				case <-stop:
					echoed <- nil
					return
				default:
				}
				if _, err := rp.Wait(-1); err != nil { // Wake, below, ends it
					echoed <- err
					return
				}
				continue
			}
			if err == nil {
				err = r.Send(m)
			}
			if err != nil {
				echoed <- err
				return
			}
		}
	}()
	if !p.TryLead() {
		t.Fatal("TryLead of a new poller failed")
	}
	progress := time.Now()
	for got := 0; got < senders*each; {
		_, err := d.Recv()
		if err == nil {
			got++
			progress = time.Now()
			continue
		}
		if !errors.Is(err, transport.ErrAgain) {
			t.Fatal(err)
		}
		if time.Since(progress) > 10*time.Second {
			t.Fatalf("after %d of %d answers, Wait saw no more within 10 s", got, senders*each)
		}
		if _, err := p.Wait(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(stop)
	rp.Wake()
	if err := await(t, echoed, "the router's goroutine"); err != nil {
		t.Fatal(err)
	}
	p.Close()
	rp.Close()
	closeAll(t, n, d, r)
}

// testOnePoller checks that a socket is watched by one open poller at a
// time: its sends tell that poller, and no other, that an edge may be gone.
func testOnePoller(t *testing.T, s Setup) {
	n := s.New(t)
	r, _, d := connected(t, s, n)
	p, err := n.NewPoller(d)
	if err != nil {
		t.Fatal(err)
	}
	if q, err := n.NewPoller(r, d); err == nil {
		q.Close()
		t.Fatal("a second poller over a watched socket was made")
	}
	p.Close()
	q, err := n.NewPoller(d)
	if err != nil {
		t.Fatalf("a poller over a socket whose poller was closed: %v", err)
	}
	q.Close()
	closeAll(t, n, d, r)
}
