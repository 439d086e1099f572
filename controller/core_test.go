package controller

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipcluster/ipcluster/wire"
)

// resigned returns frames carrying env signed by s: a hand-built envelope
// with a valid signature.
func resigned(s *wire.Signer, env []byte) [][]byte {
	return s.SealRaw(wire.Header{}, []wire.Raw{{Env: env}})
}

// envelope returns the envelope of sealed frames: the first frame
// without its signature.
func envelope(frames [][]byte) []byte { return frames[0][wire.SignatureSize:] }

func TestClientBadInput(t *testing.T) {
	tests := []struct {
		name string
		// bad sets up what it needs and returns the bad message, and the
		// id the error reply must name ("" if the envelope is unreadable).
		bad   func(h *harness, cl *fakeClient) (frames [][]byte, parent string)
		kind  string
		words []string
	}{
		{"signature in a frame of its own (version 1)", func(h *harness, cl *fakeClient) ([][]byte, string) {
			f := cl.seal(cl.apply(0))[0]
			return [][]byte{f[:wire.SignatureSize], f[wire.SignatureSize:]}, ""
		}, errVersion, []string{"version 1"}},
		{"envelope alone", func(h *harness, cl *fakeClient) ([][]byte, string) {
			return [][]byte{envelope(cl.seal(cl.apply(0)))}, ""
		}, errAuth, []string{"HMAC"}},
		{"no frames", func(h *harness, cl *fakeClient) ([][]byte, string) {
			return nil, ""
		}, errProtocol, []string{"no frames"}},
		{"garbage envelope", func(h *harness, cl *fakeClient) ([][]byte, string) {
			return resigned(cl.signer, []byte("\x93garbage")), ""
		}, errProtocol, []string{"malformed"}},
		{"bad signature", func(h *harness, cl *fakeClient) ([][]byte, string) {
			m := cl.apply(0)
			cl.session.Stamp(&m.Header)
			return wire.NewSigner(randomKey(h.t)).Seal(m), m.ID
		}, errAuth, []string{"bad signature"}},
		{"engine key on the client port", func(h *harness, cl *fakeClient) ([][]byte, string) {
			m := cl.apply(0)
			cl.session.Stamp(&m.Header)
			return h.engine.Seal(m), m.ID
		}, errAuth, []string{"bad signature"}},
		{"first frame of 31 bytes", func(h *harness, cl *fakeClient) ([][]byte, string) {
			f := cl.seal(cl.apply(0))
			f[0] = f[0][:31]
			return f, ""
		}, errProtocol, []string{"31 bytes"}},
		{"version 1", func(h *harness, cl *fakeClient) ([][]byte, string) {
			m := cl.control(wire.Engines, nil, nil)
			env := bytes.Clone(envelope(cl.seal(m)))
			if !bytes.Equal(env[1:4], []byte{0xa1, 'v', wire.Version}) {
				h.t.Fatalf("envelope does not start with v=%d: % x", wire.Version, env[:4])
			}
			env[3] = 1
			return resigned(cl.signer, env), m.ID // the id is found even in an unknown version
		}, errVersion, []string{"unsupported protocol version 1"}},
		{"unknown type", func(h *harness, cl *fakeClient) ([][]byte, string) {
			m := cl.control("frobnicate", nil, nil)
			return cl.seal(m), m.ID
		}, errProtocol, []string{"unknown message type", "frobnicate"}},
		{"engine-only type", func(h *harness, cl *fakeClient) ([][]byte, string) {
			m := cl.control(wire.Register, nil, wire.EngineInfo{Host: "x"})
			return cl.seal(m), m.ID
		}, errUnexpected, []string{"not accepted from clients", `"register"`}},
		{"reply type from a client", func(h *harness, cl *fakeClient) ([][]byte, string) {
			m := cl.control(wire.TaskReply, nil, nil)
			m.Parent = "x"
			return cl.seal(m), m.ID
		}, errUnexpected, []string{"not accepted from clients", `"task_reply"`}},
		{"unknown envelope field", func(h *harness, cl *fakeClient) ([][]byte, string) {
			m := cl.control(wire.Engines, nil, nil)
			env := bytes.Clone(envelope(cl.seal(m)))
			env[0]++ // one more key in the fixmap
			env = append(env, 0xa1, 'z', 0x01)
			return resigned(cl.signer, env), m.ID
		}, errProtocol, []string{"unknown envelope field", `"z"`}},
		{"replayed message", func(h *harness, cl *fakeClient) ([][]byte, string) {
			m := cl.apply(0)
			f := cl.seal(m)
			cl.sendFrames(f)
			h.discard()
			return f, m.ID
		}, errReplay, []string{"replayed message"}},
		{"older sequence number", func(h *harness, cl *fakeClient) ([][]byte, string) {
			old := cl.control(wire.Engines, nil, nil)
			f := cl.seal(old)
			cl.send(cl.control(wire.Engines, nil, nil))
			h.discard()
			return f, old.ID
		}, errReplay, []string{"replayed message"}},
		{"direct request without targets", func(h *harness, cl *fakeClient) ([][]byte, string) {
			m := cl.apply()
			return cl.seal(m), m.ID
		}, errBadRequest, []string{"must name its engines"}},
		{"direct request with an empty target list", func(h *harness, cl *fakeClient) ([][]byte, string) {
			m := cl.apply()
			m.Targets = []int{}
			return cl.seal(m), m.ID
		}, errBadRequest, []string{"must name its engines"}},
		{"unregistered target", func(h *harness, cl *fakeClient) ([][]byte, string) {
			m := cl.apply(0, 7)
			return cl.seal(m), m.ID
		}, errUnknownEngine, []string{"engine 7 is not registered", "registered: 0, 1"}},
		{"same target twice", func(h *harness, cl *fakeClient) ([][]byte, string) {
			m := cl.apply(1, 0, 1)
			return cl.seal(m), m.ID
		}, errBadRequest, []string{"engine 1 is named twice"}},
		{"duplicate direct id", func(h *harness, cl *fakeClient) ([][]byte, string) {
			m := cl.send(cl.apply(0))
			h.discard()
			again := *m
			return cl.seal(&again), m.ID
		}, errDuplicate, []string{"already in use"}},
		{"duplicate id on one of the targets", func(h *harness, cl *fakeClient) ([][]byte, string) {
			m := cl.send(cl.apply(1))
			h.discard()
			again := *m
			again.Targets = []int{0, 1}
			return cl.seal(&again), m.ID
		}, errDuplicate, []string{"already in use"}},
		{"duplicate balanced id", func(h *harness, cl *fakeClient) ([][]byte, string) {
			m := cl.send(cl.balanced(0))
			h.discard()
			again := *m
			return cl.seal(&again), m.ID
		}, errDuplicate, []string{"already in use"}},
		{"balanced request with the id of a direct one", func(h *harness, cl *fakeClient) ([][]byte, string) {
			m := cl.send(cl.apply(0))
			h.discard()
			again := *m
			again.Targets, again.Balanced = nil, true
			return cl.seal(&again), m.ID
		}, errDuplicate, []string{"already in use"}},
		{"direct request with the id of a balanced one", func(h *harness, cl *fakeClient) ([][]byte, string) {
			m := cl.send(cl.balanced(0))
			h.discard()
			again := *m
			again.Targets, again.Balanced = []int{0, 1}, false
			return cl.seal(&again), m.ID
		}, errDuplicate, []string{"already in use"}},
		{"buffer missing", func(h *harness, cl *fakeClient) ([][]byte, string) {
			m := cl.bigApply(0)
			return cl.seal(m)[:1], m.ID
		}, errProtocol, []string{"0 buffer frames, envelope announces 1"}},
		{"buffer too many", func(h *harness, cl *fakeClient) ([][]byte, string) {
			m := cl.bigApply(0)
			return append(cl.seal(m), []byte("extra")), m.ID
		}, errProtocol, []string{"2 buffer frames, envelope announces 1"}},
		{"frame after inline buffers", func(h *harness, cl *fakeClient) ([][]byte, string) {
			m := cl.apply(0)
			return append(cl.seal(m), []byte("extra")), m.ID
		}, errProtocol, []string{"1 buffer frames, envelope announces 0"}},
		{"task_status without content", func(h *harness, cl *fakeClient) ([][]byte, string) {
			m := cl.control(wire.TaskStatus, nil, nil)
			return cl.seal(m), m.ID
		}, errProtocol, []string{"no content"}},
		{"results with an unknown content field", func(h *harness, cl *fakeClient) ([][]byte, string) {
			m := cl.control(wire.Results, nil, map[string]any{"idz": []string{"a"}})
			return cl.seal(m), m.ID
		}, errProtocol, []string{"idz"}},
		{"abort naming nothing", func(h *harness, cl *fakeClient) ([][]byte, string) {
			m := cl.control(wire.Abort, nil, wire.IDsContent{})
			return cl.seal(m), m.ID
		}, errBadRequest, []string{"neither tasks nor engines"}},
		{"interrupt without targets", func(h *harness, cl *fakeClient) ([][]byte, string) {
			m := cl.control(wire.Interrupt, nil, nil)
			return cl.seal(m), m.ID
		}, errBadRequest, []string{"names no engines"}},
		{"shutdown of an unregistered engine", func(h *harness, cl *fakeClient) ([][]byte, string) {
			m := cl.control(wire.Shutdown, []int{5}, wire.ShutdownContent{})
			return cl.seal(m), m.ID
		}, errUnknownEngine, []string{"engine 5 is not registered"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			es := h.addEngines(2)
			cl := h.newClient("client")
			frames, parent := tt.bad(h, cl)
			h.logs.Reset()
			cl.sendFrames(frames)
			cl.expectError(parent, tt.kind, tt.words...)
			h.expectSilence()
			h.expectLog("refused", tt.kind, tt.words[0])

			// The core keeps working, for this client too.
			cl.expectWorks()
			m := cl.send(cl.apply(0))
			es[0].expectWork(m.ID)
			es[0].reply(m.ID, wire.StatusOK)
			if r := cl.expect(wire.TaskReply)[0]; r.Parent != m.ID || r.Status != wire.StatusOK {
				t.Errorf("reply: parent %q status %q, want %q ok", r.Parent, r.Status, m.ID)
			}
		})
	}
}

