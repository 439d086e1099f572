package controller

import (
	"log/slog"
	"testing"
	"time"

	"github.com/ipcluster/ipcluster/wire"
)

// fuzzHarness returns a core with two registered engines, a connected
// client and live work with fixed ids for fuzzed messages to name:
// "d1" direct on engines 0 and 1, "b1" to "b4" balanced and outstanding
// ("b1" with a retry), "b5" pending.
func fuzzHarness(t testing.TB) (*harness, []*fakeEngine, *fakeClient) {
	h := newHarness(t, Config{Logger: slog.New(slog.DiscardHandler)})
	es := h.addEngines(2)
	cl := h.connectedClient("client")
	d1 := cl.apply(0, 1)
	d1.ID = "d1"
	cl.send(d1)
	for i, retries := range []int{1, 0, 0, 0, 0} {
		b := cl.balanced(retries)
		b.ID = "b" + string(rune('1'+i))
		cl.send(b)
	}
	h.discard()
	return h, es, cl
}

// splitFrames cuts data into frames, each prefixed by its length byte;
// a length past the end takes the rest.
func splitFrames(data []byte) [][]byte {
	var frames [][]byte
	for len(data) > 0 && len(frames) < 16 {
		n := int(data[0])
		data = data[1:]
		n = min(n, len(data))
		frames = append(frames, data[:n])
		data = data[n:]
	}
	return frames
}

// joinFrames is the inverse of splitFrames, for seeds.
func joinFrames(frames [][]byte) []byte {
	var out []byte
	for _, f := range frames {
		if len(f) > 254 {
			out = append(out, 255)
			return append(out, f...)
		}
		out = append(append(out, byte(len(f))), f...)
	}
	return out
}

// stillWorks checks the core's invariants and that it serves a new client.
func stillWorks(h *harness) {
	h.t.Helper()
	h.check()
	h.discard()
	h.newClient("checker").expectWorks()
}

// seeds returns valid messages from a client and from engine 0: sealed
// frames whose envelopes name the fuzz harness's tasks.
func seeds(f *testing.F) (client, engine [][][]byte) {
	_, es, cl := fuzzHarness(f)
	ids := wire.IDsContent{IDs: []string{"d1", "b1", "b5", "x"}}
	for _, m := range []*wire.Message{
		cl.apply(0, 1), cl.balanced(2, 1), cl.apply(),
		cl.control(wire.Abort, nil, ids), cl.control(wire.Abort, []int{0, 1}, nil),
		cl.control(wire.TaskStatus, nil, ids), cl.control(wire.Results, nil, ids),
		cl.control(wire.Interrupt, []int{1}, nil), cl.control(wire.Connect, nil, nil),
		cl.control(wire.Shutdown, []int{0}, wire.ShutdownContent{Controller: true}),
		cl.control(wire.Disconnect, nil, nil),
	} {
		client = append(client, cl.seal(m))
	}
	e := es[0]
	for _, parent := range []string{"d1", "b1", "b3"} {
		for _, st := range []wire.Status{wire.StatusOK, wire.StatusError, wire.StatusAborted} {
			m := e.msg(wire.TaskReply, wire.ErrorInfo{Type: "E"})
			m.Parent, m.Status, m.Started, m.Completed = parent, st, 1, 2
			engine = append(engine, e.seal(m))
		}
	}
	out := e.msg(wire.Output, wire.OutputChunk{Stream: "stdout", Data: []byte("x")})
	out.Parent = "d1"
	for _, m := range []*wire.Message{
		e.msg(wire.Heartbeat, wire.HeartbeatContent{Queued: 1}), out,
		e.msg(wire.Register, wire.EngineInfo{Host: "h", JobKey: "j"}), e.msg(wire.Unregister, nil),
	} {
		engine = append(engine, e.seal(m))
	}
	return client, engine
}

// FuzzHandleClient feeds arbitrary frames to the client port.
func FuzzHandleClient(f *testing.F) {
	client, _ := seeds(f)
	for _, frames := range client {
		f.Add(joinFrames(frames))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, _, _ := fuzzHarness(t)
		h.c.handleClient("client", splitFrames(data))
		stillWorks(h)
	})
}

// FuzzHandleEngine feeds arbitrary frames to the engine port, from engine
// 0 or from a peer that is not registered.
func FuzzHandleEngine(f *testing.F) {
	_, engine := seeds(f)
	for _, frames := range engine {
		f.Add(false, joinFrames(frames))
	}
	f.Fuzz(func(t *testing.T, stranger bool, data []byte) {
		h, es, _ := fuzzHarness(t)
		rid := es[0].rid
		if stranger {
			rid = "stranger"
		}
		h.c.handleEngine(rid, splitFrames(data))
		stillWorks(h)
	})
}

// FuzzHandleClientSigned signs a fuzzed envelope with the client key, so
// that decoding and handling are reached; bufs are split into buffers.
func FuzzHandleClientSigned(f *testing.F) {
	client, _ := seeds(f)
	for _, frames := range client {
		f.Add(envelope(frames), joinFrames(frames[1:]))
	}
	f.Fuzz(func(t *testing.T, env, bufs []byte) {
		h, _, _ := fuzzHarness(t)
		frames := append(resigned(h.client, env), splitFrames(bufs)...)
		h.c.handleClient("client", frames)
		stillWorks(h)
	})
}

// FuzzHandleEngineSigned signs a fuzzed envelope with the engine key and
// sends it from engine 0, engine 1 or a peer that is not registered.
func FuzzHandleEngineSigned(f *testing.F) {
	_, engine := seeds(f)
	for _, frames := range engine {
		f.Add(uint8(0), envelope(frames), joinFrames(frames[1:]))
	}
	f.Fuzz(func(t *testing.T, from uint8, env, bufs []byte) {
		h, es, _ := fuzzHarness(t)
		rid := "stranger"
		if int(from) < len(es) {
			rid = es[from].rid
		}
		frames := append(resigned(h.engine, env), splitFrames(bufs)...)
		h.c.handleEngine(rid, frames)
		stillWorks(h)
	})
}

// FuzzSequence sends a sequence of signed envelopes, each on the port and
// from the peer its first byte selects, with the clock advancing and
// ticks in between, so that fuzzing reaches states that need several
// messages. The invariants are checked after every step.
func FuzzSequence(f *testing.F) {
	client, engine := seeds(f)
	var seq [][]byte
	for i, frames := range client[:3] {
		seq = append(seq, append([]byte{byte(i)}, envelope(frames)...))
	}
	for i, frames := range engine {
		seq = append(seq, append([]byte{byte(4 + i%3)}, envelope(frames)...))
	}
	f.Add(joinFrames(seq))
	f.Add(joinFrames([][]byte{append([]byte{0x40}, envelope(client[3])...), append([]byte{4}, envelope(engine[1])...)}))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, es, _ := fuzzHarness(t)
		for _, step := range splitFrames(data) {
			if len(step) == 0 {
				continue
			}
			sel, env := step[0], step[1:]
			switch sel & 7 {
			case 0, 1, 2, 3:
				rid := []string{"client", "other", "gone", "client"}[sel&3]
				h.out.gone["gone"] = true
				h.c.handleClient(rid, resigned(h.client, env))
			case 4, 5:
				h.c.handleEngine(es[sel&1].rid, resigned(h.engine, env))
			case 6:
				h.c.handleEngine("stranger", resigned(h.engine, env))
			case 7:
				h.c.tick(sel&8 != 0)
			}
			h.advance(time.Duration(sel>>4) * 500 * time.Millisecond)
			h.check()
		}
		stillWorks(h)
	})
}
