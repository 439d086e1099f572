package wire

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func sampleMessage() *Message {
	return &Message{
		Header: Header{
			ID: "s1-1", Type: Apply, Session: "s1", Seq: 7, Time: 1700000000000000000,
			Targets: []int{0, 3}, Retries: 2, Timeout: 1500 * time.Millisecond, Engine: NoEngine,
		},
		Content: mustMsgpack(map[string]any{"f": "echo"}),
		Buffers: [][]byte{[]byte("abc"), {}},
	}
}

func mustMsgpack(v any) []byte {
	b, err := msgpack.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// sealedFrames returns env signed by s, as the first frame, then bufs.
func sealedFrames(s *Signer, env []byte, bufs ...[]byte) [][]byte {
	head := append(make([]byte, SignatureSize), env...)
	return append([][]byte{s.signHead(head)}, bufs...)
}

func TestSealOpenRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		name   string
		inline int // the most buffer bytes carried in the envelope
		frames int
	}{
		{"buffers in the envelope", InlineSize, 1},
		{"buffers in frames", 0, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSigner(testKey)
			m := sampleMessage()
			frames := s.seal(nil, m, ChunkSize, tt.inline)
			if len(frames) != tt.frames {
				t.Fatalf("frames = %d, want %d", len(frames), tt.frames)
			}
			got, err := NewSigner(testKey).Open(frames, true)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Header, m.Header) {
				t.Errorf("header\n got %+v\nwant %+v", got.Header, m.Header)
			}
			if !bytes.Equal(got.Content, m.Content) || len(got.Buffers) != 2 || string(got.Buffers[0]) != "abc" || len(got.Buffers[1]) != 0 {
				t.Errorf("content/buffers differ: %x %q", got.Content, got.Buffers)
			}
			if err := got.CheckBuffers(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestInlineThreshold(t *testing.T) {
	s := NewSigner(testKey)
	for _, tt := range []struct {
		sizes  []int
		frames int
	}{
		{nil, 1},
		{[]int{InlineSize}, 1},
		{[]int{InlineSize / 2, InlineSize / 2}, 1},
		{[]int{InlineSize + 1}, 2},
		{[]int{InlineSize / 2, InlineSize/2 + 1}, 3}, // all or none: the total decides
	} {
		m := sampleMessage()
		m.Buffers = nil
		for _, n := range tt.sizes {
			m.Buffers = append(m.Buffers, bytes.Repeat([]byte{1}, n))
		}
		frames := s.Seal(m)
		if len(frames) != tt.frames {
			t.Errorf("buffers of %v bytes: %d frames, want %d", tt.sizes, len(frames), tt.frames)
		}
		got, err := s.Open(frames, true)
		if err != nil || len(got.Buffers) != len(tt.sizes) {
			t.Fatalf("buffers of %v bytes: %v, %d buffers", tt.sizes, err, len(got.Buffers))
		}
		// A buffer carried in the envelope must not grow into it.
		if len(tt.sizes) == 2 {
			got.Buffers[0] = append(got.Buffers[0], 9)
			if got.Buffers[1][0] != 1 {
				t.Error("appending to an inline buffer overwrote the next")
			}
		}
	}
}

// Encoding a message allocates its envelope once: envelopeBound is never
// short, whatever the header holds (the engine's reply to a 1 KB apply
// once grew its envelope twice, tripling its garbage).
func TestEnvelopeBound(t *testing.T) {
	long := strings.Repeat("x", 300)
	full := Header{ID: long, Type: TaskReply, Session: long, Parent: long, Seq: math.MaxUint64, Time: math.MinInt64,
		Targets: []int{math.MinInt, math.MaxInt, 0}, Balanced: true, Retries: math.MaxInt32, Timeout: time.Duration(math.MaxInt64),
		Engine: math.MaxInt, Status: StatusError, Started: math.MaxInt64, Completed: math.MinInt64}
	for _, tc := range []struct {
		name string
		m    *Message
	}{
		{"empty", &Message{Header: Header{Engine: NoEngine}}},
		{"sample", sampleMessage()},
		{"full header", &Message{Header: full, Content: make([]byte, 5000), Buffers: [][]byte{make([]byte, 1024), nil, make([]byte, 7)}}},
	} {
		bufs, total := tc.m.Buffers, 0
		for _, b := range bufs {
			total += len(b)
		}
		inline := len(appendEnvelope(nil, tc.m, nil, nil, true))
		if bound := envelopeBound(tc.m, 0, 0, len(bufs), total); inline > bound {
			t.Errorf("%s with inline buffers: envelope of %d bytes, bound %d", tc.name, inline, bound)
		}
		counts := make([]int, len(bufs))
		for i := range counts {
			counts[i] = math.MaxInt
		}
		listed := len(appendEnvelope(nil, tc.m, make([][DigestSize]byte, len(bufs)), counts, false))
		if bound := envelopeBound(tc.m, len(bufs), len(counts), 0, 0); listed > bound {
			t.Errorf("%s with listed buffers: envelope of %d bytes, bound %d", tc.name, listed, bound)
		}
	}
	reply := &Message{Header: full, Buffers: [][]byte{make([]byte, 1024)}}
	if n := testing.AllocsPerRun(100, func() { encode(nil, reply, ChunkSize, InlineSize, SignatureSize) }); n != 1 {
		t.Errorf("encoding a 1 KB reply made %v allocations, want 1", n)
	}
}

// SealInto seals into the buffer it is given when that has room, and
// what it seals opens as what Seal seals.
func TestSealInto(t *testing.T) {
	s := NewSigner(testKey)
	m := sampleMessage()
	want := s.Seal(m)
	buf := make([]byte, 4096)
	got := s.SealInto(buf, m)
	if &got[0][0] != &buf[0] {
		t.Error("SealInto did not use the buffer it was given")
	}
	if len(got) != len(want) || !bytes.Equal(got[0], want[0]) {
		t.Fatalf("SealInto = %q, Seal = %q", got, want)
	}
	if small := s.SealInto(make([]byte, 8), m); !bytes.Equal(small[0], want[0]) {
		t.Fatalf("SealInto with a short buffer = %q, want %q", small[0], want[0])
	}
	if n := testing.AllocsPerRun(100, func() { s.SealInto(buf, m) }); n > 1 {
		t.Errorf("SealInto with room made %v allocations, want at most 1 (the frame list)", n)
	}
}

func TestOpenRefuses(t *testing.T) {
	s := NewSigner(testKey)
	seal := func(edit func(*Message)) [][]byte {
		m := sampleMessage()
		edit(m)
		return s.Seal(m)
	}
	framed := func(edit func(*Message)) [][]byte { // buffers in frames of their own
		m := sampleMessage()
		edit(m)
		return s.seal(nil, m, ChunkSize, 0)
	}
	// reseal encodes env by hand with the right signature.
	reseal := func(env []byte, bufs ...[]byte) [][]byte { return sealedFrames(s, env, bufs...) }
	envWith := func(pairs ...any) []byte {
		b := appendMapHeader(nil, len(pairs)/2)
		for i := 0; i < len(pairs); i += 2 {
			b = appendStr(b, pairs[i].(string))
			b = append(b, mustMsgpack(pairs[i+1])...)
		}
		return b
	}
	base := []any{"v", Version, "id", "x", "t", "apply", "s", "s", "n", 1, "ts", 5}
	tests := []struct {
		name   string
		frames [][]byte
		want   error
		detail string
	}{
		{"no frames", nil, ErrMalformed, "no frames"},
		{"no envelope", [][]byte{make([]byte, SignatureSize)}, ErrMalformed, "first frame has 32 bytes"},
		{"short frame", [][]byte{{1, 2}}, ErrMalformed, "first frame has 2 bytes"},
		{"signature in a frame of its own (version 1)", func() [][]byte {
			f := seal(func(*Message) {})
			return [][]byte{f[0][:SignatureSize], f[0][SignatureSize:]}
		}(), ErrVersion, "version 1"},
		{"wrong key", NewSigner([]byte("another key")).Seal(sampleMessage()), ErrSignature, "HMAC"},
		{"tampered envelope", func() [][]byte { f := seal(func(*Message) {}); f[0][SignatureSize+3] ^= 1; return f }(), ErrSignature, "HMAC"},
		{"tampered inline buffer", func() [][]byte { f := seal(func(*Message) {}); f[0][bytes.Index(f[0], []byte("abc"))] ^= 1; return f }(), ErrSignature, "HMAC"},
		{"tampered buffer", func() [][]byte { f := framed(func(*Message) {}); f[1][0] ^= 1; return f }(), ErrSignature, "buffer 0"},
		{"missing buffer", func() [][]byte { f := framed(func(*Message) {}); return f[:2] }(), ErrMalformed, "1 buffer frames, envelope announces 2"},
		{"extra buffer", func() [][]byte { f := framed(func(*Message) {}); return append(f, []byte("x")) }(), ErrMalformed, "3 buffer frames, envelope announces 2"},
		{"frame after inline buffers", func() [][]byte { f := seal(func(*Message) {}); return append(f, []byte("x")) }(), ErrMalformed, "1 buffer frames, envelope announces 0"},
		{"inline buffers and digests", reseal(envWith(append(base, "bi", [][]byte{{1}}, "b", [][]byte{make([]byte, 32)})...), []byte("x")), ErrMalformed, "both inline buffers"},
		{"inline buffer not bin", reseal(envWith(append(base, "bi", []string{"x"})...)), ErrMalformed, `"bi"`},
		{"version 1", reseal(envWith("v", 1, "id", "x")), ErrVersion, "version 1"},
		{"version not first", reseal(envWith("id", "x", "v", Version)), ErrMalformed, `must start with "v"`},
		{"unknown type", reseal(envWith(append(base[:4:4], "t", "frobnicate", "s", "s", "n", 1, "ts", 5)...)), ErrType, "frobnicate"},
		{"unknown field", reseal(envWith(append(base, "zz", 1)...)), ErrMalformed, `unknown envelope field "zz"`},
		{"duplicate field", reseal(envWith(append(base, "id", "y")...)), ErrMalformed, "twice"},
		{"missing session", reseal(envWith("v", Version, "id", "x", "t", "apply", "n", 1, "ts", 5)), ErrMalformed, `lacks field "s"`},
		{"bad status", reseal(envWith(append(base, "st", "maybe")...)), ErrMalformed, "unknown status"},
		{"negative target", reseal(envWith(append(base, "to", []int{-1})...)), ErrMalformed, "out of range"},
		{"short digest", reseal(envWith(append(base, "b", [][]byte{{1, 2}})...), []byte("x")), ErrMalformed, "digest 0 has 2 bytes"},
		{"not a map", reseal([]byte{0x91, 0x01}), ErrMalformed, "want map"},
		{"truncated", reseal(envWith(base...)[:10]), ErrMalformed, "ends inside"},
		{"trailing bytes", reseal(append(envWith(base...), 0xc0)), ErrMalformed, "after the envelope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSigner(testKey).Open(tt.frames, true)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.detail) {
				t.Errorf("err = %q, want it to mention %q", err, tt.detail)
			}
		})
	}
}