func TestEngineBadInput(t *testing.T) {
	tests := []struct {
		name string
		// bad returns the bad message, the engine it comes from (engines 0
		// and 1 are registered) and the id its error reply must name.
		bad   func(h *harness, es []*fakeEngine) (from *fakeEngine, frames [][]byte, parent string)
		kind  string
		words []string
	}{
		{"heartbeat before registering", func(h *harness, es []*fakeEngine) (*fakeEngine, [][]byte, string) {
			e := h.newEngine("stranger")
			m := e.msg(wire.Heartbeat, wire.HeartbeatContent{})
			return e, e.seal(m), m.ID
		}, errAuthzEngine, []string{"not registered"}},
		{"task reply before registering", func(h *harness, es []*fakeEngine) (*fakeEngine, [][]byte, string) {
			e := h.newEngine("stranger")
			m := e.msg(wire.TaskReply, nil)
			m.Parent, m.Status = "x-1", wire.StatusOK
			return e, e.seal(m), m.ID
		}, errAuthzEngine, []string{"not registered"}},
		{"claiming another engine's id", func(h *harness, es []*fakeEngine) (*fakeEngine, [][]byte, string) {
			m := es[1].msg(wire.Heartbeat, wire.HeartbeatContent{})
			m.Engine = 0
			return es[1], es[1].seal(m), m.ID
		}, errImpersonation, []string{"you are engine 1, not 0"}},
		{"bad signature", func(h *harness, es []*fakeEngine) (*fakeEngine, [][]byte, string) {
			m := es[0].msg(wire.Heartbeat, wire.HeartbeatContent{})
			es[0].session.Stamp(&m.Header)
			return es[0], wire.NewSigner(randomKey(h.t)).Seal(m), m.ID
		}, errAuth, []string{"bad signature"}},
		{"client key on the engine port", func(h *harness, es []*fakeEngine) (*fakeEngine, [][]byte, string) {
			m := es[0].msg(wire.Heartbeat, wire.HeartbeatContent{})
			es[0].session.Stamp(&m.Header)
			return es[0], h.client.Seal(m), m.ID
		}, errAuth, []string{"bad signature"}},
		{"replayed message", func(h *harness, es []*fakeEngine) (*fakeEngine, [][]byte, string) {
			m := es[0].msg(wire.Heartbeat, wire.HeartbeatContent{})
			f := es[0].seal(m)
			es[0].sendFrames(f)
			h.discard()
			return es[0], f, m.ID
		}, errReplay, []string{"replayed message"}},
		{"signature alone", func(h *harness, es []*fakeEngine) (*fakeEngine, [][]byte, string) {
			return es[0], [][]byte{es[0].seal(es[0].msg(wire.Heartbeat, nil))[0][:wire.SignatureSize]}, ""
		}, errProtocol, []string{"first frame has 32 bytes"}},
		{"client-only type", func(h *harness, es []*fakeEngine) (*fakeEngine, [][]byte, string) {
			m := es[0].msg(wire.Apply, nil)
			return es[0], es[0].seal(m), m.ID
		}, errUnexpected, []string{"not accepted from engines", `"apply"`}},
		{"register with a bad content", func(h *harness, es []*fakeEngine) (*fakeEngine, [][]byte, string) {
			e := h.newEngine("stranger")
			m := e.msg(wire.Register, map[string]any{"hostname": "x"})
			return e, e.seal(m), m.ID
		}, errProtocol, []string{"hostname"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			es := h.addEngines(2)
			from, frames, parent := tt.bad(h, es)
			h.logs.Reset()
			from.sendFrames(frames)
			from.expectError(parent, tt.kind, tt.words...)
			h.expectSilence()
			h.expectLog("refused", tt.kind, tt.words[0])

			// Both engines are still registered and served.
			for _, e := range es {
				e.heartbeat()
			}
			cl := h.newClient("client")
			m := cl.send(cl.apply(0, 1))
			for _, e := range es {
				e.expectWork(m.ID)
			}
		})
	}
}

