package wire

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeyPair is a CURVE key pair, both halves Z85-encoded (40 characters), as
// libzmq takes them.
type KeyPair struct {
	Public string `json:"public_key"`
	Secret string `json:"secret_key"`
}

// NewKeyPair generates a CURVE (X25519) key pair.
func NewKeyPair() (KeyPair, error) {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return KeyPair{}, fmt.Errorf("wire: generating a key pair: %w", err)
	}
	return KeyPair{Public: Z85Encode(k.PublicKey().Bytes()), Secret: Z85Encode(k.Bytes())}, nil
}

// Check reports whether kp is a well-formed pair whose public half matches
// its secret half.
func (kp KeyPair) Check() error {
	pub, err := Z85Decode(kp.Public)
	if err != nil || len(pub) != 32 {
		return errors.New("public key is not 40 characters of Z85")
	}
	sec, err := Z85Decode(kp.Secret)
	if err != nil || len(sec) != 32 {
		return errors.New("secret key is not 40 characters of Z85")
	}
	k, err := ecdh.X25519().NewPrivateKey(sec)
	if err != nil {
		return fmt.Errorf("secret key: %w", err)
	}
	if Z85Encode(k.PublicKey().Bytes()) != kp.Public {
		return errors.New("public key does not belong to the secret key")
	}
	return nil
}

// CheckPublicKey reports whether s is a Z85-encoded CURVE public key.
func CheckPublicKey(s string) error {
	b, err := Z85Decode(s)
	if err != nil || len(b) != 32 {
		return fmt.Errorf("%q is not a CURVE public key (40 characters of Z85)", s)
	}
	return nil
}

// NewHMACKey returns a random 256-bit key, hex-encoded.
func NewHMACKey() string {
	return hex.EncodeToString(randomBytes(32))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return b
}

const z85Alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"

// Z85Encode encodes b, whose length must be a multiple of 4, in ZeroMQ's
// Z85 (RFC 32/Z85).
func Z85Encode(b []byte) string {
	if len(b)%4 != 0 {
		panic("wire: Z85 input length is not a multiple of 4")
	}
	var sb strings.Builder
	sb.Grow(len(b) * 5 / 4)
	for i := 0; i < len(b); i += 4 {
		v := uint32(b[i])<<24 | uint32(b[i+1])<<16 | uint32(b[i+2])<<8 | uint32(b[i+3])
		var chunk [5]byte
		for j := 4; j >= 0; j-- {
			chunk[j] = z85Alphabet[v%85]
			v /= 85
		}
		sb.Write(chunk[:])
	}
	return sb.String()
}

// Z85Decode decodes a Z85 string, whose length must be a multiple of 5.
func Z85Decode(s string) ([]byte, error) {
	if len(s)%5 != 0 {
		return nil, fmt.Errorf("z85: length %d is not a multiple of 5", len(s))
	}
	out := make([]byte, 0, len(s)*4/5)
	for i := 0; i < len(s); i += 5 {
		var v uint64
		for j := range 5 {
			d := strings.IndexByte(z85Alphabet, s[i+j])
			if d < 0 {
				return nil, fmt.Errorf("z85: invalid character %q", s[i+j])
			}
			v = v*85 + uint64(d)
		}
		if v > 0xffffffff {
			return nil, errors.New("z85: group overflows 32 bits")
		}
		out = append(out, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return out, nil
}
