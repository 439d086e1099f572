package wire

import (
	"errors"
	"fmt"
	"time"
)

// Version is the protocol version this package speaks. A message of any
// other version is refused with ErrVersion.
const Version = 1

// NoEngine is the Engine value of a header that concerns no engine.
const NoEngine = -1

// Type names what a message is for.
type Type string

// Work requests: an engine runs them one at a time in arrival order and
// answers each with a TaskReply.
const (
	Apply Type = "apply" // call a registered function
	Map   Type = "map"   // call a function on each item of a chunk
	Push  Type = "push"  // assign names in the engine's namespace
	Pull  Type = "pull"  // read names from the engine's namespace
	Clear Type = "clear" // empty the engine's namespace
)

// Messages about work in progress.
const (
	TaskReply Type = "task_reply" // result or error of one work request on one engine
	Output    Type = "output"     // a chunk of stdout or stderr of a running task
)

// Client requests to the controller, each answered by the matching reply.
const (
	Connect         Type = "connect"
	ConnectReply    Type = "connect_reply"
	Engines         Type = "engines"
	EnginesReply    Type = "engines_reply"
	TaskStatus      Type = "task_status"
	TaskStatusReply Type = "task_status_reply"
	Results         Type = "results"
	ResultsReply    Type = "results_reply"
	Abort           Type = "abort"
	AbortReply      Type = "abort_reply"
	Interrupt       Type = "interrupt"
	InterruptReply  Type = "interrupt_reply"
	Shutdown        Type = "shutdown"
	ShutdownReply   Type = "shutdown_reply"
	Disconnect      Type = "disconnect"
	EngineEvent     Type = "engine_event" // controller to clients: an engine came or went
	Error           Type = "error"        // controller to a sender: its message was refused
)

// Engine messages to and from the controller.
const (
	Register      Type = "register"
	RegisterReply Type = "register_reply"
	Heartbeat     Type = "heartbeat"
	Unregister    Type = "unregister"
)

var knownTypes = map[Type]bool{
	Apply: true, Map: true, Push: true, Pull: true, Clear: true,
	TaskReply: true, Output: true,
	Connect: true, ConnectReply: true, Engines: true, EnginesReply: true,
	TaskStatus: true, TaskStatusReply: true, Results: true, ResultsReply: true,
	Abort: true, AbortReply: true, Interrupt: true, InterruptReply: true,
	Shutdown: true, ShutdownReply: true, Disconnect: true, EngineEvent: true, Error: true,
	Register: true, RegisterReply: true, Heartbeat: true, Unregister: true,
}

// Known reports whether t is a message type of this protocol version.
func (t Type) Known() bool { return knownTypes[t] }

// IsWork reports whether t is a work request that engines queue.
func (t Type) IsWork() bool {
	switch t {
	case Apply, Map, Push, Pull, Clear:
		return true
	}
	return false
}

// Status is the outcome carried by a TaskReply.
type Status string

// Outcomes of a task.
const (
	StatusOK      Status = "ok"
	StatusError   Status = "error"
	StatusAborted Status = "aborted"
)

// Errors returned when a message is refused. Decoding errors wrap one of
// these, so callers can branch with errors.Is and still log the detail.
var (
	ErrSignature = errors.New("bad signature")
	ErrVersion   = errors.New("unsupported protocol version")
	ErrType      = errors.New("unknown message type")
	ErrMalformed = errors.New("malformed message")
)

// Header is the envelope of a message without its content.
type Header struct {
	ID      string // unique message id
	Type    Type
	Session string // the sender's session
	Seq     uint64 // the sender's sequence number within Session, from 1
	Parent  string // id of the message this one answers, if any
	Time    int64  // sender's clock at sending, Unix nanoseconds

	// Targets lists engine ids: where a direct request goes, or for a
	// balanced one the engines it may go to (empty: any).
	Targets  []int
	Balanced bool          // the scheduler picks one engine
	Retries  int           // times a balanced task is resubmitted after failing
	Timeout  time.Duration // limit on a task's run time on the engine; 0 for none

	Engine    int    // the engine that sent the message or that it concerns; NoEngine if none
	Status    Status // outcome, on task replies
	Started   int64  // when the engine started the task, Unix nanoseconds
	Completed int64  // when the engine finished it, Unix nanoseconds
}

// Message is one protocol message: a header, a MessagePack content and
// zero or more raw buffers.
type Message struct {
	Header
	Content []byte   // one MessagePack value, or nil
	Buffers [][]byte // raw frames: array data, bulk bytes

	digests [][]byte // as listed by the envelope, set by Open
}

