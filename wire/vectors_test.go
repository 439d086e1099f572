package wire

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json")

// vectorKey is the HMAC key of the published test vectors.
var vectorKey = []byte("ipcluster test vector key 000001")

type vector struct {
	name  string
	msg   *Message
	chunk int      // 0: ChunkSize; if set, buffers travel in frames of this size, never inline
	batch []Header // if set, msg and these headers' messages are sealed as a batch with header batchHeader
}

// batchHeader is the envelope header of the batch vector.
var batchHeader = Header{ID: "c1-5", Session: "c1", Seq: 5, Time: 1700000000000000007, Engine: NoEngine}

// testVectors are the messages whose exact encoding docs/protocol.md lists.
func testVectors() []vector {
	apply, _, _ := EncodeApply("echo", []any{"Hello, World"})
	arr, bufs, _ := EncodePush([]string{"x"}, []any{[]float64{1.5, -2}})
	result, _, _ := EncodeResult("Hello, World")
	arr3, bufs3, _ := EncodePush([]string{"y"}, []any{[]float64{1, 2, 3}})
	return []vector{
		{name: "apply request to engines 0 and 1", msg: &Message{
			Header: Header{ID: "c1-1", Type: Apply, Session: "c1", Seq: 1, Time: 1700000000000000000,
				Targets: []int{0, 1}, Engine: NoEngine},
			Content: apply,
		}},
		{name: "push of a float64 array", msg: &Message{
			Header: Header{ID: "c1-2", Type: Push, Session: "c1", Seq: 2, Time: 1700000000000000001,
				Targets: []int{0}, Engine: NoEngine},
			Content: arr, Buffers: bufs,
		}},
		{name: "task reply from engine 1", msg: &Message{
			Header: Header{ID: "e1-9", Type: TaskReply, Session: "e1", Seq: 9, Time: 1700000000000000002,
				Parent: "c1-1", Engine: 1, Status: StatusOK, Started: 1700000000000000003, Completed: 1700000000000000004},
			Content: result,
		}},
		{name: "balanced apply with retries and timeout", msg: &Message{
			Header: Header{ID: "c1-3", Type: Apply, Session: "c1", Seq: 3, Time: 1700000000000000005,
				Balanced: true, Retries: 1, Timeout: 2 * time.Second, Engine: NoEngine},
			Content: apply,
		}},
		{name: "push of a float64 array split into frames of 8 bytes", msg: &Message{
			Header: Header{ID: "c1-4", Type: Push, Session: "c1", Seq: 4, Time: 1700000000000000006,
				Targets: []int{0}, Engine: NoEngine},
			Content: arr3, Buffers: bufs3,
		}, chunk: vectorChunk},
		{name: "a batch of two pull requests", msg: &Message{
			Header:  Header{ID: "c1-6", Type: Pull, Session: "c1", Seq: 6, Time: 1700000000000000008, Targets: []int{0}, Engine: NoEngine},
			Content: EncodePull([]string{"x"}),
		}, batch: []Header{
			{ID: "c1-7", Type: Pull, Session: "c1", Seq: 7, Time: 1700000000000000009, Targets: []int{1}, Engine: NoEngine},
		}},
	}
}

// vectorChunk is the chunk size of the chunked vector: senders choose
// it, receivers accept any.
const vectorChunk = 8

type goldenVector struct {
	Name   string   `json:"name"`
	Frames []string `json:"frames"` // hex: signature and envelope, then buffer frames
}

func TestVectors(t *testing.T) {
	s := NewSigner(vectorKey)
	var got []goldenVector
	for _, v := range testVectors() {
		g := goldenVector{Name: v.name}
		chunk, inline := v.chunk, 0
		if chunk == 0 {
			chunk, inline = ChunkSize, InlineSize
		}
		frames := s.seal(nil, v.msg, chunk, inline)
		if v.batch != nil {
			raws := []Raw{rawOf(v.msg, chunk, inline)}
			for _, h := range v.batch {
				raws = append(raws, rawOf(&Message{Header: h, Content: EncodePull([]string{"y"})}, chunk, inline))
			}
			frames = s.SealRaw(batchHeader, raws)
		}
		for _, f := range frames {
			g.Frames = append(g.Frames, hex.EncodeToString(f))
		}
		got = append(got, g)
	}
	const path = "testdata/vectors.json"
	if *update {
		data, _ := json.MarshalIndent(got, "", "  ")
		if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want []goldenVector
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	if len(want) != len(got) {
		t.Fatalf("%d vectors, golden file has %d (run go test ./wire -update)", len(got), len(want))
	}
	doc, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		for j := range got[i].Frames {
			if got[i].Frames[j] != want[i].Frames[j] {
				t.Errorf("%s: frame %d\n got %s\nwant %s", got[i].Name, j, got[i].Frames[j], want[i].Frames[j])
			}
			// The document shows the first frame as its two parts.
			parts := []string{want[i].Frames[j]}
			if j == 0 {
				parts = []string{parts[0][:2*SignatureSize], parts[0][2*SignatureSize:]}
			}
			for _, part := range parts {
				if !strings.Contains(string(doc), part) {
					t.Errorf("docs/protocol.md lacks part of frame %d of vector %q: %s", j, want[i].Name, part)
				}
			}
		}
		// And the golden frames decode to the vector's message.
		var frames [][]byte
		for _, h := range want[i].Frames {
			b, _ := hex.DecodeString(h)
			frames = append(frames, b)
		}
		if _, err := NewSigner(vectorKey).OpenAll(frames, true); err != nil {
			t.Errorf("%s: golden frames refused: %v", want[i].Name, err)
		}
	}
}