// A client sees engines' sessions in the task replies it receives; it
// must not be able to use them to have the engines' messages refused.
func TestReplayGuardSeparatesRoles(t *testing.T) {
	h := newHarness(t, Config{})
	e := h.addEngines(1)[0]
	e.heartbeat()
	cl := h.newClient("client")
	m := cl.control(wire.Engines, nil, nil)
	m.Session, m.Seq, m.Time = e.session.ID(), 1<<62, 1
	cl.sendFrames(cl.signer.Seal(m))
	// Peers are addressed by session: the answer goes to that session's
	// socket on the client port (where no such client listens).
	if r := h.takeFirst("client", e.session.ID()); r.Type != wire.EnginesReply {
		t.Fatalf("answer %s", r.Type)
	}
	e.heartbeat()
	h.advance(10 * time.Second)
	e.heartbeat()
	h.tick(true)
	if h.c.engines[0] == nil {
		t.Fatal("engine 0 was declared dead")
	}
}

func TestEngineDeath(t *testing.T) {
	h := newHarness(t, Config{HeartbeatPeriod: time.Second, HeartbeatMisses: 3})
	es := h.addEngines(2)
	e0, e1 := es[0], es[1]
	cl := h.connectedClient("client")
	bystander := h.newClient("bystander") // not connected: hears no events

	// Three direct tasks keep engine 0 the more loaded, so both balanced
	// tasks land on engine 1.
	var busy []string
	for range 3 {
		busy = append(busy, cl.send(cl.apply(0)).ID)
	}
	e0.expectWork(busy...)
	direct := cl.send(cl.apply(1))
	once := cl.send(cl.balanced(0))
	twice := cl.send(cl.balanced(1))
	e1.expectWork(direct.ID, once.ID, twice.ID)

	// Engine 0 keeps beating, engine 1 is silent for three periods: not
	// yet more than HeartbeatPeriod*HeartbeatMisses.
	for range 3 {
		h.advance(time.Second)
		e0.heartbeat()
		h.tick(true)
	}
	h.advance(500 * time.Millisecond)
	e0.heartbeat()
	h.tick(false) // the socket was not drained: no verdict
	h.expectSilence()
	if h.c.engines[1] == nil {
		t.Fatal("engine 1 declared dead while the engine socket was not drained")
	}

	h.tick(true)
	if h.c.engines[1] != nil {
		t.Fatal("engine 1 is still registered after 3.5 s of silence")
	}
	if h.c.engines[0] == nil {
		t.Fatal("engine 0 was declared dead although it kept beating")
	}
	h.expectLog("engine gone", "no heartbeat for 3.5 s")
	got := cl.expect(wire.TaskReply, wire.TaskReply, wire.EngineEvent)
	expectFailedReply(t, got[0], direct.ID, 1, wire.StatusError, errEngine, "engine 1")
	expectFailedReply(t, got[1], once.ID, 1, wire.StatusError, errEngine, "engine 1")
	ev := decode[wire.EngineEventContent](t, got[2])
	if ev.Event != wire.EventDied || ev.Engine.ID != 1 || ev.Engine.State != "dead" || got[2].Engine != 1 {
		t.Errorf("event %+v (header engine %d), want engine 1 died", ev, got[2].Engine)
	}
	bystander.expect()

	// The task with a retry left goes to engine 0, still the client's
	// message, now signed with the engine key.
	frames := h.takeFrames("engine", e0.rid)
	if len(frames) != 1 {
		t.Fatalf("engine 0 received %d messages, want the retried task", len(frames))
	}
	if _, err := h.client.Open(frames[0], true); err == nil {
		t.Error("the retried task still carries the client key's signature")
	}
	m, err := h.engine.Open(frames[0], true)
	if err != nil {
		t.Fatalf("the retried task does not open with the engine key: %v", err)
	}
	if m.ID != twice.ID || m.Session != cl.session.ID() || m.Retries != 1 {
		t.Errorf("retried message id %q session %q retries %d, want the client's %q", m.ID, m.Session, m.Retries, twice.ID)
	}
	e0.reply(twice.ID, wire.StatusOK)
	if r := cl.expect(wire.TaskReply)[0]; r.Parent != twice.ID || r.Engine != 0 || r.Status != wire.StatusOK {
		t.Errorf("reply parent %q engine %d status %q, want %q from engine 0, ok", r.Parent, r.Engine, r.Status, twice.ID)
	}
	expectStatus(t, h, cl, twice.ID, wire.TaskInfo{ID: twice.ID, Engine: 0, State: wire.TaskDone, Attempts: 2})
	expectStatus(t, h, cl, direct.ID, wire.TaskInfo{ID: direct.ID, Engine: 1, State: wire.TaskFailed, Attempts: 1})

	// Engine 0's direct tasks are untouched.
	for _, id := range busy {
		e0.reply(id, wire.StatusOK)
	}
	cl.expect(wire.TaskReply, wire.TaskReply, wire.TaskReply)

	// The dead engine is told it is not registered.
	hb := e1.send(e1.msg(wire.Heartbeat, wire.HeartbeatContent{}))
	e1.expectError(hb.ID, errAuthzEngine, "not registered")
}

// A task whose engine died and that waits for another engine is pending
// like any other: no engine, and failed by a shutdown.
func TestEngineDeathRequeuesAsPending(t *testing.T) {
	h := newHarness(t, Config{})
	e := h.addEngines(1)[0]
	cl := h.newClient("client")
	m := cl.send(cl.balanced(2))
	e.expectWork(m.ID)
	h.advance(time.Minute)
	h.tick(true)
	expectStatus(t, h, cl, m.ID, wire.TaskInfo{ID: m.ID, Engine: wire.NoEngine, State: wire.TaskPending, Attempts: 1})

	stop := cl.send(cl.control(wire.Shutdown, nil, wire.ShutdownContent{Controller: true}))
	got := cl.expect(wire.ShutdownReply, wire.TaskReply)
	if got[0].Parent != stop.ID {
		t.Errorf("shutdown_reply parent %q, want %q", got[0].Parent, stop.ID)
	}
	expectFailedReply(t, got[1], m.ID, wire.NoEngine, wire.StatusError, errShutdown)
}

func TestHeartbeats(t *testing.T) {
	h := newHarness(t, Config{HeartbeatPeriod: time.Second, HeartbeatMisses: 3})
	es := h.addEngines(2)
	for range 100 {
		h.advance(time.Second)
		for _, e := range es {
			e.heartbeat()
		}
		h.tick(true)
	}
	// Just often enough.
	for range 20 {
		h.advance(2999 * time.Millisecond)
		for _, e := range es {
			e.heartbeat()
		}
		h.tick(true)
	}
	// Any message is a sign of life, not only heartbeats.
	cl := h.newClient("client")
	for range 20 {
		m := cl.send(cl.apply(0, 1))
		for _, e := range es {
			e.expectWork(m.ID)
		}
		h.advance(2 * time.Second)
		h.tick(true)
		for _, e := range es {
			e.reply(m.ID, wire.StatusOK)
		}
		cl.expect(wire.TaskReply, wire.TaskReply)
	}
	if len(h.c.engines) != 2 {
		t.Fatalf("%d engines registered, want 2", len(h.c.engines))
	}
	h.expectSilence()
}