// Envelope keys, in the order they are written.
const (
	keyVersion   = "v"
	keyID        = "id"
	keyType      = "t"
	keySession   = "s"
	keySeq       = "n"
	keyParent    = "p"
	keyTime      = "ts"
	keyTargets   = "to"
	keyBalanced  = "lb"
	keyRetries   = "r"
	keyTimeout   = "tmo"
	keyEngine    = "e"
	keyStatus    = "st"
	keyStarted   = "t0"
	keyCompleted = "t1"
	keyDigests   = "b"
	keyContent   = "c"
)

// appendEnvelope writes the envelope of m, with the digests of its buffers.
func appendEnvelope(dst []byte, m *Message, digests [][DigestSize]byte) []byte {
	h := &m.Header
	n := 6
	opt := []bool{
		h.Parent != "", h.Targets != nil, h.Balanced, h.Retries != 0, h.Timeout != 0,
		h.Engine >= 0, h.Status != "", h.Started != 0, h.Completed != 0,
		len(digests) > 0, m.Content != nil,
	}
	for _, o := range opt {
		if o {
			n++
		}
	}
	b := appendMapHeader(dst, n)
	b = appendStr(b, keyVersion)
	b = appendUint(b, Version)
	b = appendStr(b, keyID)
	b = appendStr(b, h.ID)
	b = appendStr(b, keyType)
	b = appendStr(b, string(h.Type))
	b = appendStr(b, keySession)
	b = appendStr(b, h.Session)
	b = appendStr(b, keySeq)
	b = appendUint(b, h.Seq)
	b = appendStr(b, keyTime)
	b = appendInt(b, h.Time)
	if h.Parent != "" {
		b = appendStr(b, keyParent)
		b = appendStr(b, h.Parent)
	}
	if h.Targets != nil {
		b = appendStr(b, keyTargets)
		b = appendArrayHeader(b, len(h.Targets))
		for _, t := range h.Targets {
			b = appendInt(b, int64(t))
		}
	}
	if h.Balanced {
		b = appendStr(b, keyBalanced)
		b = appendBool(b, true)
	}
	if h.Retries != 0 {
		b = appendStr(b, keyRetries)
		b = appendInt(b, int64(h.Retries))
	}
	if h.Timeout != 0 {
		b = appendStr(b, keyTimeout)
		b = appendInt(b, int64((h.Timeout+time.Millisecond-1)/time.Millisecond)) // rounded up: never 0, "no limit"
	}
	if h.Engine >= 0 {
		b = appendStr(b, keyEngine)
		b = appendInt(b, int64(h.Engine))
	}
	if h.Status != "" {
		b = appendStr(b, keyStatus)
		b = appendStr(b, string(h.Status))
	}
	if h.Started != 0 {
		b = appendStr(b, keyStarted)
		b = appendInt(b, h.Started)
	}
	if h.Completed != 0 {
		b = appendStr(b, keyCompleted)
		b = appendInt(b, h.Completed)
	}
	if len(digests) > 0 {
		b = appendStr(b, keyDigests)
		b = appendArrayHeader(b, len(digests))
		for i := range digests {
			b = appendBin(b, digests[i][:])
		}
	}
	if m.Content != nil {
		b = appendStr(b, keyContent)
		b = append(b, m.Content...)
	}
	return b
}

// fieldErr reports a malformed envelope field.
func fieldErr(key string, err error) error {
	return fmt.Errorf("%w: envelope field %q: %v", ErrMalformed, key, err)
}

// Field bits, to refuse duplicates and find missing required fields.
const (
	hasVersion = 1 << iota
	hasID
	hasType
	hasSession
	hasSeq
	hasTime
	hasOther // bit for optional keys starts here
)

var optionalBits = map[string]int{
	keyParent: 0, keyTargets: 1, keyBalanced: 2, keyRetries: 3, keyTimeout: 4,
	keyEngine: 5, keyStatus: 6, keyStarted: 7, keyCompleted: 8, keyDigests: 9, keyContent: 10,
}

// maxTargets bounds the targets list of one message.
const maxTargets = 1 << 20

