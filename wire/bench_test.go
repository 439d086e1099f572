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
