package wire

import "fmt"

// Raw is an encoded message without its signature: the envelope and the
// buffer frames. It is what the controller relays: envelopes are passed on
// byte for byte, signed afresh with the receiving side's key.
type Raw struct {
	Env    []byte
	Frames [][]byte
}

// InlineSize is the most bytes of buffers that Encode and Seal carry inside
// the envelope: a message whose buffers total no more travels as one
// frame, its buffers signed with the envelope. Larger buffers travel as
// frames of their own, listed by digest, which the controller relays
// without hashing. Below this size, a frame's cost in ZeroMQ and CURVE
// (a few microseconds at each end) outweighs hashing the bytes twice more.
const InlineSize = 4 << 10

// Encode encodes m without signing it. Buffers larger than ChunkSize are
// split into frames (not copied); small ones are copied into the envelope.
func Encode(m *Message) Raw { return rawOf(m, ChunkSize, InlineSize) }

// rawOf encodes m with buffers totalling at most inline bytes in the
// envelope, larger ones in frames of chunk bytes.
func rawOf(m *Message, chunk, inline int) Raw {
	env, frames := encode(nil, m, chunk, inline, 0)
	return Raw{Env: env, Frames: frames}
}

// encode returns the envelope of m after reserve spare bytes, and its
// buffer frames: buffers totalling at most inline bytes go in the
// envelope, larger ones are split into frames of chunk bytes. The envelope
// is written into buf's storage if it has room, else into a new one.
func encode(buf []byte, m *Message, chunk, inline, reserve int) (head []byte, frames [][]byte) {
	alloc := func(n int) []byte {
		if cap(buf) >= reserve+n {
			return buf[:reserve]
		}
		return make([]byte, reserve, reserve+n)
	}
	total := 0
	for _, b := range m.Buffers {
		total += len(b)
	}
	if len(m.Buffers) > 0 && total <= inline {
		head = alloc(envelopeBound(m, 0, 0, len(m.Buffers), total))
		return appendEnvelope(head, m, nil, nil, true), nil
	}
	var digests [][DigestSize]byte
	var counts []int
	n := 0
	if len(m.Buffers) > 0 {
		digests = make([][DigestSize]byte, len(m.Buffers))
		counts = make([]int, len(m.Buffers))
		split := false
		for i, b := range m.Buffers {
			digests[i] = Digest(b)
			counts[i] = max(1, (len(b)+chunk-1)/chunk)
			n += counts[i]
			split = split || counts[i] > 1
		}
		if !split {
			counts = nil
		}
		frames = make([][]byte, 0, n)
	}
	head = alloc(envelopeBound(m, len(digests), len(counts), 0, 0))
	head = appendEnvelope(head, m, digests, counts, false)
	for _, b := range m.Buffers {
		if len(b) <= chunk {
			frames = append(frames, b)
			continue
		}
		for off := 0; off < len(b); off += chunk {
			frames = append(frames, b[off:min(len(b), off+chunk):min(len(b), off+chunk)])
		}
	}
	return head, frames
}

// SealRaw signs messages for sending: one as itself, several as a batch
// whose envelope has header h (type Batch; the caller sets its id, session,
// sequence number and time, before those of the messages it carries).
// The first frame is the signature followed by the envelope.
func (s *Signer) SealRaw(h Header, raws []Raw) [][]byte {
	if len(raws) == 1 {
		r := raws[0]
		head := make([]byte, SignatureSize+len(r.Env))
		copy(head[SignatureSize:], r.Env)
		return append([][]byte{s.signHead(head)}, r.Frames...)
	}
	h.Type = Batch
	size, frames := 16, 0
	for _, r := range raws {
		size += len(r.Env) + 5
		frames += len(r.Frames)
	}
	// The batch's envelope, then its content written in place: the
	// envelopes it carries are copied once.
	m := &Message{Header: h, Content: []byte{}}
	head := make([]byte, SignatureSize, SignatureSize+envelopeBound(m, 0, 0, 0, 0)+size)
	head = appendEnvelope(head, m, nil, nil, false)
	head = appendMapHeader(head, 1)
	head = appendStr(head, "m")
	head = appendArrayHeader(head, len(raws))
	for _, r := range raws {
		head = appendBin(head, r.Env)
	}
	out := make([][]byte, 0, 1+frames)
	out = append(out, s.signHead(head))
	for _, r := range raws {
		out = append(out, r.Frames...)
	}
	return out
}

