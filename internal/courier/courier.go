// Package courier sends a peer's messages to the controller, from any
// goroutine: at once when the line has been idle, so that a lone request
// costs no hand-over to another goroutine, and in batches when messages
// come faster than they leave, so that a burst costs one wake-up and one
// signature for many messages.
//
// It sends on the peer's one socket, which any goroutine may send on
// while the leader of its poller receives (see transport.Socket); the
// courier's mutex keeps the peer's messages in sequence-number order.
package courier

import (
	"log/slog"
	"sync"
	"time"

	"github.com/ipcluster/ipcluster/transport"
	"github.com/ipcluster/ipcluster/wire"
)

// MaxBatch bounds the messages sent as one batch.
const MaxBatch = 512

// burst is how soon after the last send a message counts as part of a
// burst, and waits for the next flush instead of leaving at once.
const burst = 50 * time.Microsecond

// Courier sends messages on one socket. The zero value is not usable.
type Courier struct {
	wake func() // asks the owner's loop to call Flush soon
	log  *slog.Logger

	mu        sync.Mutex
	sock      transport.Socket
	session   *wire.Session
	signer    *wire.Signer
	queue     []*wire.Message
	scheduled bool      // a Flush has been asked for
	last      time.Time // when the last send ended
	buf       []byte    // lone messages are sealed into it (the socket copies what it sends)
}

// keepBuf bounds the sealing buffer a courier keeps between sends.
const keepBuf = 64 << 10

// New returns a courier sending on sock, stamping messages from session
// and signing them with signer. wake must make the owner's loop call
// Flush; it is called at most once per burst.
func New(sock transport.Socket, session *wire.Session, signer *wire.Signer, wake func(), log *slog.Logger) *Courier {
	return &Courier{sock: sock, session: session, signer: signer, wake: wake, log: log}
}

// Send sends m now, or, in a burst, queues it for the next Flush.
func (c *Courier) Send(ms ...*wire.Message) {
	c.mu.Lock()
	if len(c.queue) == 0 && !c.scheduled && time.Since(c.last) >= burst {
		c.write(ms)
		c.mu.Unlock()
		return
	}
	c.queue = append(c.queue, ms...)
	ask := !c.scheduled
	c.scheduled = true
	c.mu.Unlock()
	if ask {
		c.wake()
	}
}

// Flush sends what is queued, then ms, as few batches as it can.
func (c *Courier) Flush(ms ...*wire.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	all := append(c.queue, ms...)
	c.queue, c.scheduled = nil, false
	c.write(all)
}

// LastSent is when the courier last sent something (zero if never).
func (c *Courier) LastSent() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// write stamps, signs and sends ms: several as batches, each batch
// stamped before the messages it carries. Called with c.mu held.
func (c *Courier) write(ms []*wire.Message) {
	if len(ms) == 0 {
		return // no send: the line stays as idle as it was
	}
	for len(ms) > 0 {
		n := min(len(ms), MaxBatch)
		var frames [][]byte
		if n == 1 {
			c.stamp(ms[0])
			frames = c.signer.SealInto(c.buf, ms[0])
			if head := frames[0]; cap(head) <= keepBuf {
				c.buf = head[:cap(head)]
			}
		} else {
			h := c.session.Header(wire.Batch)
			c.session.Stamp(&h)
			raws := make([]wire.Raw, n)
			for i, m := range ms[:n] {
				c.stamp(m)
				raws[i] = wire.Encode(m)
			}
			frames = c.signer.SealRaw(h, raws)
		}
		if err := c.sock.Send(frames); err != nil {
			c.log.Warn("send failed", "messages", n, "err", err)
		}
		ms = ms[n:]
	}
	c.last = time.Now()
}

// stamp gives m its id, if it has none, and its sequence number and time.
func (c *Courier) stamp(m *wire.Message) {
	if m.ID == "" {
		m.ID = c.session.NewID()
	}
	c.session.Stamp(&m.Header)
}
