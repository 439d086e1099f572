package wire

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestSteerRoundTrip(t *testing.T) {
	for _, s := range []Steering{
		{Op: SteerStatus},
		{Op: SteerPause},
		{Op: SteerResume},
		{Op: SteerGet, Names: []string{"dt", "T"}},
		{Op: SteerSet, Names: []string{"dt", "T"}, Values: []any{0.25, []float64{1, 2, 3}}},
		{Op: SteerCall, Fn: "energy"},
		{Op: SteerCall, Fn: "scale", Args: []any{2, "x"}},
		{Op: SteerExec, Code: "dt = dt / 2"},
		{Op: SteerStep, Steps: 10},
		{Op: SteerCheckpoint, Dir: "/scratch/run1"},
	} {
		t.Run(string(s.Op), func(t *testing.T) {
			content, bufs, err := EncodeSteer(s)
			if err != nil {
				t.Fatal(err)
			}
			r, err := DecodeSteer(&Message{Content: content, Buffers: bufs})
			if err != nil {
				t.Fatal(err)
			}
			if r.Op != s.Op || !slices.Equal(r.Names, s.Names) || r.Fn != s.Fn || r.Code != s.Code || r.Steps != s.Steps || r.Dir != s.Dir {
				t.Errorf("decoded %+v from %+v", r, s)
			}
			if len(r.Values) != len(s.Values) || len(r.Args) != len(s.Args) {
				t.Fatalf("decoded %d values and %d args, want %d and %d", len(r.Values), len(r.Args), len(s.Values), len(s.Args))
			}
			if s.Op == SteerCall && r.Args == nil {
				t.Error("a call's arguments decode as nil, want an empty list")
			}
			for i, v := range r.Values {
				var got any
				if err := v.DecodeInto(&got); err != nil {
					t.Fatal(err)
				}
				if f, ok := s.Values[i].([]float64); ok {
					if g, _ := got.([]float64); !slices.Equal(g, f) {
						t.Errorf("value %d = %v, want %v", i, got, f)
					}
				} else if got != s.Values[i] {
					t.Errorf("value %d = %v, want %v", i, got, s.Values[i])
				}
			}
		})
	}
}

func TestSteerRefused(t *testing.T) {
	for _, tc := range []struct {
		s    Steering
		want string
	}{
		{Steering{}, "no operation"},
		{Steering{Op: "rewind"}, `unknown steering operation "rewind"`},
		{Steering{Op: SteerGet}, "names no variables"},
		{Steering{Op: SteerSet, Names: []string{"a", "b"}, Values: []any{1}}, "1 values for 2 names"},
		{Steering{Op: SteerCall}, "names no function"},
		{Steering{Op: SteerExec}, "has no code"},
		{Steering{Op: SteerStep}, "0 steps"},
		{Steering{Op: SteerStep, Steps: -2}, "-2 steps"},
		{Steering{Op: SteerCheckpoint}, "names no directory"},
		{Steering{Op: SteerPause, Names: []string{"x"}}, "pause takes no names"},
		{Steering{Op: SteerGet, Names: []string{"x"}, Dir: "/tmp"}, "get takes no dir"},
	} {
		_, _, err := EncodeSteer(tc.s)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("EncodeSteer(%+v) = %v, want an error containing %q", tc.s, err, tc.want)
		}
	}
	// The decoder checks the same, and refuses unknown fields.
	good, _, _ := EncodeSteer(Steering{Op: SteerPause})
	for _, content := range [][]byte{
		appendStr(appendStr(appendMapHeader(nil, 1), "op"), "rewind"),
		appendStr(appendStr(appendStr(appendStr(appendMapHeader(nil, 2), "op"), "pause"), "zz"), "x"),
		good[:len(good)-1],
	} {
		if _, err := DecodeSteer(&Message{Content: content}); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeSteer(%q) = %v, want ErrMalformed", content, err)
		}
	}
}

func TestAgreedOps(t *testing.T) {
	for _, op := range []SteerOp{SteerGet, SteerSet, SteerCall, SteerExec, SteerPause, SteerResume, SteerStep, SteerCheckpoint} {
		if !op.Agreed() {
			t.Errorf("%s is not agreed", op)
		}
	}
	if SteerStatus.Agreed() {
		t.Error("status is agreed")
	}
}