// Relayed is one message as the controller receives it: its header and
// content decoded, its envelope and buffer frames kept as they came.
type Relayed struct {
	*Message // Buffers is nil
	Raw

	lay layout
}

// OpenRelay checks the signature of frames and decodes the envelope of
// each message they carry (one, or a batch's), leaving buffers alone.
// The first result is the batch itself when frames hold one (its messages
// follow); a sender's batch is checked for replay like any message.
func (s *Signer) OpenRelay(frames [][]byte) (batch *Message, msgs []Relayed, err error) {
	m, lay, err := s.openEnvelope(frames)
	if err != nil {
		return nil, nil, err
	}
	if m.Type != Batch {
		return nil, []Relayed{{Message: m, Raw: Raw{Env: frames[0][SignatureSize:], Frames: frames[1:]}, lay: lay}}, nil
	}
	envs, err := batchEnvelopes(m)
	if err != nil {
		return nil, nil, err
	}
	rest := frames[1:]
	msgs = make([]Relayed, len(envs))
	for i, env := range envs {
		inner := new(Message)
		il, err := decodeEnvelope(env, inner)
		if err != nil {
			return nil, nil, fmt.Errorf("message %d of the batch: %w", i, err)
		}
		if inner.Type == Batch {
			return nil, nil, fmt.Errorf("%w: a batch inside a batch", ErrMalformed)
		}
		n := il.frames()
		if n > len(rest) {
			return nil, nil, fmt.Errorf("%w: message %d of the batch announces %d frames, %d left", ErrMalformed, i, n, len(rest))
		}
		msgs[i] = Relayed{Message: inner, Raw: Raw{Env: env, Frames: rest[:n:n]}, lay: il}
		rest = rest[n:]
	}
	if len(rest) != 0 {
		return nil, nil, fmt.Errorf("%w: %d frames after the batch's messages", ErrMalformed, len(rest))
	}
	return m, msgs, nil
}

// OpenAll checks frames and returns the messages they carry, one or a
// batch's, each with its buffers joined. With checkBuffers, every buffer
// is checked against its digest (see Open).
func (s *Signer) OpenAll(frames [][]byte, checkBuffers bool) ([]*Message, error) {
	_, relayed, err := s.OpenRelay(frames)
	if err != nil {
		return nil, err
	}
	out := make([]*Message, len(relayed))
	for i, r := range relayed {
		m := r.Message
		m.setBuffers(r.Frames, r.lay)
		if checkBuffers {
			if err := m.CheckBuffers(); err != nil {
				return nil, err
			}
		}
		out[i] = m
	}
	return out, nil
}

// batchEnvelopes reads the envelopes a batch carries.
func batchEnvelopes(m *Message) ([][]byte, error) {
	var envs [][]byte
	err := readFields("batch", m.Content, func(key string, b []byte) ([]byte, error) {
		if key != "m" {
			return b, unknownField(key)
		}
		n, b, err := readArrayHeader(b)
		if err != nil {
			return b, err
		}
		if n == 0 || n > len(b) {
			return b, fmt.Errorf("a batch of %d messages in %d bytes", n, len(b))
		}
		envs = make([][]byte, n)
		for i := range envs {
			if envs[i], b, err = readBin(b); err != nil {
				return b, fmt.Errorf("message %d: %v", i, err)
			}
		}
		return b, nil
	})
	return envs, err
}
