package wire

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
)

// Session names one sender and numbers its messages. IDs may be taken from
// any goroutine; sequence numbers are taken by whoever sends, in sending
// order, so that the receiver sees them rise.
type Session struct {
	id   string
	ids  atomic.Uint64
	seqs atomic.Uint64
}

// NewSession returns a session with a random 128-bit id.
func NewSession() *Session {
	return &Session{id: hex.EncodeToString(randomBytes(16))}
}

// SessionWithID returns a session with the given id, which must be unique
// to its peer (tests use it to name their peers).
func SessionWithID(id string) *Session { return &Session{id: id} }

// ID returns the session id.
func (s *Session) ID() string { return s.id }

// NewID returns a message id unique to this session: "<session>-<n>".
func (s *Session) NewID() string {
	n := s.ids.Add(1)
	b := make([]byte, 0, len(s.id)+1+20)
	b = append(b, s.id...)
	b = append(b, '-')
	return string(strconv.AppendUint(b, n, 10))
}

// Header returns a header for a new message of type t, with a fresh id.
// Its sequence number and time are set by Stamp when it is sent.
func (s *Session) Header(t Type) Header {
	return Header{ID: s.NewID(), Type: t, Session: s.id, Engine: NoEngine}
}

// Stamp sets h's session, next sequence number and sending time. Call it
// just before sealing, from the goroutine that sends.
func (s *Session) Stamp(h *Header) {
	h.Session = s.id
	h.Seq = s.seqs.Add(1)
	h.Time = time.Now().UnixNano()
}

// ReplayGuard refuses a message whose sequence number is not above the last
// one seen from its session. It remembers at most Max sessions, forgetting
// the least recently used; it is not safe for concurrent use.
type ReplayGuard struct {
	Max  int
	last map[string]*replayEntry
	tick uint64
}

type replayEntry struct {
	seq  uint64
	used uint64
}

// ErrReplay is wrapped by the error Check returns for a replayed message.
var ErrReplay = fmt.Errorf("replayed message")

// Check accepts seq from session if it is above the last one seen.
func (g *ReplayGuard) Check(session string, seq uint64) error {
	if g.last == nil {
		g.last = make(map[string]*replayEntry)
	}
	g.tick++
	e := g.last[session]
	if e == nil {
		if g.Max > 0 && len(g.last) >= g.Max {
			g.evict()
		}
		g.last[session] = &replayEntry{seq: seq, used: g.tick}
		return nil
	}
	if seq <= e.seq {
		return fmt.Errorf("%w: sequence %d of session %.8s… after %d", ErrReplay, seq, session, e.seq)
	}
	e.seq, e.used = seq, g.tick
	return nil
}

// Forget drops what g knows of session.
func (g *ReplayGuard) Forget(session string) { delete(g.last, session) }

// evict drops the least recently used half of the sessions, so eviction
// costs amortised constant time per message.
func (g *ReplayGuard) evict() {
	var ticks []uint64
	for _, e := range g.last {
		ticks = append(ticks, e.used)
	}
	cut := median(ticks)
	for s, e := range g.last {
		if e.used <= cut {
			delete(g.last, s)
		}
	}
}

func median(xs []uint64) uint64 {
	// Quickselect would do; sessions are few and eviction is rare.
	lo, hi := uint64(0), uint64(0)
	for _, x := range xs {
		hi = max(hi, x)
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		n := 0
		for _, x := range xs {
			if x <= mid {
				n++
			}
		}
		if n >= len(xs)/2 {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}
