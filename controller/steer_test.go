package controller

import (
	"strings"
	"testing"
	"time"

	"github.com/ipcluster/ipcluster/wire"
)

// steer returns a steering request to targets.
func (cl *fakeClient) steer(s wire.Steering, targets ...int) *wire.Message {
	cl.h.t.Helper()
	content, bufs, err := wire.EncodeSteer(s)
	if err != nil {
		cl.h.t.Fatal(err)
	}
	m := &wire.Message{Header: cl.session.Header(wire.Steer), Content: content, Buffers: bufs}
	m.Targets = targets
	return m
}

// ack sends the engine's horizon for steering request id.
func (e *fakeEngine) ack(id string, horizon int64) {
	e.h.t.Helper()
	m := e.msg(wire.SteerAck, wire.SteerAckContent{Horizon: horizon})
	m.Parent = id
	e.send(m)
}

// expectCommit requires one commit of request id, and returns it.
func (e *fakeEngine) expectCommit(id string) wire.SteerCommitContent {
	e.h.t.Helper()
	m := e.expect(wire.SteerCommit)[0]
	if m.Parent != id {
		e.h.t.Errorf("engine %d: commit of %q, want %q", e.id, m.Parent, id)
	}
	return decode[wire.SteerCommitContent](e.h.t, m)
}

func TestSteerAgreesOnTheLargestHorizon(t *testing.T) {
	h := newHarness(t, Config{})
	es := h.addEngines(3)
	cl := h.connectedClient("client")
	req := cl.send(cl.steer(wire.Steering{Op: wire.SteerSet, Names: []string{"dt"}, Values: []any{0.5}}, 0, 1, 2))
	for _, e := range es {
		if m := e.expect(wire.Steer)[0]; m.ID != req.ID || m.Targets != nil {
			t.Fatalf("engine %d received %s %q targets %v, want the request without its targets", e.id, m.Type, m.ID, m.Targets)
		}
	}
	es[0].ack(req.ID, 12)
	es[2].ack(req.ID, 30)
	h.expectSilence() // engine 1 has not answered
	es[1].ack(req.ID, 20)
	for _, e := range es {
		if c := e.expectCommit(req.ID); c.At != 30 || c.Cancel != "" {
			t.Errorf("engine %d: commit %+v, want at 30", e.id, c)
		}
	}
	// The replies go to the client as usual.
	for _, e := range es {
		e.reply(req.ID, wire.StatusOK)
		if m := cl.expect(wire.TaskReply)[0]; m.Parent != req.ID || m.Engine != e.id {
			t.Errorf("client got a reply to %q from %d, want to %q from %d", m.Parent, m.Engine, req.ID, e.id)
		}
	}
	if len(h.c.tasks) != 0 || len(h.c.agree.open) != 0 {
		t.Errorf("%d tasks and %d agreements left", len(h.c.tasks), len(h.c.agree.open))
	}
}

func TestSteerStatusNeedsNoAgreement(t *testing.T) {
	h := newHarness(t, Config{})
	es := h.addEngines(2)
	cl := h.connectedClient("client")
	req := cl.send(cl.steer(wire.Steering{Op: wire.SteerStatus}, 0, 1))
	for _, e := range es {
		e.expect(wire.Steer)
		e.ack(req.ID, 5) // stray: nothing to agree on
		e.expect()
		e.reply(req.ID, wire.StatusOK)
	}
	cl.expect(wire.TaskReply, wire.TaskReply)
}

func TestSteerRefusedOnOneEngineIsCancelledOnTheOthers(t *testing.T) {
	h := newHarness(t, Config{})
	es := h.addEngines(3)
	cl := h.connectedClient("client")
	req := cl.send(cl.steer(wire.Steering{Op: wire.SteerPause}, 0, 1, 2))
	for _, e := range es {
		e.expect(wire.Steer)
	}
	es[0].ack(req.ID, 3)
	es[1].reply(req.ID, wire.StatusError) // refused: a ValueError
	expectFailedReply(t, cl.expect(wire.TaskReply)[0], req.ID, 1, wire.StatusError, "ValueError")
	for _, e := range []*fakeEngine{es[0], es[2]} {
		if c := e.expectCommit(req.ID); c.Cancel == "" {
			t.Errorf("engine %d: commit %+v, want a cancellation", e.id, c)
		} else {
			for _, w := range []string{"engine 1 refused it", "bad value"} {
				if !strings.Contains(c.Cancel, w) {
					t.Errorf("cancellation %q does not say %q", c.Cancel, w)
				}
			}
		}
	}
	es[1].expect() // the refusing engine needs no word
	// A late ack from engine 2 changes nothing.
	es[2].ack(req.ID, 9)
	h.expectSilence()
}

func TestSteerEngineDeathCancelsOpenRequests(t *testing.T) {
	h := newHarness(t, Config{HeartbeatPeriod: time.Second, HeartbeatMisses: 3})
	es := h.addEngines(2)
	cl := h.connectedClient("client")
	req := cl.send(cl.steer(wire.Steering{Op: wire.SteerGet, Names: []string{"T"}}, 0, 1))
	es[0].expect(wire.Steer)
	es[1].expect(wire.Steer)
	es[0].ack(req.ID, 7)
	for range 4 { // engine 1 is silent
		h.advance(time.Second)
		es[0].heartbeat()
		h.tick(true)
	}
	if h.c.engines[1] != nil {
		t.Fatal("engine 1 is still registered")
	}
	msgs := cl.recv()
	var failed *wire.Message
	for _, m := range msgs {
		if m.Type == wire.TaskReply {
			failed = m
		}
	}
	if failed == nil {
		t.Fatalf("client got %d messages, none a task reply", len(msgs))
	}
	expectFailedReply(t, failed, req.ID, 1, wire.StatusError, errEngine, "engine 1 died")
	if c := es[0].expectCommit(req.ID); !strings.Contains(c.Cancel, "engine 1 died before the step was agreed") {
		t.Errorf("engine 0: commit %+v, want a cancellation naming engine 1's death", c)
	}
}

func TestSteerBadRequests(t *testing.T) {
	h := newHarness(t, Config{})
	h.addEngines(1)
	cl := h.connectedClient("client")
	m := cl.steer(wire.Steering{Op: wire.SteerPause}, 0)
	m.Content = []byte{0x81, 0xa2, 'o', 'p', 0xa6, 'r', 'e', 'w', 'i', 'n', 'd'} // {"op": "rewind"}
	cl.send(m)
	cl.expectError(m.ID, errBadRequest, `unknown steering operation "rewind"`)
	m = cl.send(cl.steer(wire.Steering{Op: wire.SteerPause}, 0, 5))
	cl.expectError(m.ID, errUnknownEngine, "engine 5")
}
