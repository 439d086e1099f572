package wire

import (
	"reflect"
	"testing"
)

// FuzzOpen feeds arbitrary envelopes, correctly signed so that decoding is
// reached, and arbitrary buffers. Open must never panic, and what it
// accepts must survive a second round trip unchanged.
func FuzzOpen(f *testing.F) {
	s := NewSigner(testKey)
	for _, v := range testVectors() {
		frames := s.Seal(v.msg)
		f.Add(frames[0][SignatureSize:], []byte(nil))
	}
	f.Add([]byte{0x81, 0xa1, 'v', Version}, []byte("x"))
	b := sampleMessage()
	b.Buffers = nil
	batch := s.SealRaw(Header{ID: "b-1", Session: "b", Seq: 1, Time: 1, Engine: NoEngine}, []Raw{Encode(b), Encode(b)})
	f.Add(batch[0][SignatureSize:], []byte(nil))
	f.Fuzz(func(t *testing.T, env, buf []byte) {
		frames := sealedFrames(s, env)
		if buf != nil {
			frames = append(frames, buf)
		}
		msgs, err := s.OpenAll(frames, true)
		if err != nil {
			return
		}
		for _, m := range msgs {
			again, err := s.Open(s.Seal(m), true)
			if err != nil {
				t.Fatalf("resealed message refused: %v", err)
			}
			if !reflect.DeepEqual(again.Header, m.Header) {
				t.Fatalf("header changed in a round trip:\n%+v\n%+v", m.Header, again.Header)
			}
		}
	})
}

// FuzzValue decodes arbitrary values against an arbitrary buffer.
func FuzzValue(f *testing.F) {
	var bufs [][]byte
	raw, _ := AppendValue(nil, &bufs, []float64{1, 2})
	f.Add(raw, bufs[0])
	raw, _ = AppendValue(nil, &bufs, map[string]any{"a": []any{1, "b"}})
	f.Add(raw, []byte{})
	f.Add([]byte{0xd4, 2, 'x'}, []byte{})
	f.Fuzz(func(t *testing.T, raw, buf []byte) {
		v := Value{Raw: raw, Buffers: [][]byte{buf}}
		v.Decode()
		var fs []float64
		v.DecodeInto(&fs)
		var m map[string]int
		v.DecodeInto(&m)
		v.Detach()
		ValueList(raw, [][]byte{buf})
	})
}

// FuzzContent runs every hand-written content decoder on arbitrary bytes.
func FuzzContent(f *testing.F) {
	c, b, _ := EncodeApply("f", []any{1, []int32{1}})
	f.Add(c, b[0])
	c, _, _ = EncodePush([]string{"x"}, []any{"y"})
	f.Add(c, []byte{})
	f.Add(EncodePull([]string{"a"}), []byte{})
	f.Add(EncodeExecute("cell.star", "x = 1\nx"), []byte{})
	c, _, _ = EncodeResults([]any{1, 2})
	f.Add(c, []byte{})
	c, b, _ = EncodeSteer(Steering{Op: SteerSet, Names: []string{"dt", "T"}, Values: []any{0.5, []float64{1, 2}}})
	f.Add(c, b[0])
	c, _, _ = EncodeSteer(Steering{Op: SteerCall, Fn: "energy"})
	f.Add(c, []byte{})
	f.Fuzz(func(t *testing.T, content, buf []byte) {
		m := &Message{Content: content, Buffers: [][]byte{buf}}
		DecodeApply(m)
		DecodeMap(m)
		DecodePush(m)
		DecodePull(m)
		DecodeExecute(m)
		DecodeResult(m)
		DecodeSteer(m)
		var info EngineInfo
		DecodeContent(m, &info)
		var ids IDsContent
		DecodeContent(m, &ids)
	})
}

// FuzzConnection parses arbitrary connection info.
func FuzzConnection(f *testing.F) {
	f.Add([]byte(`{"version":1,"role":"client","endpoint":"tcp://127.0.0.1:1"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ParseConnection(data)
	})
}
