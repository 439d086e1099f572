package wire

import (
	"fmt"
	"math"
)

// Steering: requests that a running simulation applies at its steering
// points (engine.Steer), the same requests at the same step on every
// engine they name. See docs/protocol.md, "Steering".
const (
	// Steer is a steering request: client to controller, and relayed as
	// it came to each engine it names. Its content is a Steering.
	Steer Type = "steer"
	// SteerAck is an engine's answer to a Steer it received: the step
	// before which it can still apply it (SteerAckContent). Status
	// requests are answered at once instead, and get no ack.
	SteerAck Type = "steer_ack"
	// SteerCommit tells an engine at which step to apply a Steer, or
	// that it is cancelled (SteerCommitContent). Its parent is the Steer.
	SteerCommit Type = "steer_commit"
)

// SteerOp names what a steering request does.
type SteerOp string

// Steering operations. All but SteerStatus are applied at one step agreed
// by every engine the request names.
const (
	SteerStatus     SteerOp = "status"     // the engine's steering state, answered at once
	SteerGet        SteerOp = "get"        // read exposed variables (Names)
	SteerSet        SteerOp = "set"        // assign exposed variables (Names, Values)
	SteerCall       SteerOp = "call"       // call a registered function (Fn, Args)
	SteerExec       SteerOp = "exec"       // run a Starlark cell with the exposed variables in scope (Code)
	SteerPause      SteerOp = "pause"      // hold at the step until resumed
	SteerResume     SteerOp = "resume"     // run on
	SteerStep       SteerOp = "step"       // run Steps steering points, then hold again
	SteerCheckpoint SteerOp = "checkpoint" // call the checkpoint function with Dir
	SteerStop       SteerOp = "stop"       // Steer returns false from the step on: the program ends its loop
)

// Agreed reports whether op is applied at an agreed step (all but
// status).
func (op SteerOp) Agreed() bool { return op != SteerStatus }

// NoStep is the horizon of an engine whose program has not reached a
// steering point yet: it holds at its first one until the step is agreed.
const NoStep = math.MinInt64

// Steering is a steering request, as a client builds it. Values and Args
// are encoded as work requests encode theirs: numeric slices as raw
// arrays.
type Steering struct {
	Op     SteerOp
	Names  []string // get, set
	Values []any    // set: one per name
	Fn     string   // call
	Args   []any    // call
	Code   string   // exec
	Steps  int      // step: how many steering points to run, at least 1
	Dir    string   // checkpoint
}

// SteerRequest is a decoded steering request: Steering with its values
// still encoded.
type SteerRequest struct {
	Op     SteerOp
	Names  []string
	Values []Value
	Fn     string
	Args   []Value
	Code   string
	Steps  int
	Dir    string
}

// Content keys of a Steer request.
const (
	steerKeyOp     = "op"
	steerKeyNames  = "n"
	steerKeyValues = "v"
	steerKeyFn     = "f"
	steerKeyArgs   = "a"
	steerKeyCode   = "c"
	steerKeySteps  = "k"
	steerKeyDir    = "d"
)

// EncodeSteer returns the content and buffers of a Steer request, after
// checking that it is complete: the fields its operation needs, and no
// others.
func EncodeSteer(s Steering) ([]byte, [][]byte, error) {
	r := SteerRequest{Op: s.Op, Names: s.Names, Fn: s.Fn, Code: s.Code, Steps: s.Steps, Dir: s.Dir}
	if len(s.Values) > 0 {
		r.Values = make([]Value, len(s.Values)) // only counted by check
	}
	if len(s.Args) > 0 {
		r.Args = make([]Value, len(s.Args))
	}
	if err := r.check(); err != nil {
		return nil, nil, fmt.Errorf("wire: %w", err)
	}
	var bufs [][]byte
	n := 1
	for _, present := range []bool{s.Names != nil, s.Values != nil, s.Fn != "", s.Args != nil || s.Op == SteerCall, s.Code != "", s.Steps != 0, s.Dir != ""} {
		if present {
			n++
		}
	}
	b := appendMapHeader(make([]byte, 0, 32), n)
	b = appendStr(b, steerKeyOp)
	b = appendStr(b, string(s.Op))
	if s.Names != nil {
		b = appendStr(b, steerKeyNames)
		b = appendArrayHeader(b, len(s.Names))
		for _, name := range s.Names {
			b = appendStr(b, name)
		}
	}
	var err error
	if s.Values != nil {
		b = appendStr(b, steerKeyValues)
		if b, err = appendValues(b, &bufs, s.Values); err != nil {
			return nil, nil, fmt.Errorf("wire: steering value: %w", err)
		}
	}
	if s.Fn != "" {
		b = appendStr(b, steerKeyFn)
		b = appendStr(b, s.Fn)
	}
	if s.Args != nil || s.Op == SteerCall {
		b = appendStr(b, steerKeyArgs)
		if b, err = appendValues(b, &bufs, s.Args); err != nil {
			return nil, nil, fmt.Errorf("wire: steering argument: %w", err)
		}
	}
	if s.Code != "" {
		b = appendStr(b, steerKeyCode)
		b = appendStr(b, s.Code)
	}
	if s.Steps != 0 {
		b = appendStr(b, steerKeySteps)
		b = appendInt(b, int64(s.Steps))
	}
	if s.Dir != "" {
		b = appendStr(b, steerKeyDir)
		b = appendStr(b, s.Dir)
	}
	return b, bufs, nil
}

