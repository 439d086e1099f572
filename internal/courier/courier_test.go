package courier

import (
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ipcluster/ipcluster/transport"
	"github.com/ipcluster/ipcluster/transport/memnet"
	"github.com/ipcluster/ipcluster/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var key = []byte("courier test key")

// setup returns a courier sending to a router, and a function that takes
// what the router received: the messages of each multipart message.
func setup(t *testing.T) (*Courier, *atomic.Int32, func() [][]*wire.Message) {
	n := memnet.New()
	r, ep, err := n.Bind("mem://c:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := n.Dial(ep, []byte("peer"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(); r.Close(); n.Close() })
	var wakes atomic.Int32
	c := New(d, wire.SessionWithID("peer"), wire.NewSigner(key), func() { wakes.Add(1) }, slog.New(slog.DiscardHandler))
	take := func() [][]*wire.Message {
		var out [][]*wire.Message
		for {
			frames, err := r.Recv()
			if errors.Is(err, transport.ErrAgain) {
				return out
			}
			msgs, err := wire.NewSigner(key).OpenAll(frames[1:], true)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, msgs)
		}
	}
	return c, &wakes, take
}

func msg() *wire.Message {
	return &wire.Message{Header: wire.Header{Type: wire.Heartbeat, Engine: wire.NoEngine}}
}

func TestIdleSendsAtOnce(t *testing.T) {
	c, wakes, take := setup(t)
	c.last = time.Time{} // idle for long
	c.Send(msg())
	got := take()
	if len(got) != 1 || len(got[0]) != 1 || wakes.Load() != 0 {
		t.Fatalf("an idle courier sent %d messages, woke %d times", len(got), wakes.Load())
	}
	if got[0][0].ID == "" || got[0][0].Seq == 0 {
		t.Errorf("not stamped: %+v", got[0][0].Header)
	}
}

func TestBurstBatches(t *testing.T) {
	c, wakes, take := setup(t)
	c.last = time.Now() // a send just ended: what follows is a burst
	for range 10 {
		c.Send(msg())
	}
	if got := take(); len(got) != 0 || wakes.Load() != 1 {
		t.Fatalf("a burst sent %d messages before the flush and woke %d times, want 0 and 1", len(got), wakes.Load())
	}
	c.Flush(msg())
	got := take()
	if len(got) != 1 || len(got[0]) != 11 {
		t.Fatalf("the flush sent %d multipart messages (first of %d), want one batch of 11", len(got), len(got[0]))
	}
	// Stamped in order, after nothing: sequence numbers rise.
	for i := 1; i < len(got[0]); i++ {
		if got[0][i].Seq <= got[0][i-1].Seq {
			t.Fatalf("sequence numbers do not rise in the batch")
		}
	}
}

func TestLargeBurstsSplit(t *testing.T) {
	c, _, take := setup(t)
	c.last = time.Now()
	for range MaxBatch + 3 {
		c.Send(msg())
	}
	c.Flush()
	got := take()
	if len(got) != 2 || len(got[0]) != MaxBatch || len(got[1]) != 3 {
		t.Fatalf("%d batches", len(got))
	}
}
