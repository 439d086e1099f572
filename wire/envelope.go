package wire

import (
	"errors"
	"fmt"
	"time"
	"unsafe"
)

// Version is the protocol version this package speaks. A message of any
// other version is refused with ErrVersion.
const Version = 2

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
	// Execute runs a Starlark code cell in the engine's namespace.
	Execute Type = "execute"
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

// Batch carries several messages in one: its content lists their
// envelopes, and its frames are theirs in order. Senders batch what is
// queued at once, so that per-message costs are paid once.
const Batch Type = "batch"

// Engine messages to and from the controller.
const (
	Register      Type = "register"
	RegisterReply Type = "register_reply"
	Heartbeat     Type = "heartbeat"
	Unregister    Type = "unregister"
)

var knownTypes = map[Type]bool{
	Apply: true, Map: true, Push: true, Pull: true, Clear: true, Execute: true,
	TaskReply: true, Output: true,
	Connect: true, ConnectReply: true, Engines: true, EnginesReply: true,
	TaskStatus: true, TaskStatusReply: true, Results: true, ResultsReply: true,
	Abort: true, AbortReply: true, Interrupt: true, InterruptReply: true,
	Shutdown: true, ShutdownReply: true, Disconnect: true, EngineEvent: true, Error: true,
	Register: true, RegisterReply: true, Heartbeat: true, Unregister: true,
	Batch: true,
	Steer: true, SteerAck: true, SteerCommit: true,
}

// Known reports whether t is a message type of this protocol version.
func (t Type) Known() bool { return knownTypes[t] }

// typeNamed returns the Type constant spelled b, without allocating.
var typeNamed = func() map[string]Type {
	m := make(map[string]Type, len(knownTypes))
	for t := range knownTypes {
		m[string(t)] = t
	}
	return m
}()