func TestResultsForVanishedClient(t *testing.T) {
	h := newHarness(t, Config{})
	e := h.addEngines(1)[0]
	gone := h.newClient("gone")
	req := gone.send(gone.apply(0))
	e.expectWork(req.ID)
	h.out.gone[gone.rid] = true
	rep := e.reply(req.ID, wire.StatusOK)
	h.expectSilence()

	other := h.newClient("other")
	ask := other.send(other.control(wire.Results, nil, wire.IDsContent{IDs: []string{req.ID}}))
	got := other.expect(wire.TaskReply, wire.ResultsReply) // both open with the client key
	if got[0].ID != rep.ID || got[0].Parent != req.ID || got[0].Engine != 0 || got[0].Session != e.session.ID() {
		t.Errorf("retained reply %+v, want the engine's %q", got[0].Header, rep.ID)
	}
	r, err := wire.DecodeResult(got[0])
	if err != nil || r.Value == nil {
		t.Fatalf("retained result: %v", err)
	}
	if v, err := r.Value.Decode(); err != nil || !slices.Equal(v.([]float64), []float64{0}) {
		t.Errorf("retained result %v, %v; want [0]", v, err)
	}
	if got[1].Parent != ask.ID {
		t.Errorf("results_reply parent %q, want %q", got[1].Parent, ask.ID)
	}
	if missing := decode[wire.ResultsReplyContent](t, got[1]).Missing; len(missing) != 0 {
		t.Errorf("missing %q, want none", missing)
	}

	other.send(other.control(wire.Results, nil, wire.IDsContent{IDs: []string{req.ID, "never-1"}}))
	got = other.expect(wire.ResultsReply)
	if missing := decode[wire.ResultsReplyContent](t, got[0]).Missing; !slices.Equal(missing, []string{req.ID, "never-1"}) {
		t.Errorf("missing %q, want both", missing)
	}
}

// A result the controller makes itself is retained like an engine's.
func TestFailureForVanishedClientIsRetained(t *testing.T) {
	h := newHarness(t, Config{})
	e := h.addEngines(1)[0]
	gone := h.newClient("gone")
	req := gone.send(gone.apply(0))
	e.expectWork(req.ID)
	h.out.gone[gone.rid] = true
	h.advance(time.Minute)
	h.tick(true)
	other := h.newClient("other")
	other.send(other.control(wire.Results, nil, wire.IDsContent{IDs: []string{req.ID}}))
	got := other.expect(wire.TaskReply, wire.ResultsReply)
	expectFailedReply(t, got[0], req.ID, 0, wire.StatusError, errEngine, "engine 0")
}

// retain submits one direct task per id from a client that then vanishes,
// and has engine e answer them in order.
func retain(h *harness, e *fakeEngine, n int) []string {
	h.t.Helper()
	gone := h.newClient(fmt.Sprintf("gone-%d", len(h.out.gone)))
	var ids []string
	for range n {
		ids = append(ids, gone.send(gone.apply(e.id)).ID)
	}
	e.expectWork(ids...)
	h.out.gone[gone.rid] = true
	for _, id := range ids {
		e.reply(id, wire.StatusOK)
	}
	return ids
}

// fetch asks for ids and returns the parents of the retained replies
// sent back, and the ids reported missing.
func fetch(h *harness, cl *fakeClient, ids ...string) (found, missing []string) {
	h.t.Helper()
	cl.send(cl.control(wire.Results, nil, wire.IDsContent{IDs: ids}))
	got := cl.recv()
	if len(got) == 0 || got[len(got)-1].Type != wire.ResultsReply {
		h.t.Fatalf("results not answered by a results_reply")
	}
	for _, m := range got[:len(got)-1] {
		if m.Type != wire.TaskReply {
			h.t.Fatalf("results answered with a %s", m.Type)
		}
		found = append(found, m.Parent)
	}
	return found, decode[wire.ResultsReplyContent](h.t, got[len(got)-1]).Missing
}

