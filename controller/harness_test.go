package controller

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipcluster/ipcluster/controller/scheduler"
	"github.com/ipcluster/ipcluster/transport"
	"github.com/ipcluster/ipcluster/wire"
)

// harness drives a core directly, in the manner of Nomad's scheduler test
// harness: fake clients and engines hand it correctly sealed messages, a
// fake clock stands in for time, and a recorder keeps what the core sends.
// After every event the harness checks the core's invariants.
type harness struct {
	t    testing.TB
	c    *core
	out  *recorder
	logs *bytes.Buffer

	clientKey, engineKey []byte
	client, engine       *wire.Signer // open what the core sends on each port
}

// sent is one message the core sent, frames without the routing id.
type sent struct {
	role   string // "client" or "engine"
	rid    string
	frames [][]byte
}

// recorder is where the core's flush sends in tests. It keeps each
// message on its own, taking batches apart (re-sealed alone with the same
// key), so that tests see what each peer received in order.
type recorder struct {
	sent    []sent
	gone    map[string]bool // client routing ids that answer ErrUnreachable
	batches int             // batches received
	keys    map[bool]*wire.Signer
}

func (r *recorder) send(engine bool, rid string, frames [][]byte) error {
	role := "client"
	if engine {
		role = "engine"
	}
	if !engine && r.gone[rid] {
		return transport.ErrUnreachable
	}
	batch, msgs, err := r.keys[engine].OpenRelay(frames)
	if err != nil {
		panic(fmt.Sprintf("the core sent %s %q frames that do not open: %v", role, rid, err))
	}
	if batch != nil {
		r.batches++
	}
	for _, m := range msgs {
		r.sent = append(r.sent, sent{role, rid, cloneFrames(r.keys[engine].SealRaw(wire.Header{}, []wire.Raw{m.Raw}))})
	}
	return nil
}

func cloneFrames(frames [][]byte) [][]byte {
	out := make([][]byte, len(frames))
	for i, f := range frames {
		out[i] = bytes.Clone(f)
	}
	return out
}

// epoch is where the fake clock starts.
var epoch = time.Unix(1_700_000_000, 0)

// newHarness returns a harness around a new core configured by cfg (zero
// fields take their defaults) with random HMAC keys. Log output is kept
// for assertions unless cfg sets a Logger.
func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t, out: &recorder{gone: map[string]bool{}}, logs: new(bytes.Buffer)}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	sched, err := scheduler.New(scheduler.Config{Policy: cfg.Scheduler, MaxDepth: cfg.PipelineDepth})
	if err != nil {
		t.Fatal(err)
	}
	h.clientKey, h.engineKey = randomKey(t), randomKey(t)
	h.client, h.engine = wire.NewSigner(h.clientKey), wire.NewSigner(h.engineKey)
	h.c = newCore(&cfg, "test-cluster", sched, h.clientKey, h.engineKey)
	h.out.keys = map[bool]*wire.Signer{false: h.client, true: h.engine}
	h.c.now = epoch
	return h
}

