package wire

import (
	"crypto/sha256"
	"unsafe"
)

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

func unsafePointer[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }
