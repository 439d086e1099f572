package wire

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"hash"
	"runtime"
	"sync"
)

// SignatureSize is the length of the signature frame: an HMAC-SHA256.
const SignatureSize = sha256.Size

// DigestSize is the length of a buffer digest.
const DigestSize = sha256.Size

// digestChunk is the piece size of the buffer digest (see Digest).
const digestChunk = 1 << 20

// Digest returns the digest of a buffer, as listed in the envelope:
// SHA-256 over the concatenated SHA-256 hashes of its consecutive 1 MiB
// pieces (the last one shorter; an empty buffer has no pieces). Hashing
// pieces lets large buffers be digested on all cores.
func Digest(buf []byte) [DigestSize]byte {
	pieces := (len(buf) + digestChunk - 1) / digestChunk
	sums := make([]byte, pieces*DigestSize)
	workers := min(runtime.GOMAXPROCS(0), pieces/8)
	if workers <= 1 {
		for i := range pieces {
			s := sha256.Sum256(buf[i*digestChunk : min(len(buf), (i+1)*digestChunk)])
			copy(sums[i*DigestSize:], s[:])
		}
		return sha256.Sum256(sums)
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < pieces; i += workers {
				s := sha256.Sum256(buf[i*digestChunk : min(len(buf), (i+1)*digestChunk)])
				copy(sums[i*DigestSize:], s[:])
			}
		})
	}
	wg.Wait()
	return sha256.Sum256(sums)
}

// Signer signs and checks messages with one HMAC-SHA256 key. A Signer is
// not safe for concurrent use: give each goroutine its own.
type Signer struct {
	mac hash.Hash
	sum []byte
}

// NewSigner returns a Signer for key, which must not be empty.
func NewSigner(key []byte) *Signer {
	if len(key) == 0 {
		panic("wire: empty HMAC key")
	}
	return &Signer{mac: hmac.New(sha256.New, key), sum: make([]byte, 0, SignatureSize)}
}

// sign returns the HMAC of env in s's scratch space.
func (s *Signer) sign(env []byte) []byte {
	s.mac.Reset()
	s.mac.Write(env)
	s.sum = s.mac.Sum(s.sum[:0])
	return s.sum
}

// Seal encodes m as frames: signature, envelope, then each buffer. The
// signature is the HMAC of the envelope, which lists a digest of every
// buffer, so it covers the buffers too. Buffers are not copied.
func (s *Signer) Seal(m *Message) [][]byte {
	var digests [][DigestSize]byte
	if len(m.Buffers) > 0 {
		digests = make([][DigestSize]byte, len(m.Buffers))
		for i, b := range m.Buffers {
			digests[i] = Digest(b)
		}
	}
	env := appendEnvelope(make([]byte, 0, 96+len(m.Content)+len(digests)*(DigestSize+2)), m, digests)
	frames := make([][]byte, 0, 2+len(m.Buffers))
	frames = append(frames, append([]byte(nil), s.sign(env)...), env)
	return append(frames, m.Buffers...)
}

// Resign replaces the signature of sealed frames with s's own, after the
// caller has checked them with the sender's key. The controller uses it to
// pass a message between the client and engine keys without re-encoding.
func (s *Signer) Resign(frames [][]byte) {
	copy(frames[0], s.sign(frames[1]))
}

// Open checks the signature of frames and decodes them. With
// checkBuffers, every buffer is checked against its digest; otherwise the
// caller may do it later with CheckBuffers (an engine does, off its I/O
// goroutine) or leave it to the receiving end (the controller relays
// buffers without reading them). Content and Buffers alias frames.
func (s *Signer) Open(frames [][]byte, checkBuffers bool) (*Message, error) {
	if len(frames) < 2 {
		return nil, fmt.Errorf("%w: %d frames, want at least 2 (signature, envelope)", ErrMalformed, len(frames))
	}
	sig, env := frames[0], frames[1]
	if len(sig) != SignatureSize {
		return nil, fmt.Errorf("%w: signature frame has %d bytes, want %d", ErrSignature, len(sig), SignatureSize)
	}
	if subtle.ConstantTimeCompare(sig, s.sign(env)) != 1 {
		return nil, fmt.Errorf("%w: HMAC does not match the envelope", ErrSignature)
	}
	m := new(Message)
	digests, err := decodeEnvelope(env, m)
	if err != nil {
		return nil, err
	}
	bufs := frames[2:]
	if len(bufs) != len(digests) {
		return nil, fmt.Errorf("%w: %d buffers, envelope lists %d", ErrMalformed, len(bufs), len(digests))
	}
	if len(bufs) > 0 {
		m.Buffers = bufs
		m.digests = digests
	}
	if checkBuffers {
		if err := m.CheckBuffers(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// CheckBuffers checks each buffer of a message returned by Open against
// the digest its signed envelope lists.
func (m *Message) CheckBuffers() error {
	if len(m.Buffers) != len(m.digests) {
		return fmt.Errorf("%w: %d buffers, envelope lists %d", ErrMalformed, len(m.Buffers), len(m.digests))
	}
	for i, b := range m.Buffers {
		d := Digest(b)
		if subtle.ConstantTimeCompare(d[:], m.digests[i]) != 1 {
			return fmt.Errorf("%w: buffer %d does not match its digest", ErrSignature, i)
		}
	}
	return nil
}

// PeekHeader decodes the envelope of frames WITHOUT checking the
// signature. It is only for addressing an error reply to a message that
// was refused, so it is lenient: when the envelope does not decode (an
// unknown type or version, say), it still returns the message id if it can
// find one, with the decoding error. Nothing it returns may be trusted.
func PeekHeader(frames [][]byte) (Header, error) {
	if len(frames) < 2 {
		return Header{}, fmt.Errorf("%w: no envelope", ErrMalformed)
	}
	m := new(Message)
	_, err := decodeEnvelope(frames[1], m)
	if err != nil && m.ID == "" {
		m.ID = findID(frames[1])
	}
	return m.Header, err
}

// findID looks for a string under the key "id" in a MessagePack map.
func findID(env []byte) string {
	n, b, err := readMapHeader(env)
	if err != nil {
		return ""
	}
	for range n {
		var key []byte
		if key, b, err = readStrBytes(b); err != nil {
			return ""
		}
		if string(key) == keyID {
			id, _, err := readStr(b)
			if err != nil {
				return ""
			}
			return id
		}
		if b, err = skip(b); err != nil {
			return ""
		}
	}
	return ""
}