func TestChunkedBuffers(t *testing.T) {
	s := NewSigner(testKey)
	data := []byte("0123456789abcdefghij") // 20 bytes: frames of 8, 8, 4
	m := &Message{Header: Header{ID: "x-1", Type: Push, Session: "x", Seq: 1, Time: 1, Targets: []int{0}, Engine: NoEngine},
		Buffers: [][]byte{[]byte("small"), data, {}}}
	frames := s.seal(nil, m, 8, 0)
	if len(frames) != 1+1+3+1 {
		t.Fatalf("%d frames, want 6", len(frames))
	}
	for i, want := range []string{"small", "01234567", "89abcdef", "ghij", ""} {
		if string(frames[1+i]) != want {
			t.Errorf("frame %d = %q, want %q", 1+i, frames[1+i], want)
		}
	}
	got, err := NewSigner(testKey).Open(frames, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Buffers) != 3 || string(got.Buffers[1]) != string(data) || string(got.Buffers[0]) != "small" {
		t.Fatalf("joined buffers %q", got.Buffers)
	}
	if uintptr(unsafePointer(&got.Buffers[1][0]))%8 != 0 {
		t.Error("a joined buffer is not 8-byte aligned")
	}
	// Frames received into one buffer, as zmqnet receives them, are
	// joined by reslicing: no copy.
	one := make([]byte, 0, 256)
	var shared [][]byte
	for _, f := range frames {
		start := len(one)
		one = append(one, f...)
		shared = append(shared, one[start:len(one)])
	}
	got, err = NewSigner(testKey).Open(shared, true)
	if err != nil {
		t.Fatal(err)
	}
	if &got.Buffers[1][0] != &shared[2][0] || string(got.Buffers[1]) != string(data) {
		t.Error("contiguous frames were copied to be joined")
	}
	// The relay path checks the layout but leaves the frames alone.
	_, rel, err := NewSigner(testKey).OpenRelay(frames)
	if err != nil || len(rel) != 1 || rel[0].Buffers != nil || rel[0].ID != "x-1" || len(rel[0].Frames) != 5 {
		t.Fatalf("OpenRelay = %+v, %v", rel, err)
	}
	if _, _, err := NewSigner(testKey).OpenRelay(frames[:5]); !errors.Is(err, ErrMalformed) {
		t.Errorf("a missing frame passed the relay check: %v", err)
	}
	// Tampering with one piece is caught.
	frames[3][0] ^= 1
	if _, err := NewSigner(testKey).Open(frames, true); !errors.Is(err, ErrSignature) {
		t.Errorf("tampered piece: %v", err)
	}
	// Frame counts that do not describe the buffers are refused.
	for _, bad := range [][]any{{0, 1, 1}, {1, 1}} {
		envs := [][]any{{"v", Version, "id", "x", "t", "push", "s", "s", "n", 1, "ts", 5, "b", [][]byte{make([]byte, 32), make([]byte, 32), make([]byte, 32)}, "bn", bad}}
		for _, pairs := range envs {
			b := appendMapHeader(nil, len(pairs)/2)
			for i := 0; i < len(pairs); i += 2 {
				b = appendStr(b, pairs[i].(string))
				b = append(b, mustMsgpack(pairs[i+1])...)
			}
			fr := sealedFrames(s, b, []byte{}, []byte{}, []byte{})
			if _, err := s.Open(fr, false); !errors.Is(err, ErrMalformed) {
				t.Errorf("frame counts %v: %v", bad, err)
			}
		}
	}
}