func TestResultCacheBounds(t *testing.T) {
	t.Run("count", func(t *testing.T) {
		h := newHarness(t, Config{ResultCache: 2})
		e := h.addEngines(1)[0]
		ids := retain(h, e, 3)
		h.expectLog("result cache full")
		found, missing := fetch(h, h.newClient("other"), ids...)
		if !slices.Equal(found, ids[1:]) || !slices.Equal(missing, ids[:1]) {
			t.Errorf("found %q, missing %q; want the oldest evicted", found, missing)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		h := newHarness(t, Config{ResultCacheBytes: 1})
		e := h.addEngines(1)[0]
		ids := retain(h, e, 2)
		found, missing := fetch(h, h.newClient("other"), ids...)
		if len(found) != 0 || !slices.Equal(missing, ids) {
			t.Errorf("found %q, missing %q; want nothing kept", found, missing)
		}
	})
	t.Run("eviction order survives results taken", func(t *testing.T) {
		h := newHarness(t, Config{ResultCache: 2})
		es := h.addEngines(2)
		gone := h.newClient("gone")
		x := gone.send(gone.apply(0, 1))
		y := gone.send(gone.apply(0))
		es[0].expectWork(x.ID, y.ID)
		es[1].expectWork(x.ID)
		h.out.gone[gone.rid] = true
		other := h.newClient("other")

		es[0].reply(x.ID, wire.StatusOK) // x from engine 0: fetched at once
		if found, _ := fetch(h, other, x.ID); len(found) != 1 {
			t.Fatalf("found %q, want x", found)
		}
		es[0].reply(y.ID, wire.StatusOK) // y, then x from engine 1
		es[1].reply(x.ID, wire.StatusOK)
		z := retain(h, es[0], 1) // one too many: y is the oldest
		found, missing := fetch(h, other, y.ID, x.ID, z[0])
		if !slices.Equal(found, []string{x.ID, z[0]}) || !slices.Equal(missing, []string{y.ID}) {
			t.Errorf("found %q, missing %q; want y evicted", found, missing)
		}
	})
	t.Run("taking results frees all memory", func(t *testing.T) {
		h := newHarness(t, Config{ResultCache: 4})
		e := h.addEngines(1)[0]
		other := h.newClient("other")
		for range 1000 {
			ids := retain(h, e, 1)
			if found, _ := fetch(h, other, ids...); len(found) != 1 {
				t.Fatalf("found %q, want %q", found, ids)
			}
		}
		if n := len(h.c.kept.order); n > 100 {
			t.Errorf("the result cache remembers %d ids while it holds %d results", n, h.c.kept.count)
		}
	})
	t.Run("a client that vanishes while asking keeps them retained", func(t *testing.T) {
		h := newHarness(t, Config{})
		e := h.addEngines(1)[0]
		ids := retain(h, e, 1)
		ask := h.newClient("asker")
		h.out.gone[ask.rid] = true
		ask.send(ask.control(wire.Results, nil, wire.IDsContent{IDs: ids}))
		if found, _ := fetch(h, h.newClient("other"), ids...); !slices.Equal(found, ids) {
			t.Errorf("found %q, want %q", found, ids)
		}
	})
}

// expectStatus asks for the status of id and requires one TaskInfo equal
// to want apart from the times, which must be set as the state implies.
func expectStatus(t *testing.T, h *harness, cl *fakeClient, id string, want wire.TaskInfo) {
	t.Helper()
	req := cl.send(cl.control(wire.TaskStatus, nil, wire.IDsContent{IDs: []string{id}}))
	m := cl.expect(wire.TaskStatusReply)[0]
	if m.Parent != req.ID {
		t.Errorf("task_status_reply parent %q, want %q", m.Parent, req.ID)
	}
	tasks := decode[wire.TaskStatusReplyContent](t, m).Tasks
	if len(tasks) != 1 {
		t.Fatalf("status of %s: %+v, want one task", id, tasks)
	}
	got := tasks[0]
	if want.State != wire.TaskUnknown && got.Submitted == 0 {
		t.Errorf("status of %s: no submission time", id)
	}
	if want.State == wire.TaskDone && (got.Started == 0 || got.Completed == 0) {
		t.Errorf("status of %s: done without start and completion times", id)
	}
	got.Submitted, got.Started, got.Completed = 0, 0, 0
	if got != want {
		t.Errorf("status of %s:\n got  %+v\n want %+v", id, got, want)
	}
}

func TestTaskStatus(t *testing.T) {
	h := newHarness(t, Config{})
	cl := h.newClient("client")
	pending := cl.send(cl.balanced(0))
	expectStatus(t, h, cl, pending.ID, wire.TaskInfo{ID: pending.ID, Engine: wire.NoEngine, State: wire.TaskPending})

	e := h.addEngines(1)[0]
	e.expectWork(pending.ID)
	expectStatus(t, h, cl, pending.ID, wire.TaskInfo{ID: pending.ID, Engine: 0, State: wire.TaskRunning, Attempts: 1})

	first := cl.send(cl.apply(0))
	second := cl.send(cl.apply(0))
	e.expectWork(first.ID, second.ID)
	expectStatus(t, h, cl, first.ID, wire.TaskInfo{ID: first.ID, Engine: 0, State: wire.TaskQueued, Attempts: 1})

	e.reply(pending.ID, wire.StatusOK)
	cl.expect(wire.TaskReply)
	expectStatus(t, h, cl, pending.ID, wire.TaskInfo{ID: pending.ID, Engine: 0, State: wire.TaskDone, Attempts: 1})
	expectStatus(t, h, cl, first.ID, wire.TaskInfo{ID: first.ID, Engine: 0, State: wire.TaskRunning, Attempts: 1})
	expectStatus(t, h, cl, second.ID, wire.TaskInfo{ID: second.ID, Engine: 0, State: wire.TaskQueued, Attempts: 1})

	e.reply(first.ID, wire.StatusOK)
	e.reply(second.ID, wire.StatusError)
	cl.expect(wire.TaskReply, wire.TaskReply)
	expectStatus(t, h, cl, first.ID, wire.TaskInfo{ID: first.ID, Engine: 0, State: wire.TaskDone, Attempts: 1})
	expectStatus(t, h, cl, second.ID, wire.TaskInfo{ID: second.ID, Engine: 0, State: wire.TaskFailed, Attempts: 1})
	expectStatus(t, h, cl, "nobody-1", wire.TaskInfo{ID: "nobody-1", Engine: wire.NoEngine, State: wire.TaskUnknown})

	// Several ids in one request, one TaskInfo each, in order.
	cl.send(cl.control(wire.TaskStatus, nil, wire.IDsContent{IDs: []string{second.ID, "nobody-2", first.ID}}))
	tasks := decode[wire.TaskStatusReplyContent](t, cl.expect(wire.TaskStatusReply)[0]).Tasks
	var states []string
	for _, ti := range tasks {
		states = append(states, ti.ID+" "+ti.State)
	}
	want := []string{second.ID + " failed", "nobody-2 unknown", first.ID + " done"}
	if !slices.Equal(states, want) {
		t.Errorf("states %q, want %q", states, want)
	}
}

func TestAbort(t *testing.T) {
	t.Run("pending balanced task", func(t *testing.T) {
		h := newHarness(t, Config{})
		cl := h.newClient("client")
		m := cl.send(cl.balanced(3))
		ab := cl.send(cl.control(wire.Abort, nil, wire.IDsContent{IDs: []string{m.ID}}))
		got := cl.expect(wire.TaskReply, wire.AbortReply)
		expectFailedReply(t, got[0], m.ID, wire.NoEngine, wire.StatusAborted, errAborted)
		if got[1].Parent != ab.ID {
			t.Errorf("abort_reply parent %q, want %q", got[1].Parent, ab.ID)
		}
		expectStatus(t, h, cl, m.ID, wire.TaskInfo{ID: m.ID, Engine: wire.NoEngine, State: wire.TaskAborted})
		e := h.addEngines(1)[0] // the aborted task never reaches an engine
		e.expect()
	})
	t.Run("queued direct tasks", func(t *testing.T) {
		h := newHarness(t, Config{})
		es := h.addEngines(2)
		cl := h.newClient("client")
		running := cl.send(cl.apply(0))
		a := cl.send(cl.apply(0, 1))
		b := cl.send(cl.apply(0))
		es[0].expectWork(running.ID, a.ID, b.ID)
		es[1].expectWork(a.ID)
		ab := cl.send(cl.control(wire.Abort, nil, wire.IDsContent{IDs: []string{a.ID, b.ID}}))
		for _, tc := range []struct {
			e    *fakeEngine
			want []string
		}{{es[0], []string{a.ID, b.ID}}, {es[1], []string{a.ID}}} {
			m := tc.e.expect(wire.Abort)[0]
			if ids := decode[wire.IDsContent](t, m).IDs; !slices.Equal(ids, tc.want) || m.Parent != ab.ID || m.Engine != tc.e.id {
				t.Errorf("engine %d: abort of %q (parent %q, engine %d), want %q", tc.e.id, ids, m.Parent, m.Engine, tc.want)
			}
		}
		cl.expect(wire.AbortReply)
	})
	t.Run("outstanding balanced task", func(t *testing.T) {
		h := newHarness(t, Config{})
		es := h.addEngines(2)
		cl := h.newClient("client")
		m := cl.send(cl.balanced(0))
		es[0].expectWork(m.ID)
		cl.send(cl.control(wire.Abort, nil, wire.IDsContent{IDs: []string{m.ID}}))
		if ids := decode[wire.IDsContent](t, es[0].expect(wire.Abort)[0]).IDs; !slices.Equal(ids, []string{m.ID}) {
			t.Errorf("abort of %q, want %q", ids, m.ID)
		}
		es[1].expect()
		cl.expect(wire.AbortReply)
		es[0].reply(m.ID, wire.StatusAborted)
		cl.expect(wire.TaskReply)
		expectStatus(t, h, cl, m.ID, wire.TaskInfo{ID: m.ID, Engine: 0, State: wire.TaskAborted, Attempts: 1})
	})
	t.Run("everything queued on engines", func(t *testing.T) {
		h := newHarness(t, Config{})
		es := h.addEngines(3)
		cl := h.newClient("client")
		ab := cl.send(cl.control(wire.Abort, []int{2, 0}, nil))
		for _, e := range []*fakeEngine{es[2], es[0]} {
			m := e.expect(wire.Abort)[0]
			if ids := decode[wire.IDsContent](t, m).IDs; len(ids) != 0 || m.Parent != ab.ID {
				t.Errorf("engine %d: abort of %q, parent %q; want no ids, %q", e.id, ids, m.Parent, ab.ID)
			}
		}
		es[1].expect()
		cl.expect(wire.AbortReply)
	})
}

func TestInterrupt(t *testing.T) {
	h := newHarness(t, Config{})
	es := h.addEngines(3)
	cl := h.newClient("client")
	running := cl.send(cl.apply(0, 2))
	queued := cl.send(cl.apply(0))
	es[0].expectWork(running.ID, queued.ID)
	es[2].expectWork(running.ID)
	req := cl.send(cl.control(wire.Interrupt, []int{0, 1, 2}, nil))
	// Each busy target is told which task is meant: the first of its queue.
	for _, e := range []*fakeEngine{es[0], es[2]} {
		m := e.expect(wire.Interrupt)[0]
		if m.Parent != req.ID || m.Engine != e.id {
			t.Errorf("interrupt parent %q engine %d, want %q %d", m.Parent, m.Engine, req.ID, e.id)
		}
		if ids := decode[wire.IDsContent](t, m).IDs; !slices.Equal(ids, []string{running.ID}) {
			t.Errorf("engine %d: interrupt names %q, want the running task %q", e.id, ids, running.ID)
		}
	}
	es[1].expect() // idle: nothing to interrupt
	if m := cl.expect(wire.InterruptReply)[0]; m.Parent != req.ID {
		t.Errorf("interrupt_reply parent %q, want %q", m.Parent, req.ID)
	}
}

func TestShutdown(t *testing.T) {
	t.Run("engines", func(t *testing.T) {
		h := newHarness(t, Config{})
		es := h.addEngines(2)
		cl := h.newClient("client")
		req := cl.send(cl.control(wire.Shutdown, []int{1}, wire.ShutdownContent{}))
		if m := es[1].expect(wire.Shutdown)[0]; m.Parent != req.ID || m.Engine != 1 {
			t.Errorf("shutdown parent %q engine %d, want %q 1", m.Parent, m.Engine, req.ID)
		}
		es[0].expect()
		cl.expect(wire.ShutdownReply)
		if h.c.stopping {
			t.Error("the controller is stopping after a shutdown of engines only")
		}
		cl.expectWorks()
	})
	t.Run("controller", func(t *testing.T) {
		h := newHarness(t, Config{})
		es := h.addEngines(2)
		cl := h.connectedClient("client")
		direct := cl.send(cl.apply(0, 1))
		outstanding := cl.send(cl.balanced(0))
		es[0].expectWork(direct.ID, outstanding.ID)
		es[1].expectWork(direct.ID)
		b1 := cl.send(cl.balanced(0, 1))
		b2 := cl.send(cl.balanced(0, 7, 1))
		es[1].expectWork(b1.ID, b2.ID)

		req := cl.send(cl.control(wire.Shutdown, []int{1}, wire.ShutdownContent{Controller: true}))
		if !h.c.stopping {
			t.Fatal("not stopping after shutdown with controller=true")
		}
		for _, e := range es {
			e.expect(wire.Shutdown) // once each, named or not
		}
		if m := cl.expect(wire.ShutdownReply)[0]; m.Parent != req.ID {
			t.Errorf("shutdown_reply parent %q, want %q", m.Parent, req.ID)
		}

		late := cl.send(cl.apply(0))
		cl.expectError(late.ID, errShutdown, "shutting down")
		lateB := cl.send(cl.balanced(0))
		cl.expectError(lateB.ID, errShutdown, "shutting down")
		stranger := h.newEngine("stranger")
		reg := stranger.send(stranger.msg(wire.Register, wire.EngineInfo{Host: "late"}))
		stranger.expectError(reg.ID, errShutdown, "shutting down")

		// Work already on engines may still finish.
		es[0].reply(outstanding.ID, wire.StatusOK)
		cl.expect(wire.TaskReply)

		h.c.finish() // the last event: Run flushes and returns after it
		h.c.flush(h.out.send)
		got := cl.recv()
		var parents []string
		for _, m := range got {
			expectErrorInfo(t, m, errShutdown, "shut down")
			if m.Type != wire.TaskReply || m.Status != wire.StatusError {
				t.Errorf("finish sent a %s with status %q", m.Type, m.Status)
			}
			parents = append(parents, fmt.Sprintf("%s@%d", m.Parent, m.Engine))
		}
		want := []string{direct.ID + "@0", direct.ID + "@1", b1.ID + "@1", b2.ID + "@1"} // in submission order
		if !slices.Equal(parents, want) {
			t.Errorf("finish failed %q, want %q", parents, want)
		}
		if len(h.c.tasks) != 0 {
			t.Errorf("%d tasks live after finish", len(h.c.tasks))
		}
	})
	t.Run("the loop wakes up for the stop deadline", func(t *testing.T) {
		h := newHarness(t, Config{HeartbeatPeriod: time.Second, StopTimeout: 3 * time.Second})
		if d := h.c.nextTimeout(); d != 500*time.Millisecond {
			t.Errorf("timeout %v, want half a heartbeat period", d)
		}
		h.addEngines(1)
		h.c.beginShutdown("test")
		h.advance(2900 * time.Millisecond)
		if d := h.c.nextTimeout(); d != 100*time.Millisecond {
			t.Errorf("timeout %v, want the 100 ms left", d)
		}
		h.advance(time.Second)
		if d := h.c.nextTimeout(); d != time.Millisecond {
			t.Errorf("timeout %v past the deadline, want the 1 ms floor", d)
		}
	})
	t.Run("pending tasks fail when the controller stops", func(t *testing.T) {
		h := newHarness(t, Config{})
		cl := h.newClient("client")
		m := cl.send(cl.balanced(0))
		cl.send(cl.control(wire.Shutdown, nil, wire.ShutdownContent{Controller: true}))
		got := cl.expect(wire.ShutdownReply, wire.TaskReply)
		expectFailedReply(t, got[1], m.ID, wire.NoEngine, wire.StatusError, errShutdown)
	})
	t.Run("tasks pending behind full engines fail when the controller stops", func(t *testing.T) {
		h := newHarness(t, Config{})
		e := h.addEngines(1)[0]
		cl := h.newClient("client")
		a, b, c := cl.send(cl.balanced(0)), cl.send(cl.balanced(0)), cl.send(cl.balanced(0))
		e.expectWork(a.ID, b.ID) // depth 2: c waits
		cl.send(cl.control(wire.Shutdown, nil, wire.ShutdownContent{Controller: true}))
		e.expect(wire.Shutdown)
		got := cl.expect(wire.ShutdownReply, wire.TaskReply)
		expectFailedReply(t, got[1], c.ID, wire.NoEngine, wire.StatusError, errShutdown)
		// The engine finishing a task makes room; c must not be sent.
		h.logs.Reset()
		e.reply(a.ID, wire.StatusOK)
		cl.expect(wire.TaskReply)
		e.expect()
		if bytes.Contains(h.logs.Bytes(), []byte("level=ERROR")) {
			t.Errorf("errors logged:\n%s", h.logs)
		}
	})
}

func TestResigning(t *testing.T) {
	h := newHarness(t, Config{})
	es := h.addEngines(3)
	cl := h.newClient("client")
	req := cl.bigApply(0, 1, 2)
	sealed := cl.seal(req)
	cl.sendFrames(sealed)
	for _, e := range es {
		frames := h.takeFrames("engine", e.rid)
		if len(frames) != 1 {
			t.Fatalf("engine %d received %d messages, want 1", e.id, len(frames))
		}
		f := frames[0]
		if _, err := h.client.Open(f, true); err == nil {
			t.Errorf("engine %d: the request still opens with the client key", e.id)
		}
		m, err := h.engine.Open(f, true)
		if err != nil {
			t.Errorf("engine %d: the request does not open with the engine key: %v", e.id, err)
		} else if m.ID != req.ID || len(m.Targets) != 0 {
			t.Errorf("engine %d: got request %s for engines %v, want %s without its targets", e.id, m.ID, m.Targets, req.ID)
		}
		// The envelope loses only its target list; buffers pass untouched.
		if len(f) != len(sealed) || !bytes.Equal(envelope(f), wire.WithoutTargets(envelope(sealed))) || !bytes.Equal(f[1], sealed[1]) {
			t.Errorf("engine %d: envelope or buffers changed in relay", e.id)
		}
	}

	rep := es[1].msg(wire.TaskReply, nil)
	rep.Parent, rep.Status = req.ID, wire.StatusOK
	rep.Started, rep.Completed = 1, 2
	var err error
	if rep.Content, rep.Buffers, err = wire.EncodeResult([]int32{7}); err != nil {
		t.Fatal(err)
	}
	repFrames := es[1].seal(rep)
	es[1].sendFrames(repFrames)
	frames := h.takeFrames("client", cl.rid)
	if len(frames) != 1 {
		t.Fatalf("client received %d messages, want 1", len(frames))
	}
	f := frames[0]
	if _, err := h.engine.Open(f, true); err == nil {
		t.Error("the reply still opens with the engine key")
	}
	if _, err := h.client.Open(f, true); err != nil {
		t.Errorf("the reply does not open with the client key: %v", err)
	}
	if len(f) != len(repFrames) || !bytes.Equal(envelope(f), envelope(repFrames)) {
		t.Error("the reply's envelope, with its buffer, changed in relay")
	}

	// Output is relayed the same way.
	out := es[2].msg(wire.Output, wire.OutputChunk{Stream: "stdout", Data: []byte("hi\n")})
	out.Parent = req.ID
	outFrames := es[2].seal(out)
	es[2].sendFrames(outFrames)
	frames = h.takeFrames("client", cl.rid)
	if len(frames) != 1 || !bytes.Equal(envelope(frames[0]), envelope(outFrames)) {
		t.Fatalf("client received %d messages, want the output relayed", len(frames))
	}
	if _, err := h.client.Open(frames[0], true); err != nil {
		t.Errorf("the output does not open with the client key: %v", err)
	}
}

func TestRegistration(t *testing.T) {
	h := newHarness(t, Config{HeartbeatPeriod: 250 * time.Millisecond})
	listeners := []*fakeClient{h.connectedClient("c1"), h.connectedClient("c2")}
	bystander := h.newClient("c3")
	var engines []*fakeEngine
	for i, job := range []string{"job-a", "job-b", "job-a", "", "job-c", "job-b"} {
		e := h.newEngine(fmt.Sprintf("engine-%d", i))
		r := e.register(wire.EngineInfo{Host: "node", PID: i, Cores: 2, JobKey: job, Job: 42, Rank: i})
		if r.ID != i || r.HeartbeatMS != 250 || r.ClusterID != "test-cluster" {
			t.Errorf("register reply %+v, want id %d, 250 ms, test-cluster", r, i)
		}
		engines = append(engines, e)
		for _, cl := range listeners {
			m := cl.expect(wire.EngineEvent)[0]
			ev := decode[wire.EngineEventContent](t, m)
			if ev.Event != wire.EventRegistered || ev.Engine.ID != i || m.Engine != i || ev.Engine.PID != i {
				t.Errorf("event %+v (header engine %d), want engine %d registered", ev, m.Engine, i)
			}
		}
	}
	bystander.expect()

	// A repeated registration gets the same answer and no event.
	if r := engines[2].register(wire.EngineInfo{Host: "other"}); r.ID != 2 {
		t.Errorf("repeated registration got id %d, want 2", r.ID)
	}
	for _, cl := range listeners {
		cl.expect()
	}

	cl := listeners[0]
	cl.send(cl.control(wire.Engines, nil, nil))
	list := decode[wire.EnginesReplyContent](t, cl.expect(wire.EnginesReply)[0]).Engines
	var jobs []int
	for _, info := range list {
		jobs = append(jobs, info.Job)
		if info.Registered != epoch.UnixNano() || info.State != "idle" || info.Host != "node" {
			t.Errorf("engine %+v, want registered at the fake clock, idle, on node", info)
		}
	}
	if want := []int{1, 2, 1, 0, 3, 2}; !slices.Equal(jobs, want) {
		t.Errorf("job numbers %v, want %v", jobs, want)
	}

	// An engine that unregisters is gone, and clients are told.
	engines[4].send(engines[4].msg(wire.Unregister, nil))
	for _, l := range listeners {
		ev := decode[wire.EngineEventContent](t, l.expect(wire.EngineEvent)[0])
		if ev.Event != wire.EventUnregistered || ev.Engine.ID != 4 {
			t.Errorf("event %+v, want engine 4 unregistered", ev)
		}
	}
	// A new registration from the same routing id is a new engine.
	if r := engines[4].register(wire.EngineInfo{Host: "node"}); r.ID != 6 {
		t.Errorf("registration after unregistering got id %d, want 6", r.ID)
	}
}

// A client whose socket is gone is dropped from the event list.
func TestBroadcastDropsVanishedClients(t *testing.T) {
	h := newHarness(t, Config{})
	cl := h.connectedClient("client")
	h.out.gone[cl.rid] = true
	h.addEngines(1)
	if h.c.clients[cl.rid] {
		t.Error("an unreachable client is still listed for events")
	}
	cl.send(cl.control(wire.Disconnect, nil, nil))
	h.expectSilence()
}

func TestBalancedRetries(t *testing.T) {
	t.Run("a failed task is retried on another engine", func(t *testing.T) {
		h := newHarness(t, Config{})
		es := h.addEngines(2)
		cl := h.newClient("client")
		m := cl.send(cl.balanced(1))
		es[0].expectWork(m.ID)
		es[0].reply(m.ID, wire.StatusError)
		cl.expect() // not yet: it has a retry left
		es[1].expectWork(m.ID)
		es[0].reply(m.ID, wire.StatusOK) // late, and not its task any more
		cl.expect()
		es[1].reply(m.ID, wire.StatusError)
		r := cl.expect(wire.TaskReply)[0]
		if r.Engine != 1 || r.Status != wire.StatusError {
			t.Errorf("reply from engine %d status %q, want engine 1's error", r.Engine, r.Status)
		}
		expectStatus(t, h, cl, m.ID, wire.TaskInfo{ID: m.ID, Engine: 1, State: wire.TaskFailed, Attempts: 2})
	})
	t.Run("targets none of which is registered", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.addEngines(1)
		cl := h.newClient("client")
		m := cl.send(cl.balanced(3, 4, 7))
		cl.expectFailed(m.ID, wire.NoEngine, wire.StatusError, errUnknownEngine, "[4 7]")
	})
	t.Run("the last target dies while the task waits", func(t *testing.T) {
		h := newHarness(t, Config{})
		es := h.addEngines(2)
		cl := h.newClient("client")
		a := cl.send(cl.balanced(0, 1))
		b := cl.send(cl.balanced(0, 1))
		waiting := cl.send(cl.balanced(0, 1)) // engine 1 holds two: depth 2
		es[1].expectWork(a.ID, b.ID)
		es[1].send(es[1].msg(wire.Unregister, nil))
		got := cl.expect(wire.TaskReply, wire.TaskReply, wire.TaskReply)
		expectFailedReply(t, got[0], a.ID, 1, wire.StatusError, errEngine, "engine 1")
		expectFailedReply(t, got[1], b.ID, 1, wire.StatusError, errEngine, "engine 1")
		expectFailedReply(t, got[2], waiting.ID, wire.NoEngine, wire.StatusError, errUnknownEngine, "[1]")
		es[0].expect()
	})
}