// DecodeSteer reads a Steer request and checks it as EncodeSteer does.
func DecodeSteer(m *Message) (SteerRequest, error) {
	var r SteerRequest
	err := readFields("steer", m.Content, func(key string, b []byte) ([]byte, error) {
		var rest []byte
		var err error
		switch key {
		case steerKeyOp:
			var op string
			op, rest, err = readStr(b)
			r.Op = SteerOp(op)
		case steerKeyNames:
			r.Names, rest, err = readStrList(b)
		case steerKeyValues:
			r.Values, rest, err = readValues(b, m.Buffers)
		case steerKeyFn:
			r.Fn, rest, err = readStr(b)
		case steerKeyArgs:
			r.Args, rest, err = readValues(b, m.Buffers)
			if r.Args == nil {
				r.Args = []Value{}
			}
		case steerKeyCode:
			r.Code, rest, err = readStr(b)
		case steerKeySteps:
			var k int64
			k, rest, err = readInt(b)
			if err == nil && (k < math.MinInt32 || k > math.MaxInt32) {
				err = fmt.Errorf("%d steps is out of range", k)
			}
			r.Steps = int(k)
		case steerKeyDir:
			r.Dir, rest, err = readStr(b)
		default:
			return b, unknownField(key)
		}
		return rest, err
	})
	if err != nil {
		return SteerRequest{}, err
	}
	if err := r.check(); err != nil {
		return SteerRequest{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return r, nil
}

// check reports what makes r incomplete or contradictory.
func (r *SteerRequest) check() error {
	var want []string // the fields the operation takes
	switch r.Op {
	case SteerStatus, SteerPause, SteerResume, SteerStop:
	case SteerGet:
		want = []string{"names"}
		if len(r.Names) == 0 {
			return fmt.Errorf("steering get names no variables")
		}
	case SteerSet:
		want = []string{"names", "values"}
		if len(r.Names) == 0 {
			return fmt.Errorf("steering set names no variables")
		}
		if len(r.Values) != len(r.Names) {
			return fmt.Errorf("steering set has %d values for %d names", len(r.Values), len(r.Names))
		}
	case SteerCall:
		want = []string{"fn", "args"}
		if r.Fn == "" {
			return fmt.Errorf("steering call names no function")
		}
	case SteerExec:
		want = []string{"code"}
		if r.Code == "" {
			return fmt.Errorf("steering exec has no code")
		}
	case SteerStep:
		want = []string{"steps"}
		if r.Steps < 1 {
			return fmt.Errorf("steering step of %d steps: want at least 1", r.Steps)
		}
	case SteerCheckpoint:
		want = []string{"dir"}
		if r.Dir == "" {
			return fmt.Errorf("steering checkpoint names no directory")
		}
	case "":
		return fmt.Errorf("steering request has no operation")
	default:
		return fmt.Errorf("unknown steering operation %q (known: status, get, set, call, exec, pause, resume, step, checkpoint, stop)", r.Op)
	}
	has := map[string]bool{"names": len(r.Names) > 0, "values": len(r.Values) > 0, "fn": r.Fn != "",
		"args": len(r.Args) > 0, "code": r.Code != "", "steps": r.Steps != 0, "dir": r.Dir != ""}
	for _, f := range want {
		delete(has, f)
	}
	for _, f := range []string{"names", "values", "fn", "args", "code", "steps", "dir"} {
		if has[f] {
			return fmt.Errorf("steering %s takes no %s", r.Op, f)
		}
	}
	return nil
}

func readStrList(b []byte) ([]string, []byte, error) {
	n, b, err := readArrayHeader(b)
	if err != nil {
		return nil, b, err
	}
	if n > len(b) {
		return nil, b, fmt.Errorf("%d strings in %d bytes", n, len(b))
	}
	out := make([]string, n)
	for i := range out {
		if out[i], b, err = readStr(b); err != nil {
			return nil, b, err
		}
	}
	return out, b, nil
}

// SteerAckContent is an engine's answer to a Steer: it will not pass a
// steering point at or after step Horizon (NoStep: its first) before it
// is told when to apply the request.
type SteerAckContent struct {
	Horizon int64 `msgpack:"h"`
}

// SteerCommitContent tells an engine when to apply a Steer: at its first
// steering point at or after step At. With Cancel set, the request is
// dropped instead, and answered with an error saying why.
type SteerCommitContent struct {
	At     int64  `msgpack:"at"`
	Cancel string `msgpack:"x,omitempty"`
}

// SteerStatusContent is an engine's steering state, the result of a
// status request.
type SteerStatusContent struct {
	Steering     bool         `msgpack:"steering"`          // the program has reached a steering point
	Step         int64        `msgpack:"step"`              // the step of its last steering point
	Paused       bool         `msgpack:"paused"`            // held at Step by pause or step
	Waiting      bool         `msgpack:"waiting,omitempty"` // held at Step until a request's step is agreed
	StepsPerSec  float64      `msgpack:"rate"`              // steering points per second, lately
	Pending      int          `msgpack:"pending"`           // requests received and not yet applied
	Exposed      []ExposedVar `msgpack:"exposed,omitempty"`
	Checkpointer bool         `msgpack:"ckpt,omitempty"`    // a checkpoint function is set
	Stopped      bool         `msgpack:"stopped,omitempty"` // a stop request was applied: the program is ending its loop
}

// ExposedVar describes one variable a program exposes to steering.
type ExposedVar struct {
	Name     string `msgpack:"name"`
	Type     string `msgpack:"type"` // Go type: float64, int, []float64, ...
	Shape    []int  `msgpack:"shape,omitempty"`
	ReadOnly bool   `msgpack:"ro,omitempty"`
}
