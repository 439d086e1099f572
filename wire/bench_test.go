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