func TestOutputRouting(t *testing.T) {
	h := newHarness(t, Config{})
	es := h.addEngines(2)
	cl := h.newClient("client")
	m := cl.send(cl.apply(0))
	es[0].expectWork(m.ID)
	for _, tc := range []struct {
		e      *fakeEngine
		parent string
		want   int
	}{{es[0], m.ID, 1}, {es[1], m.ID, 0}, {es[0], "nobody-1", 0}} {
		out := tc.e.msg(wire.Output, wire.OutputChunk{Stream: "stderr", Data: []byte("x")})
		out.Parent = tc.parent
		tc.e.send(out)
		if got := cl.recv(); len(got) != tc.want {
			t.Errorf("output of %q from engine %d: client received %d messages, want %d", tc.parent, tc.e.id, len(got), tc.want)
		}
	}
	h.expectSilence()
}

func TestBatching(t *testing.T) {
	h := newHarness(t, Config{})
	es := h.addEngines(2)
	cl := h.newClient("client")
	a, b, c := cl.apply(0), cl.apply(0, 1), cl.balanced(0)
	before := h.out.batches
	cl.sendFrames(sealBatch(cl.session, cl.signer, a, b, c))
	// The balanced task goes to the less loaded engine 1; each engine's
	// messages leave as one batch.
	es[0].expectWork(a.ID, b.ID)
	es[1].expectWork(b.ID, c.ID)
	if got := h.out.batches - before; got != 2 {
		t.Fatalf("%d batches sent to engines, want 2", got)
	}
	// Replies sent by an engine in one batch reach the client in one.
	before = h.out.batches
	r1, r2 := es[0].msg(wire.TaskReply, nil), es[0].msg(wire.TaskReply, nil)
	r1.Parent, r1.Status = a.ID, wire.StatusOK
	r2.Parent, r2.Status = b.ID, wire.StatusOK
	es[0].sendFrames(sealBatch(es[0].session, es[0].signer, r1, r2))
	got := cl.expect(wire.TaskReply, wire.TaskReply)
	if got[0].Parent != a.ID || got[1].Parent != b.ID || h.out.batches-before != 1 {
		t.Fatalf("replies %q %q in %d batches", got[0].Parent, got[1].Parent, h.out.batches-before)
	}
}

