package wire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

// batchOf seals ms as a batch, with their buffers in frames of 8 bytes,
// or in their envelopes if inline.
func batchOf(t *testing.T, s *Signer, inline bool, ms ...*Message) [][]byte {
	t.Helper()
	var raws []Raw
	for _, m := range ms {
		raws = append(raws, rawOf(m, 8, map[bool]int{true: InlineSize}[inline]))
	}
	return s.SealRaw(Header{ID: "b-1", Session: "b", Seq: 1, Time: 1, Engine: NoEngine}, raws)
}

func TestBatch(t *testing.T) {
	s := NewSigner(testKey)
	a := sampleMessage()
	b := &Message{Header: Header{ID: "s1-2", Type: Push, Session: "s1", Seq: 8, Time: 2, Targets: []int{1}, Engine: NoEngine},
		Buffers: [][]byte{[]byte("twenty bytes of data")}}
	c := &Message{Header: Header{ID: "s1-3", Type: Clear, Session: "s1", Seq: 9, Time: 3, Targets: []int{1}, Engine: NoEngine}}
	frames := batchOf(t, s, false, a, b, c)
	// a: 2 buffers of 3 and 0 bytes; b: one buffer in 3 frames; c: none.
	if len(frames) != 1+2+3 {
		t.Fatalf("%d frames", len(frames))
	}
	msgs, err := NewSigner(testKey).OpenAll(frames, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 {
		t.Fatalf("%d messages", len(msgs))
	}
	for i, want := range []*Message{a, b, c} {
		if !reflect.DeepEqual(msgs[i].Header, want.Header) {
			t.Errorf("message %d header\n got %+v\nwant %+v", i, msgs[i].Header, want.Header)
		}
		if len(msgs[i].Buffers) != len(want.Buffers) {
			t.Fatalf("message %d has %d buffers", i, len(msgs[i].Buffers))
		}
		for j := range want.Buffers {
			if !bytes.Equal(msgs[i].Buffers[j], want.Buffers[j]) {
				t.Errorf("message %d buffer %d = %q", i, j, msgs[i].Buffers[j])
			}
		}
	}
	// The relay view keeps each envelope as encoded, with its frames.
	batch, relayed, err := NewSigner(testKey).OpenRelay(frames)
	if err != nil || batch == nil || batch.Type != Batch || batch.ID != "b-1" || len(relayed) != 3 {
		t.Fatalf("OpenRelay = %v, %d, %v", batch, len(relayed), err)
	}
	if !bytes.Equal(relayed[0].Env, rawOf(a, 8, 0).Env) || len(relayed[1].Frames) != 3 || relayed[2].Frames != nil && len(relayed[2].Frames) != 0 {
		t.Errorf("relayed raw messages differ from what was sealed")
	}
	// Re-batched for another side, unchanged.
	again := NewSigner([]byte("other key")).SealRaw(Header{ID: "k-1", Session: "k", Seq: 1, Time: 1, Engine: NoEngine},
		[]Raw{relayed[2].Raw, relayed[0].Raw})
	out, err := NewSigner([]byte("other key")).OpenAll(again, true)
	if err != nil || len(out) != 2 || out[0].ID != "s1-3" || string(out[1].Buffers[0]) != "abc" {
		t.Fatalf("re-batched: %v, %v", out, err)
	}
	// One message is sent as itself.
	single := s.SealRaw(Header{}, []Raw{Encode(c)})
	if m, err := s.Open(single, true); err != nil || m.ID != "s1-3" {
		t.Fatalf("a batch of one: %v, %v", m, err)
	}
	// Messages with their buffers inline, mixed with one whose buffers
	// follow in frames: one frame, then the framed message's.
	mixed := s.SealRaw(Header{ID: "b-2", Session: "b", Seq: 2, Time: 2, Engine: NoEngine},
		[]Raw{rawOf(a, 8, InlineSize), rawOf(b, 8, 0), rawOf(a, 8, InlineSize)})
	if len(mixed) != 1+3 {
		t.Fatalf("mixed batch: %d frames, want 4", len(mixed))
	}
	msgs, err = NewSigner(testKey).OpenAll(mixed, true)
	if err != nil || len(msgs) != 3 || string(msgs[0].Buffers[0]) != "abc" || string(msgs[1].Buffers[0]) != "twenty bytes of data" || string(msgs[2].Buffers[0]) != "abc" {
		t.Fatalf("mixed batch: %v, %v", msgs, err)
	}
	if _, err := s.Open(frames, true); !errors.Is(err, ErrMalformed) {
		t.Errorf("Open of a batch: %v", err)
	}
}

// A batch copies the envelopes it carries once, into its own.
func TestBatchAllocations(t *testing.T) {
	s := NewSigner(testKey)
	reply := &Message{Header: Header{ID: "s1-1", Type: TaskReply, Session: "s1", Parent: "c1-1", Engine: 3},
		Buffers: [][]byte{make([]byte, 1024)}}
	raws := make([]Raw, 100)
	for i := range raws {
		raws[i] = Encode(reply)
	}
	h := Header{ID: "b-1", Session: "b", Seq: 1, Time: 1, Engine: NoEngine}
	if n := testing.AllocsPerRun(20, func() { s.SealRaw(h, raws) }); n > 3 {
		t.Errorf("sealing a batch of 100 made %v allocations, want at most 3 (envelope, frame list, header)", n)
	}
}

func TestBatchRefused(t *testing.T) {
	s := NewSigner(testKey)
	a, b := sampleMessage(), sampleMessage()
	b.ID = "s1-9"
	good := batchOf(t, s, false, a, b)
	tests := []struct {
		name   string
		frames func() [][]byte
		want   error
	}{
		{"tampered inner envelope", func() [][]byte {
			f := cloneFrames(good)
			f[0][len(f[0])-5] ^= 1
			return f
		}, ErrSignature},
		{"tampered buffer", func() [][]byte { f := cloneFrames(good); f[1][0] ^= 1; return f }, ErrSignature},
		{"tampered inline buffer", func() [][]byte {
			f := cloneFrames(batchOf(t, s, true, a, b))
			f[0][bytes.LastIndex(f[0], []byte("abc"))] ^= 1
			return f
		}, ErrSignature},
		{"missing frame", func() [][]byte { return good[:len(good)-1] }, ErrMalformed},
		{"extra frame", func() [][]byte { return append(cloneFrames(good), []byte("x")) }, ErrMalformed},
		{"batch in a batch", func() [][]byte {
			inner := &Message{Header: Header{ID: "i", Type: Batch, Session: "s", Seq: 1, Time: 1, Engine: NoEngine},
				Content: mustMsgpack(map[string]any{"m": [][]byte{{0x80}}})}
			return batchOf(t, s, false, inner, a)
		}, ErrMalformed},
		{"empty batch", func() [][]byte {
			m := &Message{Header: Header{ID: "e", Type: Batch, Session: "s", Seq: 1, Time: 1, Engine: NoEngine},
				Content: mustMsgpack(map[string]any{"m": [][]byte{}})}
			return s.Seal(m)
		}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSigner(testKey).OpenAll(tt.frames(), true)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func cloneFrames(frames [][]byte) [][]byte {
	out := make([][]byte, len(frames))
	for i, f := range frames {
		out[i] = bytes.Clone(f)
	}
	return out
}

func TestWithoutTargets(t *testing.T) {
	many := make([]int, 20) // more than a fixarray holds
	for i := range many {
		many[i] = i
	}
	tests := []struct {
		name string
		h    Header
	}{
		{"one target", Header{ID: "s-1", Type: Apply, Session: "s", Seq: 1, Time: 1, Targets: []int{3}, Engine: NoEngine}},
		{"many targets", Header{ID: "s-2", Type: Apply, Session: "s", Seq: 2, Time: 2, Targets: many, Engine: NoEngine, Timeout: 5 * time.Millisecond}},
		{"none", Header{ID: "s-3", Type: Apply, Session: "s", Seq: 3, Time: 3, Balanced: true, Engine: NoEngine}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Message{Header: tt.h, Content: []byte{0x80}, Buffers: [][]byte{[]byte("buffer")}}
			env := Encode(m).Env
			got := WithoutTargets(env)
			var back Message
			if _, err := decodeEnvelope(got, &back); err != nil {
				t.Fatalf("decoding the result: %v", err)
			}
			want := m.Header
			want.Targets = nil
			if !reflect.DeepEqual(back.Header, want) {
				t.Errorf("header = %+v, want %+v", back.Header, want)
			}
			if len(tt.h.Targets) == 0 && &got[0] != &env[0] {
				t.Error("an envelope without targets was copied")
			}
			if len(tt.h.Targets) > 0 && len(got) >= len(env) {
				t.Errorf("the result is %d bytes, the envelope %d", len(got), len(env))
			}
		})
	}
	for _, bad := range [][]byte{nil, {0x81}, {0x81, 0xa2, 't', 'o'}, {0x90}} {
		if got := WithoutTargets(bad); !bytes.Equal(got, bad) {
			t.Errorf("WithoutTargets(%x) = %x, want it unchanged", bad, got)
		}
	}
}