// decodeEnvelope parses an envelope. Content and digests alias env.
func decodeEnvelope(env []byte, m *Message) (digests [][]byte, err error) {
	n, b, err := readMapHeader(env)
	if err != nil {
		return nil, fmt.Errorf("%w: envelope: %v", ErrMalformed, err)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: empty envelope", ErrMalformed)
	}
	h := &m.Header
	h.Engine = NoEngine
	seen := 0
	for i := range n {
		var kb []byte
		kb, b, err = readStrBytes(b)
		if err != nil {
			return nil, fmt.Errorf("%w: envelope key %d: %v", ErrMalformed, i, err)
		}
		key := string(kb)
		if i == 0 && key != keyVersion {
			return nil, fmt.Errorf("%w: envelope must start with %q, found %q", ErrMalformed, keyVersion, key)
		}
		bit := 0
		switch key {
		case keyVersion:
			bit = hasVersion
		case keyID:
			bit = hasID
		case keyType:
			bit = hasType
		case keySession:
			bit = hasSession
		case keySeq:
			bit = hasSeq
		case keyTime:
			bit = hasTime
		default:
			o, ok := optionalBits[key]
			if !ok {
				return nil, fmt.Errorf("%w: unknown envelope field %q", ErrMalformed, key)
			}
			bit = hasOther << o
		}
		if seen&bit != 0 {
			return nil, fmt.Errorf("%w: envelope field %q appears twice", ErrMalformed, key)
		}
		seen |= bit
		switch key {
		case keyVersion:
			var v uint64
			v, b, err = readUint(b)
			if err != nil {
				return nil, fieldErr(key, err)
			}
			if v != Version {
				return nil, fmt.Errorf("%w %d (this side speaks %d)", ErrVersion, v, Version)
			}
		case keyID:
			h.ID, b, err = readStr(b)
		case keyType:
			var s string
			s, b, err = readStr(b)
			h.Type = Type(s)
		case keySession:
			h.Session, b, err = readStr(b)
		case keySeq:
			h.Seq, b, err = readUint(b)
		case keyTime:
			h.Time, b, err = readInt(b)
		case keyParent:
			h.Parent, b, err = readStr(b)
		case keyTargets:
			var k int
			k, b, err = readArrayHeader(b)
			if err == nil && (k > len(b) || k > maxTargets) {
				err = fmt.Errorf("%d targets do not fit the message", k)
			}
			if err == nil {
				h.Targets = make([]int, k)
				for j := range k {
					var t int64
					t, b, err = readInt(b)
					if err != nil {
						break
					}
					if t < 0 || t > 1<<31 {
						err = fmt.Errorf("engine id %d out of range", t)
						break
					}
					h.Targets[j] = int(t)
				}
			}
		case keyBalanced:
			h.Balanced, b, err = readBool(b)
		case keyRetries:
			var r int64
			r, b, err = readInt(b)
			if err == nil && (r < 0 || r > 1<<20) {
				err = fmt.Errorf("retries %d out of range", r)
			}
			h.Retries = int(r)
		case keyTimeout:
			var ms int64
			ms, b, err = readInt(b)
			if err == nil && (ms < 0 || ms > int64(time.Duration(1<<62)/time.Millisecond)) {
				err = fmt.Errorf("timeout %d ms out of range", ms)
			}
			h.Timeout = time.Duration(ms) * time.Millisecond
		case keyEngine:
			var e int64
			e, b, err = readInt(b)
			if err == nil && (e < 0 || e > 1<<31) {
				err = fmt.Errorf("engine id %d out of range", e)
			}
			h.Engine = int(e)
		case keyStatus:
			var s string
			s, b, err = readStr(b)
			h.Status = Status(s)
			if err == nil && h.Status != StatusOK && h.Status != StatusError && h.Status != StatusAborted {
				err = fmt.Errorf("unknown status %q", s)
			}
		case keyStarted:
			h.Started, b, err = readInt(b)
		case keyCompleted:
			h.Completed, b, err = readInt(b)
		case keyDigests:
			var k int
			k, b, err = readArrayHeader(b)
			if err == nil && k > len(b)/2 {
				err = fmt.Errorf("%d digests do not fit the message", k)
			}
			if err == nil {
				digests = make([][]byte, k)
				for j := range k {
					digests[j], b, err = readBin(b)
					if err != nil {
						break
					}
					if len(digests[j]) != DigestSize {
						err = fmt.Errorf("digest %d has %d bytes, want %d", j, len(digests[j]), DigestSize)
						break
					}
				}
			}
		case keyContent:
			m.Content, b, err = readRaw(b)
		}
		if err != nil {
			return nil, fieldErr(key, err)
		}
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the envelope", ErrMalformed, len(b))
	}
	const required = hasVersion | hasID | hasType | hasSession | hasSeq | hasTime
	if seen&required != required {
		for _, f := range []struct {
			bit int
			key string
		}{{hasID, keyID}, {hasType, keyType}, {hasSession, keySession}, {hasSeq, keySeq}, {hasTime, keyTime}} {
			if seen&f.bit == 0 {
				return nil, fmt.Errorf("%w: envelope lacks field %q", ErrMalformed, f.key)
			}
		}
	}
	if !h.Type.Known() {
		return nil, fmt.Errorf("%w %q", ErrType, h.Type)
	}
	return digests, nil
}