// Ranks must lie within the job's size, and each rank of a job registers
// once; a refused engine is told why, and the rank frees when it leaves.
func TestRegistrationChecksRanks(t *testing.T) {
	h := newHarness(t, Config{})
	first := h.newEngine("rank-0")
	first.register(wire.EngineInfo{Host: "node", JobKey: "job-a", Rank: 0, Size: 2})
	for _, tc := range []struct {
		name string
		info wire.EngineInfo
		want string
	}{
		{"rank too high", wire.EngineInfo{JobKey: "job-a", Rank: 2, Size: 2}, "rank 2 is outside the job's ranks 0..1"},
		{"negative rank", wire.EngineInfo{JobKey: "job-a", Rank: -1, Size: 2}, "rank -1 is outside"},
		{"negative size", wire.EngineInfo{JobKey: "job-a", Size: -3}, "MPI size -3 is negative"},
		{"rank taken", wire.EngineInfo{JobKey: "job-a", Rank: 0, Size: 2}, "job 1 already has rank 0 (engine 0)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := h.newEngine("bad-" + tc.name)
			m := e.msg(wire.Register, tc.info)
			e.send(m)
			reply := h.takeFirst("engine", e.rid)
			info := decode[wire.ErrorInfo](t, reply)
			if reply.Type != wire.Error || reply.Parent != m.ID || !strings.Contains(info.Message, tc.want) {
				t.Errorf("got %s %+v, want an error naming %q", reply.Type, info, tc.want)
			}
		})
	}
	// The same rank in another job, and the free rank in this one, are fine.
	h.newEngine("other-job").register(wire.EngineInfo{JobKey: "job-b", Rank: 0, Size: 2})
	h.newEngine("rank-1").register(wire.EngineInfo{JobKey: "job-a", Rank: 1, Size: 2})
	// Once rank 0 leaves, a new rank 0 may register.
	first.send(first.msg(wire.Unregister, nil))
	h.discard()
	if r := h.newEngine("rank-0-again").register(wire.EngineInfo{JobKey: "job-a", Rank: 0, Size: 2}); r.ID != 3 {
		t.Errorf("the new rank 0 got id %d, want 3", r.ID)
	}
}
