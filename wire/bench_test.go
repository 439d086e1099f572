package wire

import "testing"

func BenchmarkSealSmall(b *testing.B) {
	s := NewSigner(testKey)
	content, _, _ := EncodeApply("noop", nil)
	sess := NewSession()
	b.ReportAllocs()
	for b.Loop() {
		h := sess.Header(Apply)
		h.Targets = []int{0}
		sess.Stamp(&h)
		s.Seal(&Message{Header: h, Content: content})
	}
}

func BenchmarkOpenSmall(b *testing.B) {
	s := NewSigner(testKey)
	content, _, _ := EncodeApply("noop", nil)
	sess := NewSession()
	h := sess.Header(Apply)
	h.Targets = []int{0}
	sess.Stamp(&h)
	frames := s.Seal(&Message{Header: h, Content: content})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Open(frames, true); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDigest100MB(b *testing.B) {
	buf := make([]byte, 100<<20)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		Digest(buf)
	}
}

func BenchmarkDecodeScalars(b *testing.B) {
	var bufs [][]byte
	var raws [][]byte
	for _, v := range []any{42, 1 << 40, -7, 2.5, "hello", true, nil} {
		r, _ := AppendValue(nil, &bufs, v)
		raws = append(raws, r)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, r := range raws {
			if _, err := (Value{Raw: r}).Decode(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkDecodeInt(b *testing.B) {
	r, _ := AppendValue(nil, nil, 123456)
	b.ReportAllocs()
	for b.Loop() {
		var x int
		if err := (Value{Raw: r}).DecodeInto(&x); err != nil {
			b.Fatal(err)
		}
	}
}

// smallRequest is a stamped no-op apply, as a client sends one.
func smallRequest() *Message {
	content, _, _ := EncodeApply("noop", nil)
	sess := NewSession()
	h := sess.Header(Apply)
	h.Targets = []int{0}
	sess.Stamp(&h)
	return &Message{Header: h, Content: content}
}

func BenchmarkEncodeEnvelope(b *testing.B) {
	m := smallRequest()
	b.ReportAllocs()
	for b.Loop() {
		Encode(m)
	}
}

func BenchmarkDecodeEnvelope(b *testing.B) {
	env := Encode(smallRequest()).Env
	b.ReportAllocs()
	for b.Loop() {
		var m Message
		if _, err := decodeEnvelope(env, &m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	s := NewSigner(testKey)
	env := Encode(smallRequest()).Env
	b.SetBytes(int64(len(env)))
	b.ReportAllocs()
	for b.Loop() {
		s.sign(env)
	}
}

// BenchmarkFrameArray encodes a 1 MB float64 array as an apply argument
// and frames the message: the array must travel as buffers, not copied.
func BenchmarkFrameArray(b *testing.B) {
	data := make([]float64, 1<<17)
	s := NewSigner(testKey)
	sess := NewSession()
	b.SetBytes(int64(len(data) * 8))
	b.ReportAllocs()
	for b.Loop() {
		content, bufs, err := EncodeApply("f", []any{data})
		if err != nil {
			b.Fatal(err)
		}
		h := sess.Header(Apply)
		h.Targets = []int{0}
		sess.Stamp(&h)
		s.Seal(&Message{Header: h, Content: content, Buffers: bufs})
	}
}

func BenchmarkOpenBatch256(b *testing.B) {
	s := NewSigner(testKey)
	raws := make([]Raw, 256)
	for i := range raws {
		raws[i] = Encode(smallRequest())
	}
	frames := s.SealRaw(Header{ID: "b-1", Session: "b", Seq: 1, Time: 1, Engine: NoEngine}, raws)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.OpenAll(frames, true); err != nil {
			b.Fatal(err)
		}
	}
}