func TestDigestPieces(t *testing.T) {
	big := bytes.Repeat([]byte{7}, 20*digestChunk+5)
	d1 := Digest(big)
	big[19*digestChunk] = 8
	if Digest(big) == d1 {
		t.Fatal("digest did not change with the data")
	}
	// The parallel and sequential paths agree with the definition.
	var sums []byte
	for i := 0; i < len(big); i += digestChunk {
		s := sha256Sum(big[i:min(len(big), i+digestChunk)])
		sums = append(sums, s[:]...)
	}
	if Digest(big) != sha256Sum(sums) {
		t.Fatal("digest differs from its definition")
	}
	if Digest(nil) != sha256Sum(nil) {
		t.Fatal("digest of an empty buffer is not SHA-256 of nothing")
	}
}

func TestMsgpackPrimitives(t *testing.T) {
	ints := []int64{0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxInt32, math.MaxInt32 + 1, math.MaxInt64,
		-1, -32, -33, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64}
	for _, v := range ints {
		b := appendInt(nil, v)
		var got int64
		if err := msgpack.Unmarshal(b, &got); err != nil || got != v {
			t.Errorf("appendInt(%d) = %x: msgpack reads %d, %v", v, b, got, err)
		}
		r, rest, err := readInt(b)
		if err != nil || r != v || len(rest) != 0 {
			t.Errorf("readInt(%x) = %d, %v", b, r, err)
		}
	}
	for _, n := range []int{0, 31, 32, 255, 256, 65535, 65536} {
		s := strings.Repeat("x", n)
		b := appendStr(nil, s)
		var got string
		if err := msgpack.Unmarshal(b, &got); err != nil || got != s {
			t.Errorf("appendStr(len %d): %v", n, err)
		}
		bb := appendBin(nil, []byte(s))
		r, _, err := readBin(bb)
		if err != nil || string(r) != s {
			t.Errorf("bin len %d: %v", n, err)
		}
		for _, h := range [][]byte{appendArrayHeader(nil, n), appendMapHeader(nil, n)} {
			if _, err := skip(h); n > 0 && err == nil {
				t.Errorf("skip of a header promising %d items without them succeeded", n)
			}
		}
	}
	for _, n := range []int{1, 2, 4, 8, 16, 3, 300, 70000} {
		data := bytes.Repeat([]byte{1}, n)
		b := appendExt(nil, 5, data)
		typ, d, rest, err := readExt(b)
		if err != nil || typ != 5 || !bytes.Equal(d, data) || len(rest) != 0 {
			t.Errorf("ext len %d: %v", n, err)
		}
	}
}