// IsWork reports whether t is a work request that engines queue.
func (t Type) IsWork() bool {
	switch t {
	case Apply, Map, Push, Pull, Clear, Execute:
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
	Buffers [][]byte // raw bytes: array data, bulk bytes

	digests [][]byte // as listed by the envelope, set by Open
	inline  bool     // set by Open: the buffers came inside the signed envelope
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
	keyFrames    = "bn"
	keyInline    = "bi"
	keyContent   = "c"
)

// envelopeBound is at least the length of the envelope appendEnvelope
// writes for m with the given numbers of digests and frame counts, or of
// inline buffers totalling inlineBytes, so that encoding allocates once.
func envelopeBound(m *Message, digests, counts, inline, inlineBytes int) int {
	const (
		keys    = 20 * 5 // every key, with its string header, has room
		numbers = 9 * 9  // every integer field at its widest
		strHead = 5      // the widest string or binary header
	)
	h := &m.Header
	n := 1 + keys + numbers + 5*strHead + len(h.ID) + len(h.Type) + len(h.Session) + len(h.Parent) + len(h.Status)
	n += strHead + 9*len(h.Targets)
	n += strHead + digests*(strHead+DigestSize)
	n += strHead + counts*9
	n += strHead + inline*strHead + inlineBytes
	return n + len(m.Content)
}

// appendEnvelope writes the envelope of m: with its buffers themselves
// if inline, else with the digests of its buffers and, if any buffer
// spans several frames, each buffer's frame count. The content comes
// last, so that a caller may write it in place after an empty one.
func appendEnvelope(dst []byte, m *Message, digests [][DigestSize]byte, counts []int, inline bool) []byte {
	h := &m.Header
	n := 6
	opt := []bool{
		h.Parent != "", h.Targets != nil, h.Balanced, h.Retries != 0, h.Timeout != 0,
		h.Engine >= 0, h.Status != "", h.Started != 0, h.Completed != 0,
		len(digests) > 0, counts != nil, inline, m.Content != nil,
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
	if counts != nil {
		b = appendStr(b, keyFrames)
		b = appendArrayHeader(b, len(counts))
		for _, c := range counts {
			b = appendUint(b, uint64(c))
		}
	}
	if inline {
		b = appendStr(b, keyInline)
		b = appendArrayHeader(b, len(m.Buffers))
		for _, buf := range m.Buffers {
			b = appendBin(b, buf)
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

// layout is how an envelope says the buffers are laid out: in the
// envelope itself, or in frames after it.
type layout struct {
	digests [][]byte // one per buffer in frames
	counts  []int    // frames per buffer; nil: one each
	inline  [][]byte // the buffers, when the envelope carries them (key "bi"); they alias it
}

// frames returns the number of buffer frames the layout announces.
func (l layout) frames() int {
	if l.inline != nil {
		return 0
	}
	if l.counts == nil {
		return len(l.digests)
	}
	n := 0
	for _, c := range l.counts {
		n += c
	}
	return n
}

// maxTargets bounds the targets list of one message.
const maxTargets = 1 << 20

// maxFrames bounds the frames of one buffer (at the default chunk size, a
// buffer of 64 GiB).
const maxFrames = 1 << 20

// decodeEnvelope parses an envelope. Content and digests alias env.
func decodeEnvelope(env []byte, m *Message) (_ layout, err error) {
	var digests, inline [][]byte
	var counts []int
	n, b, err := readMapHeader(env)
	if err != nil {
		return layout{}, fmt.Errorf("%w: envelope: %v", ErrMalformed, err)
	}
	if n == 0 {
		return layout{}, fmt.Errorf("%w: empty envelope", ErrMalformed)
	}
	h := &m.Header
	h.Engine = NoEngine
	// The header's strings become slices of one copy of the part of the
	// envelope that holds them (not of its content or buffers): one
	// allocation instead of one per field.
	var id, session, parent []byte
	defer func() { h.ID, h.Session, h.Parent = headerStrings(env, id, session, parent) }()
	seen := 0
	for i := range n {
		var kb []byte
		kb, b, err = readStrBytes(b)
		if err != nil {
			return layout{}, fmt.Errorf("%w: envelope key %d: %v", ErrMalformed, i, err)
		}
		if i == 0 && string(kb) != keyVersion {
			return layout{}, fmt.Errorf("%w: envelope must start with %q, found %q", ErrMalformed, keyVersion, kb)
		}
		bit := 0
		key := ""
		switch string(kb) {
		case keyVersion:
			bit, key = hasVersion, keyVersion
		case keyID:
			bit, key = hasID, keyID
		case keyType:
			bit, key = hasType, keyType
		case keySession:
			bit, key = hasSession, keySession
		case keySeq:
			bit, key = hasSeq, keySeq
		case keyTime:
			bit, key = hasTime, keyTime
		case keyParent:
			bit, key = hasOther<<0, keyParent
		case keyTargets:
			bit, key = hasOther<<1, keyTargets
		case keyBalanced:
			bit, key = hasOther<<2, keyBalanced
		case keyRetries:
			bit, key = hasOther<<3, keyRetries
		case keyTimeout:
			bit, key = hasOther<<4, keyTimeout
		case keyEngine:
			bit, key = hasOther<<5, keyEngine
		case keyStatus:
			bit, key = hasOther<<6, keyStatus
		case keyStarted:
			bit, key = hasOther<<7, keyStarted
		case keyCompleted:
			bit, key = hasOther<<8, keyCompleted
		case keyDigests:
			bit, key = hasOther<<9, keyDigests
		case keyContent:
			bit, key = hasOther<<10, keyContent
		case keyFrames:
			bit, key = hasOther<<11, keyFrames
		case keyInline:
			bit, key = hasOther<<12, keyInline
		default:
			return layout{}, fmt.Errorf("%w: unknown envelope field %q", ErrMalformed, kb)
		}
		if seen&bit != 0 {
			return layout{}, fmt.Errorf("%w: envelope field %q appears twice", ErrMalformed, key)
		}
		seen |= bit
		switch key {
		case keyVersion:
			var v uint64
			v, b, err = readUint(b)
			if err != nil {
				return layout{}, fieldErr(key, err)
			}
			if v != Version {
				return layout{}, fmt.Errorf("%w %d (this side speaks %d)", ErrVersion, v, Version)
			}
		case keyID:
			id, b, err = readStrBytes(b)
		case keyType:
			var tb []byte
			tb, b, err = readStrBytes(b)
			if t, ok := typeNamed[string(tb)]; ok {
				h.Type = t
			} else {
				h.Type = Type(tb) // unknown: refused below
			}
		case keySession:
			session, b, err = readStrBytes(b)
		case keySeq:
			h.Seq, b, err = readUint(b)
		case keyTime:
			h.Time, b, err = readInt(b)
		case keyParent:
			parent, b, err = readStrBytes(b)
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
			var sb []byte
			sb, b, err = readStrBytes(b)
			switch Status(sb) {
			case StatusOK:
				h.Status = StatusOK
			case StatusError:
				h.Status = StatusError
			case StatusAborted:
				h.Status = StatusAborted
			default:
				if err == nil {
					err = fmt.Errorf("unknown status %q", sb)
				}
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
		case keyFrames:
			var k int
			k, b, err = readArrayHeader(b)
			if err == nil && k > len(b) {
				err = fmt.Errorf("%d frame counts do not fit the message", k)
			}
			if err == nil {
				counts = make([]int, k)
				for j := range k {
					var c uint64
					c, b, err = readUint(b)
					if err == nil && (c < 1 || c > maxFrames) {
						err = fmt.Errorf("buffer %d spans %d frames", j, c)
					}
					if err != nil {
						break
					}
					counts[j] = int(c)
				}
			}
		case keyInline:
			var k int
			k, b, err = readArrayHeader(b)
			if err == nil && k > len(b) {
				err = fmt.Errorf("%d buffers do not fit the message", k)
			}
			if err == nil {
				inline = make([][]byte, k)
				for j := range k {
					if inline[j], b, err = readBin(b); err != nil {
						break
					}
					inline[j] = inline[j][:len(inline[j]):len(inline[j])] // appending must not overwrite the envelope
				}
			}
		case keyContent:
			m.Content, b, err = readRaw(b)
		}
		if err != nil {
			return layout{}, fieldErr(key, err)
		}
	}
	if len(b) != 0 {
		return layout{}, fmt.Errorf("%w: %d bytes after the envelope", ErrMalformed, len(b))
	}
	const required = hasVersion | hasID | hasType | hasSession | hasSeq | hasTime
	if seen&required != required {
		for _, f := range []struct {
			bit int
			key string
		}{{hasID, keyID}, {hasType, keyType}, {hasSession, keySession}, {hasSeq, keySeq}, {hasTime, keyTime}} {
			if seen&f.bit == 0 {
				return layout{}, fmt.Errorf("%w: envelope lacks field %q", ErrMalformed, f.key)
			}
		}
	}
	if !h.Type.Known() {
		return layout{}, fmt.Errorf("%w %q", ErrType, h.Type)
	}
	if counts != nil && len(counts) != len(digests) {
		return layout{}, fmt.Errorf("%w: %d frame counts for %d buffers", ErrMalformed, len(counts), len(digests))
	}
	if inline != nil && (digests != nil || counts != nil) {
		return layout{}, fmt.Errorf("%w: envelope has both inline buffers (%q) and buffer frames (%q)", ErrMalformed, keyInline, keyDigests)
	}
	return layout{digests: digests, counts: counts, inline: inline}, nil
}

// headerStrings returns the id, session and parent, slices of env, as
// strings that share one copy of the span of env they lie in.
func headerStrings(env, id, session, parent []byte) (string, string, string) {
	fields := [...][]byte{id, session, parent}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(env)))
	lo, hi := len(env), 0
	for _, f := range fields {
		if len(f) > 0 {
			off := int(uintptr(unsafe.Pointer(unsafe.SliceData(f))) - base)
			lo, hi = min(lo, off), max(hi, off+len(f))
		}
	}
	if lo >= hi {
		return "", "", ""
	}
	span := string(env[lo:hi])
	str := func(f []byte) string {
		if len(f) == 0 {
			return ""
		}
		off := int(uintptr(unsafe.Pointer(unsafe.SliceData(f)))-base) - lo
		return span[off : off+len(f)]
	}
	return str(fields[0]), str(fields[1]), str(fields[2])
}

// WithoutTargets returns env without its list of target engines, or env
// itself when it has none or is not a well-formed envelope. The
// controller drops the list before it hands a direct request to each of
// its engines: a request to a thousand engines would otherwise carry, and
// have each engine read, a thousand ids.
func WithoutTargets(env []byte) []byte {
	n, b, err := readMapHeader(env)
	if err != nil {
		return env
	}
	start := len(env) - len(b) // the first key
	for range n {
		entry := b
		kb, rest, err := readStrBytes(b)
		if err != nil {
			return env
		}
		if b, err = skip(rest); err != nil {
			return env
		}
		if string(kb) == keyTargets {
			at := len(env) - len(entry)
			out := appendMapHeader(make([]byte, 0, len(env)), n-1)
			out = append(out, env[start:at]...)
			return append(out, b...)
		}
	}
	return env
}
