package wire

import "fmt"

// Raw is an encoded message without its signature: the envelope and the
// buffer frames. It is what the controller relays: envelopes are passed on
// byte for byte, signed afresh with the receiving side's key.
type Raw struct {
	Env    []byte
	Frames [][]byte
}

// Encode encodes m without signing it. Buffers larger than ChunkSize are
// split into frames (not copied).
func Encode(m *Message) Raw { return encode(m, ChunkSize) }

func encode(m *Message, chunk int) Raw {
	var digests [][DigestSize]byte
	var counts []int
	frames := 0
	if len(m.Buffers) > 0 {
		digests = make([][DigestSize]byte, len(m.Buffers))
		counts = make([]int, len(m.Buffers))
		split := false
		for i, b := range m.Buffers {
			digests[i] = Digest(b)
			counts[i] = max(1, (len(b)+chunk-1)/chunk)
			frames += counts[i]
			split = split || counts[i] > 1
		}
		if !split {
			counts = nil
		}
	}
	env := appendEnvelope(make([]byte, 0, 96+len(m.Content)+len(digests)*(DigestSize+2)+len(counts)*3), m, digests, counts)
	var out [][]byte
	if frames > 0 {
		out = make([][]byte, 0, frames)
	}
	for _, b := range m.Buffers {
		if len(b) <= chunk {
			out = append(out, b)
			continue
		}
		for off := 0; off < len(b); off += chunk {
			out = append(out, b[off:min(len(b), off+chunk):min(len(b), off+chunk)])
		}
	}
	return Raw{Env: env, Frames: out}
}

// SealRaw signs messages for sending: one as itself, several as a batch
// whose envelope has header h (type Batch; the caller sets its id, session,
// sequence number and time, before those of the messages it carries).
func (s *Signer) SealRaw(h Header, raws []Raw) [][]byte {
	if len(raws) == 1 {
		r := raws[0]
		out := make([][]byte, 0, 2+len(r.Frames))
		out = append(out, append([]byte(nil), s.sign(r.Env)...), r.Env)
		return append(out, r.Frames...)
	}
	h.Type = Batch
	size, frames := 16, 0
	for _, r := range raws {
		size += len(r.Env) + 5
		frames += len(r.Frames)
	}
	content := appendMapHeader(make([]byte, 0, size), 1)
	content = appendStr(content, "m")
	content = appendArrayHeader(content, len(raws))
	for _, r := range raws {
		content = appendBin(content, r.Env)
	}
	env := appendEnvelope(make([]byte, 0, 64+len(content)), &Message{Header: h, Content: content}, nil, nil)
	out := make([][]byte, 0, 2+frames)
	out = append(out, append([]byte(nil), s.sign(env)...), env)
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
}

// OpenRelay checks the signature of frames and decodes the envelope of
// each message they carry (one, or a batch's), leaving buffers alone.
// The first result is the batch itself when frames hold one (its messages
// follow); a sender's batch is checked for replay like any message.
func (s *Signer) OpenRelay(frames [][]byte) (batch *Message, msgs []Relayed, err error) {
	m, _, err := s.openEnvelope(frames)
	if err != nil {
		return nil, nil, err
	}
	if m.Type != Batch {
		return nil, []Relayed{{Message: m, Raw: Raw{Env: frames[1], Frames: frames[2:]}}}, nil
	}
	envs, err := batchEnvelopes(m)
	if err != nil {
		return nil, nil, err
	}
	rest := frames[2:]
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
		msgs[i] = Relayed{Message: inner, Raw: Raw{Env: env, Frames: rest[:n:n]}}
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
		lay, _ := decodeLayout(r.Env)
		if len(lay.digests) > 0 {
			m.digests = lay.digests
			m.Buffers = joinBuffers(r.Frames, lay)
		}
		if checkBuffers {
			if err := m.CheckBuffers(); err != nil {
				return nil, err
			}
		}
		out[i] = m
	}
	return out, nil
}

// decodeLayout decodes an envelope already checked, for its buffer layout.
func decodeLayout(env []byte) (layout, error) {
	return decodeEnvelope(env, new(Message))
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