func TestSkip(t *testing.T) {
	values := []any{nil, true, 1.5, float32(2.5), "s", []byte("b"), []any{1, []any{2, "x"}, map[string]any{"k": nil}},
		map[string]any{"a": []int{1, 2, 3}}, int64(-5000000000), uint64(math.MaxUint64), strings.Repeat("y", 70000)}
	for _, v := range values {
		b := append(mustMsgpack(v), 0xc3)
		rest, err := skip(b)
		if err != nil || !bytes.Equal(rest, []byte{0xc3}) {
			t.Errorf("skip(%T) left %x, %v", v, rest, err)
		}
	}
	deep := bytes.Repeat([]byte{0x91}, maxDepth+2)
	if _, err := skip(append(deep, 0xc0)); err == nil {
		t.Error("skip accepted nesting beyond the limit")
	}
	if _, err := skip([]byte{0xc1}); err == nil {
		t.Error("skip accepted the never-used byte 0xc1")
	}
}

func TestValues(t *testing.T) {
	type point struct {
		X, Y int
	}
	tests := []struct {
		name string
		in   any
		want any // decoded as any
	}{
		{"nil", nil, nil},
		{"string", "Hello, World", "Hello, World"},
		{"bool", true, true},
		{"int", 42, int64(42)},
		{"negative", -7, int64(-7)},
		{"float", 2.5, 2.5},
		{"float64s", []float64{1, 2, 3}, []float64{1, 2, 3}},
		{"int32s", []int32{-1, 2}, []int32{-1, 2}},
		{"ints", []int{5, 6}, []int64{5, 6}},
		{"bytes", []byte("raw"), []byte("raw")},
		{"empty float64s", []float64{}, []float64{}},
		{"strings", []string{"a", "b"}, []any{"a", "b"}},
		{"map", map[string]int{"a": 1}, map[string]any{"a": int64(1)}},
		{"struct", point{1, 2}, map[string]any{"X": int64(1), "Y": int64(2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var bufs [][]byte
			raw, err := AppendValue(nil, &bufs, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Value{Raw: raw, Buffers: bufs}.Decode()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestArrayZeroCopy(t *testing.T) {
	xs := []float64{1, 2, 3, 4}
	var bufs [][]byte
	raw, err := AppendValue(nil, &bufs, xs)
	if err != nil {
		t.Fatal(err)
	}
	if len(bufs) != 1 || &bufs[0][0] != (*byte)(unsafePointer(&xs[0])) {
		t.Fatal("sending a []float64 copied it")
	}
	var ys []float64
	if err := (Value{Raw: raw, Buffers: bufs}).DecodeInto(&ys); err != nil {
		t.Fatal(err)
	}
	if &ys[0] != &xs[0] {
		t.Error("decoding an aligned buffer copied it")
	}
	// A misaligned buffer is copied into aligned memory.
	shifted := append([]byte{0}, bufs[0]...)[1:]
	var zs []float64
	if err := (Value{Raw: raw, Buffers: [][]byte{shifted}}).DecodeInto(&zs); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(zs, xs) {
		t.Errorf("misaligned decode = %v", zs)
	}
}

func TestArrayShapes(t *testing.T) {
	data := make([]float32, 6)
	a, err := ArrayOf(data, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	var bufs [][]byte
	raw, err := AppendValue(nil, &bufs, a)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Value{Raw: raw, Buffers: bufs}.Decode()
	if err != nil {
		t.Fatal(err)
	}
	ga, ok := got.(Array)
	if !ok || !reflect.DeepEqual(ga.Shape, []int{2, 3}) || ga.DType != Float32 {
		t.Fatalf("decoded %#v", got)
	}
	if s, err := SliceOf[float32](ga); err != nil || len(s) != 6 {
		t.Fatalf("SliceOf = %v, %v", s, err)
	}
	if _, err := SliceOf[float64](ga); err == nil {
		t.Error("SliceOf accepted the wrong element type")
	}
	if _, err := ArrayOf(data, 4, 2); err == nil {
		t.Error("ArrayOf accepted a shape that does not match the data")
	}
	var wrong []int64
	if err := (Value{Raw: raw, Buffers: bufs}).DecodeInto(&wrong); err == nil || !strings.Contains(err.Error(), "float32") {
		t.Errorf("decoding float32 into []int64: %v", err)
	}
}

func TestArrayRefErrors(t *testing.T) {
	ref := func(idx int, dt string, shape ...int) []byte {
		h := appendArrayHeader(nil, 3)
		h = appendUint(h, uint64(idx))
		h = appendStr(h, dt)
		h = appendArrayHeader(h, len(shape))
		for _, d := range shape {
			h = appendUint(h, uint64(d))
		}
		return appendExt(nil, extArray, h)
	}
	buf := [][]byte{make([]byte, 16)}
	tests := []struct {
		name string
		raw  []byte
		want string
	}{
		{"buffer out of range", ref(1, "float64", 2), "buffer 1 of 1"},
		{"unknown dtype", ref(0, "float128", 1), "unknown array dtype"},
		{"shape too big", ref(0, "float64", 3), "does not match 16 bytes"},
		{"shape overflow", ref(0, "uint8", 1<<40, 1<<40), "does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Value{Raw: tt.raw, Buffers: buf}.Decode()
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestRef(t *testing.T) {
	var bufs [][]byte
	raw, err := AppendValue(nil, &bufs, Ref("x"))
	if err != nil {
		t.Fatal(err)
	}
	v := Value{Raw: raw}
	if name, ok := v.Ref(); !ok || name != "x" {
		t.Fatalf("Ref() = %q, %v", name, ok)
	}
	if _, err := v.Decode(); err == nil {
		t.Error("a namespace reference decoded outside an engine")
	}
}

func TestDetach(t *testing.T) {
	// An array stored at buffer index 1 of a two-buffer message.
	bufs := [][]byte{[]byte("other")}
	raw, err := AppendValue(nil, &bufs, []float64{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	d, err := Value{Raw: raw, Buffers: bufs}.Detach()
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Buffers) != 1 {
		t.Fatalf("detached value holds %d buffers, want 1", len(d.Buffers))
	}
	got, err := d.Decode()
	if err != nil || !reflect.DeepEqual(got, []float64{1, 2}) {
		t.Fatalf("detached decode = %v, %v", got, err)
	}
}

// Execute carries a cell's code and, if given, its file name; anything
// else is refused.
func TestExecuteContent(t *testing.T) {
	for _, tc := range []struct{ file, code string }{{"setup.star", "x = 1\nprint(x)"}, {"", ""}} {
		file, code, err := DecodeExecute(&Message{Content: EncodeExecute(tc.file, tc.code)})
		if err != nil || file != tc.file || code != tc.code {
			t.Errorf("DecodeExecute(EncodeExecute(%q, %q)) = %q, %q, %v", tc.file, tc.code, file, code, err)
		}
	}
	for name, content := range map[string][]byte{
		"no code":       appendStr(appendStr(appendMapHeader(nil, 1), "n"), "f.star"),
		"unknown field": appendStr(appendStr(appendMapHeader(nil, 1), "x"), "?"),
		"not a map":     appendStr(nil, "x = 1"),
	} {
		if _, _, err := DecodeExecute(&Message{Content: content}); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func TestContents(t *testing.T) {
	content, bufs, err := EncodeApply("sum", []any{[]float64{1, 2}, "x", Ref("y")})
	if err != nil {
		t.Fatal(err)
	}
	m := &Message{Content: content, Buffers: bufs}
	fn, args, err := DecodeApply(m)
	if err != nil || fn != "sum" || len(args) != 3 {
		t.Fatalf("DecodeApply = %q, %d args, %v", fn, len(args), err)
	}
	if name, ok := args[2].Ref(); !ok || name != "y" {
		t.Errorf("third argument is not Ref(y)")
	}

	content, bufs, err = EncodeMap("sq", []any{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	fn, items, err := DecodeMap(&Message{Content: content, Buffers: bufs})
	if err != nil || fn != "sq" || len(items) != 3 {
		t.Fatalf("DecodeMap = %q, %d, %v", fn, len(items), err)
	}

	content, bufs, err = EncodePush([]string{"a", "b"}, []any{1, []int64{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	names, vals, err := DecodePush(&Message{Content: content, Buffers: bufs})
	if err != nil || !reflect.DeepEqual(names, []string{"a", "b"}) || len(vals) != 2 {
		t.Fatalf("DecodePush = %v, %v", names, err)
	}
	if got, _ := vals[1].Decode(); !reflect.DeepEqual(got, []int64{1, 2}) {
		t.Errorf("pushed array = %v", got)
	}

	pulled, err := DecodePull(&Message{Content: EncodePull([]string{"a", "b"})})
	if err != nil || !reflect.DeepEqual(pulled, []string{"a", "b"}) {
		t.Fatalf("DecodePull = %v, %v", pulled, err)
	}

	content, bufs, err = EncodeResults([]any{vals[0], vals[1]})
	if err != nil {
		t.Fatal(err)
	}
	r, err := DecodeResult(&Message{Content: content, Buffers: bufs})
	if err != nil || len(r.List) != 2 {
		t.Fatalf("DecodeResult = %+v, %v", r, err)
	}
	if got, _ := r.List[1].Decode(); !reflect.DeepEqual(got, []int64{1, 2}) {
		t.Errorf("re-encoded array = %v", got)
	}

	var info EngineInfo
	c, _ := EncodeContent(EngineInfo{ID: 3, Host: "h"})
	if err := DecodeContent(&Message{Header: Header{Type: Register}, Content: c}, &info); err != nil || info.ID != 3 {
		t.Fatalf("DecodeContent = %+v, %v", info, err)
	}
	bad, _ := EncodeContent(map[string]any{"id": 1, "nonsense": 2})
	if err := DecodeContent(&Message{Header: Header{Type: Register}, Content: bad}, &info); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "nonsense") {
		t.Errorf("unknown content field: %v", err)
	}
	if _, _, err := DecodeApply(&Message{Content: mustMsgpack(map[string]any{"f": "x", "zz": 1})}); err == nil || !strings.Contains(err.Error(), `"zz"`) {
		t.Errorf("unknown apply field: %v", err)
	}
}

func TestZ85(t *testing.T) {
	// The test vector of RFC 32/Z85.
	in := []byte{0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B}
	if got := Z85Encode(in); got != "HelloWorld" {
		t.Fatalf("Z85Encode = %q", got)
	}
	out, err := Z85Decode("HelloWorld")
	if err != nil || !bytes.Equal(out, in) {
		t.Fatalf("Z85Decode = %x, %v", out, err)
	}
	for _, bad := range []string{"Hell", "Hello Worl", "#####"} {
		if _, err := Z85Decode(bad); err == nil {
			t.Errorf("Z85Decode(%q) succeeded", bad)
		}
	}
	kp, err := NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	if err := kp.Check(); err != nil {
		t.Fatal(err)
	}
	other, _ := NewKeyPair()
	if err := (KeyPair{Public: other.Public, Secret: kp.Secret}).Check(); err == nil {
		t.Error("mismatched key pair accepted")
	}
}

func TestReplayGuard(t *testing.T) {
	g := ReplayGuard{Max: 4}
	for _, tc := range []struct {
		s   string
		n   uint64
		err bool
	}{{"a", 1, false}, {"a", 2, false}, {"a", 2, true}, {"a", 1, true}, {"b", 1, false}, {"a", 9, false}} {
		err := g.Check(tc.s, tc.n)
		if (err != nil) != tc.err {
			t.Errorf("Check(%s, %d) = %v", tc.s, tc.n, err)
		}
		if err != nil && !errors.Is(err, ErrReplay) {
			t.Errorf("error does not wrap ErrReplay: %v", err)
		}
	}
	for i := range 100 {
		g.Check(string(rune('c'+i)), 1)
	}
	if len(g.last) > 4 {
		t.Errorf("guard holds %d sessions, max 4", len(g.last))
	}
}

func TestSessionIDs(t *testing.T) {
	s := NewSession()
	a, b := s.NewID(), s.NewID()
	if a == b || !strings.HasPrefix(a, s.ID()+"-") {
		t.Fatalf("ids %q %q", a, b)
	}
	h := s.Header(Apply)
	s.Stamp(&h)
	h2 := s.Header(Apply)
	s.Stamp(&h2)
	if h2.Seq != h.Seq+1 || h.Engine != NoEngine || h.Time == 0 {
		t.Fatalf("stamps %+v %+v", h, h2)
	}
}

// Maps decode into interfaces: with string keys as map[string]any, with
// other keys as map[any]any; a key that cannot be a Go map key is refused.
func TestDecodeMapsIntoAny(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want any
	}{
		{map[string]int{"a": 1}, map[string]any{"a": int64(1)}},
		{map[int]string{1: "a", 2: "b"}, map[any]any{int64(1): "a", int64(2): "b"}},
		{[]any{map[int]bool{3: true}}, []any{map[any]any{int64(3): true}}},
	} {
		var bufs [][]byte
		raw, err := AppendValue(nil, &bufs, tc.in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Value{Raw: raw, Buffers: bufs}.Decode()
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%#v decoded as %#v, %v; want %#v", tc.in, got, err, tc.want)
		}
	}
	// {[1]: 2}: a list as a key.
	raw := []byte{0x81, 0x91, 0x01, 0x02}
	if _, err := (Value{Raw: raw}).Decode(); err == nil || !strings.Contains(err.Error(), "cannot be a Go map key") {
		t.Errorf("a list as a map key: %v", err)
	}
}