func randomKey(t testing.TB) []byte {
	k, err := hex.DecodeString(wire.NewHMACKey())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// advance moves the fake clock.
func (h *harness) advance(d time.Duration) { h.c.now = h.c.now.Add(d) }

// tick runs the core's periodic work.
func (h *harness) tick(drained bool) {
	h.t.Helper()
	h.c.tick(drained)
	h.check()
}

// takeFrames removes and returns what the core sent to rid on role's port.
func (h *harness) takeFrames(role, rid string) [][][]byte {
	var out [][][]byte
	h.out.sent = slices.DeleteFunc(h.out.sent, func(s sent) bool {
		if s.role == role && s.rid == rid {
			out = append(out, s.frames)
			return true
		}
		return false
	})
	return out
}

// takeFirst removes and opens the first message the core sent to rid on
// role's port, leaving the rest.
func (h *harness) takeFirst(role, rid string) *wire.Message {
	h.t.Helper()
	i := slices.IndexFunc(h.out.sent, func(s sent) bool { return s.role == role && s.rid == rid })
	if i < 0 {
		h.t.Fatalf("the core sent %s %q nothing", role, rid)
	}
	s := h.out.sent[i]
	h.out.sent = slices.Delete(h.out.sent, i, i+1)
	m, err := h.signer(role).Open(s.frames, true)
	if err != nil {
		h.t.Fatalf("the core sent %s %q a message that does not open with the %s key: %v", role, rid, role, err)
	}
	return m
}

func (h *harness) signer(role string) *wire.Signer {
	if role == "engine" {
		return h.engine
	}
	return h.client
}

// take removes and opens what the core sent to rid on role's port; every
// message must open with that port's key, buffers included.
func (h *harness) take(role, rid string) []*wire.Message {
	h.t.Helper()
	var out []*wire.Message
	for _, f := range h.takeFrames(role, rid) {
		m, err := h.signer(role).Open(f, true)
		if err != nil {
			h.t.Fatalf("the core sent %s %q a message that does not open with the %s key: %v", role, rid, role, err)
		}
		out = append(out, m)
	}
	return out
}

// discard forgets what the core has sent so far.
func (h *harness) discard() { h.out.sent = nil }

// expectSilence requires that the core sent nothing to anyone.
func (h *harness) expectSilence() {
	h.t.Helper()
	for _, s := range h.out.sent {
		h.t.Errorf("unexpected message to %s %q", s.role, s.rid)
	}
	h.out.sent = nil
}

// expectLog requires that the log mentions each of words.
func (h *harness) expectLog(words ...string) {
	h.t.Helper()
	for _, w := range words {
		if !strings.Contains(h.logs.String(), w) {
			h.t.Errorf("the log does not mention %q:\n%s", w, h.logs)
		}
	}
}

// expectTypes requires exactly the messages of types want, in order.
func expectTypes(t testing.TB, who string, got []*wire.Message, want ...wire.Type) []*wire.Message {
	t.Helper()
	var types []wire.Type
	for _, m := range got {
		types = append(types, m.Type)
	}
	if !slices.Equal(types, want) {
		t.Fatalf("%s received %v, want %v", who, types, want)
	}
	return got
}

// decode decodes the content of m into a T.
func decode[T any](t testing.TB, m *wire.Message) T {
	t.Helper()
	var v T
	if err := wire.DecodeContent(m, &v); err != nil {
		t.Fatalf("%s content: %v", m.Type, err)
	}
	return v
}

// expectErrorInfo checks a controller-made error content: its type, and
// that its message mentions each of words.
func expectErrorInfo(t testing.TB, m *wire.Message, kind string, words ...string) wire.ErrorInfo {
	t.Helper()
	info := decode[wire.ErrorInfo](t, m)
	if info.Type != kind {
		t.Errorf("error type %q (%s), want %q", info.Type, info.Message, kind)
	}
	for _, w := range words {
		if !strings.Contains(info.Message, w) {
			t.Errorf("error message %q does not mention %q", info.Message, w)
		}
	}
	return info
}

// ---- fake clients ----

type fakeClient struct {
	h       *harness
	rid     string
	session *wire.Session
	signer  *wire.Signer
}

func (h *harness) newClient(rid string) *fakeClient {
	return &fakeClient{h: h, rid: rid, session: wire.SessionWithID(rid), signer: wire.NewSigner(h.clientKey)}
}

// connectedClient returns a client that has connected, and so receives
// engine events.
func (h *harness) connectedClient(rid string) *fakeClient {
	h.t.Helper()
	cl := h.newClient(rid)
	cl.send(cl.control(wire.Connect, nil, nil))
	cl.expect(wire.ConnectReply)
	return cl
}

// seal stamps and signs m as the client's own sender would.
func (cl *fakeClient) seal(m *wire.Message) [][]byte {
	cl.session.Stamp(&m.Header)
	return cl.signer.Seal(m)
}

// send seals m and hands it to the core.
func (cl *fakeClient) send(m *wire.Message) *wire.Message {
	cl.h.t.Helper()
	cl.sendFrames(cl.seal(m))
	return m
}

// sendFrames hands the core a copy of frames, as received from the socket.
func (cl *fakeClient) sendFrames(frames [][]byte) {
	cl.h.t.Helper()
	cl.h.c.handleClient(cl.rid, cloneFrames(frames))
	cl.h.check()
}

// control returns a message of type t to the controller.
func (cl *fakeClient) control(t wire.Type, targets []int, content any) *wire.Message {
	cl.h.t.Helper()
	m := &wire.Message{Header: cl.session.Header(t)}
	m.Targets = targets
	if content != nil {
		var err error
		if m.Content, err = wire.EncodeContent(content); err != nil {
			cl.h.t.Fatal(err)
		}
	}
	return m
}

// apply returns a direct apply to targets, with an array argument so that
// it has a buffer to relay.
func (cl *fakeClient) apply(targets ...int) *wire.Message {
	cl.h.t.Helper()
	content, bufs, err := wire.EncodeApply("echo", []any{"hello", []float64{1, 2}})
	if err != nil {
		cl.h.t.Fatal(err)
	}
	m := &wire.Message{Header: cl.session.Header(wire.Apply), Content: content, Buffers: bufs}
	m.Targets = targets
	return m
}

// bigApply returns a direct apply whose argument is too large to travel
// inside the envelope: its buffer follows in a frame of its own.
func (cl *fakeClient) bigApply(targets ...int) *wire.Message {
	cl.h.t.Helper()
	content, bufs, err := wire.EncodeApply("echo", []any{make([]float64, wire.InlineSize/8+1)})
	if err != nil {
		cl.h.t.Fatal(err)
	}
	m := &wire.Message{Header: cl.session.Header(wire.Apply), Content: content, Buffers: bufs}
	m.Targets = targets
	return m
}

// balanced returns a load-balanced apply with retries, restricted to
// targets if any.
func (cl *fakeClient) balanced(retries int, targets ...int) *wire.Message {
	m := cl.apply(targets...)
	m.Balanced, m.Retries = true, retries
	return m
}

// recv takes what the core sent the client.
func (cl *fakeClient) recv() []*wire.Message {
	cl.h.t.Helper()
	return cl.h.take("client", cl.rid)
}

// expect takes what the core sent the client and requires those types.
func (cl *fakeClient) expect(types ...wire.Type) []*wire.Message {
	cl.h.t.Helper()
	return expectTypes(cl.h.t, "client "+cl.rid, cl.recv(), types...)
}

// expectError requires one error reply to parent of kind whose message
// mentions words.
func (cl *fakeClient) expectError(parent, kind string, words ...string) wire.ErrorInfo {
	cl.h.t.Helper()
	m := cl.expect(wire.Error)[0]
	if m.Parent != parent {
		cl.h.t.Errorf("error reply has parent %q, want %q", m.Parent, parent)
	}
	return expectErrorInfo(cl.h.t, m, kind, words...)
}

// expectFailed requires one task reply to parent made by the controller,
// with status and an ErrorInfo of kind mentioning words.
func (cl *fakeClient) expectFailed(parent string, engine int, status wire.Status, kind string, words ...string) {
	cl.h.t.Helper()
	m := cl.expect(wire.TaskReply)[0]
	expectFailedReply(cl.h.t, m, parent, engine, status, kind, words...)
}

func expectFailedReply(t testing.TB, m *wire.Message, parent string, engine int, status wire.Status, kind string, words ...string) {
	t.Helper()
	if m.Type != wire.TaskReply || m.Parent != parent || m.Engine != engine || m.Status != status {
		t.Errorf("got %s parent %q engine %d status %q; want task_reply parent %q engine %d status %q",
			m.Type, m.Parent, m.Engine, m.Status, parent, engine, status)
	}
	expectErrorInfo(t, m, kind, words...)
}

// expectWorks checks that the core still serves the client: an engines
// request is answered.
func (cl *fakeClient) expectWorks() {
	cl.h.t.Helper()
	req := cl.send(cl.control(wire.Engines, nil, nil))
	if m := cl.expect(wire.EnginesReply)[0]; m.Parent != req.ID {
		cl.h.t.Errorf("engines_reply parent %q, want %q", m.Parent, req.ID)
	}
}

// ---- fake engines ----

type fakeEngine struct {
	h       *harness
	rid     string
	session *wire.Session
	signer  *wire.Signer
	id      int // wire.NoEngine until registered
}

func (h *harness) newEngine(rid string) *fakeEngine {
	return &fakeEngine{h: h, rid: rid, session: wire.SessionWithID(rid), signer: wire.NewSigner(h.engineKey), id: wire.NoEngine}
}

// addEngines registers n engines, "engine-0", "engine-1", ...; with no
// engine registered before, their ids are 0, 1, ...
func (h *harness) addEngines(n int) []*fakeEngine {
	h.t.Helper()
	var out []*fakeEngine
	for range n {
		e := h.newEngine(fmt.Sprintf("engine-%d", len(h.c.bySession)))
		e.register(wire.EngineInfo{Host: "node", PID: 100 + len(h.c.bySession), Cores: 1})
		out = append(out, e)
	}
	return out
}

// register sends Register with info and requires a RegisterReply before
// anything else (pending work may follow it).
func (e *fakeEngine) register(info wire.EngineInfo) wire.RegisterReplyContent {
	e.h.t.Helper()
	m := e.msg(wire.Register, info)
	e.send(m)
	reply := e.h.takeFirst("engine", e.rid)
	if reply.Type != wire.RegisterReply || reply.Parent != m.ID {
		e.h.t.Fatalf("got %s with parent %q, want a register_reply to %q", reply.Type, reply.Parent, m.ID)
	}
	r := decode[wire.RegisterReplyContent](e.h.t, reply)
	e.id = r.ID
	return r
}

// msg returns a message of type t from the engine, naming itself.
func (e *fakeEngine) msg(t wire.Type, content any) *wire.Message {
	e.h.t.Helper()
	m := &wire.Message{Header: e.session.Header(t)}
	m.Engine = e.id
	if content != nil {
		var err error
		if m.Content, err = wire.EncodeContent(content); err != nil {
			e.h.t.Fatal(err)
		}
	}
	return m
}

func (e *fakeEngine) seal(m *wire.Message) [][]byte {
	e.session.Stamp(&m.Header)
	return e.signer.Seal(m)
}

func (e *fakeEngine) send(m *wire.Message) *wire.Message {
	e.h.t.Helper()
	e.sendFrames(e.seal(m))
	return m
}

func (e *fakeEngine) sendFrames(frames [][]byte) {
	e.h.t.Helper()
	e.h.c.handleEngine(e.rid, cloneFrames(frames))
	e.h.check()
}

// heartbeat sends a heartbeat and requires the core to answer it.
func (e *fakeEngine) heartbeat() {
	e.h.t.Helper()
	m := e.send(e.msg(wire.Heartbeat, wire.HeartbeatContent{}))
	r := e.expect(wire.Heartbeat)[0]
	if r.Parent != m.ID || r.Engine != e.id {
		e.h.t.Errorf("heartbeat answer: parent %q engine %d, want %q %d", r.Parent, r.Engine, m.ID, e.id)
	}
}

// reply answers request id with status: a result for ok, else an
// ErrorInfo. The task ran for a millisecond ending now.
func (e *fakeEngine) reply(id string, status wire.Status) *wire.Message {
	e.h.t.Helper()
	m := e.msg(wire.TaskReply, nil)
	m.Parent, m.Status = id, status
	m.Completed = e.h.c.now.UnixNano()
	m.Started = m.Completed - int64(time.Millisecond)
	var err error
	if status == wire.StatusOK {
		m.Content, m.Buffers, err = wire.EncodeResult([]float64{float64(e.id)})
	} else {
		m.Content, err = wire.EncodeContent(wire.ErrorInfo{Type: "ValueError", Message: "bad value"})
	}
	if err != nil {
		e.h.t.Fatal(err)
	}
	return e.send(m)
}

func (e *fakeEngine) recv() []*wire.Message {
	e.h.t.Helper()
	return e.h.take("engine", e.rid)
}

func (e *fakeEngine) expect(types ...wire.Type) []*wire.Message {
	e.h.t.Helper()
	return expectTypes(e.h.t, "engine "+e.rid, e.recv(), types...)
}

// expectWork requires the core to have forwarded exactly the requests
// ids, in order.
func (e *fakeEngine) expectWork(ids ...string) {
	e.h.t.Helper()
	var got []string
	for _, m := range e.recv() {
		got = append(got, string(m.Type)+" "+m.ID)
	}
	var want []string
	for _, id := range ids {
		want = append(want, "apply "+id)
	}
	if !slices.Equal(got, want) {
		e.h.t.Fatalf("engine %d received %q, want %q", e.id, got, want)
	}
}

func (e *fakeEngine) expectError(parent, kind string, words ...string) {
	e.h.t.Helper()
	m := e.expect(wire.Error)[0]
	if m.Parent != parent {
		e.h.t.Errorf("error reply has parent %q, want %q", m.Parent, parent)
	}
	expectErrorInfo(e.h.t, m, kind, words...)
}

// ---- invariants ----

// check verifies what must hold between any two events.
func (h *harness) check() {
	h.t.Helper()
	c := h.c
	c.flush(h.out.send) // the loop flushes after every turn
	fail := func(format string, args ...any) { h.t.Fatalf("invariant: "+format, args...) }
	if len(c.bySession) != len(c.engines) {
		fail("%d engines by routing id, %d by id", len(c.bySession), len(c.engines))
	}
	queued := map[*task]bool{}
	for id, eng := range c.engines {
		if eng.info.ID != id || c.bySession[eng.rid] != eng {
			fail("engine %d is filed wrongly", id)
		}
		balanced := 0
		for _, t := range eng.queue {
			if queued[t] {
				fail("task %v is queued twice", t.key)
			}
			queued[t] = true
			if c.tasks[t.key] != t {
				fail("task %v queued on engine %d is not live", t.key, id)
			}
			if t.engine != id || (!t.balanced && t.key.engine != id) {
				fail("task %v queued on engine %d says engine %d", t.key, id, t.engine)
			}
			if t.balanced {
				balanced++
			}
		}
		if got := c.sched.Outstanding(id); got != balanced {
			fail("engine %d: the scheduler counts %d balanced tasks, the queue %d", id, got, balanced)
		}
		for _, t := range eng.steering {
			if queued[t] {
				fail("steering task %v is listed twice", t.key)
			}
			queued[t] = true
			if c.tasks[t.key] != t || t.typ != wire.Steer || t.key.engine != id {
				fail("steering task %v on engine %d is not live or not a steering task", t.key, id)
			}
		}
	}
	for _, ag := range c.agree.open {
		for _, e := range ag.engines {
			if c.engines[e] == nil {
				fail("open steering request %s names engine %d, which is gone", ag.id, e)
			}
		}
	}
	pending, ids := 0, map[string]int{}
	for key, t := range c.tasks {
		ids[key.id]++
		switch {
		case t.key != key:
			fail("task %v filed as %v", t.key, key)
		case t.balanced && t.engine == wire.NoEngine:
			pending++
		case !queued[t]:
			fail("live task %v (engine %d) is in no engine's queue", key, t.engine)
		}
	}
	if !maps.Equal(ids, c.ids) {
		fail("live ids %v, counted %v", ids, c.ids)
	}
	if got := c.sched.Pending(); got != pending {
		fail("the scheduler holds %d pending tasks, the core %d", got, pending)
	}
	n := 0
	for _, l := range c.kept.byID {
		n += len(l)
	}
	if n != c.kept.count || n > c.kept.maxCount || c.kept.bytes > c.kept.maxBytes {
		fail("result cache holds %d results, counts %d (max %d), %d bytes (max %d)",
			n, c.kept.count, c.kept.maxCount, c.kept.bytes, c.kept.maxBytes)
	}
}

// sealBatch stamps and signs ms as one batch, the batch stamped first, as
// a sender does.
func sealBatch(session *wire.Session, signer *wire.Signer, ms ...*wire.Message) [][]byte {
	h := session.Header(wire.Batch)
	session.Stamp(&h)
	raws := make([]wire.Raw, len(ms))
	for i, m := range ms {
		session.Stamp(&m.Header)
		raws[i] = wire.Encode(m)
	}
	return signer.SealRaw(h, raws)
}
