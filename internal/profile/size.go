package profile

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ByteSize is a number of bytes. In ipcluster.toml it is an integer or a
// string with a unit, such as "512MiB" or "2GB".
type ByteSize int64

type byteUnit struct {
	name string
	size int64
}

// byteUnits lists the units, largest first, binary before decimal.
func byteUnits() []byteUnit {
	return []byteUnit{
		{"TiB", 1 << 40}, {"TB", 1e12}, {"GiB", 1 << 30}, {"GB", 1e9},
		{"MiB", 1 << 20}, {"MB", 1e6}, {"KiB", 1 << 10}, {"KB", 1e3}, {"B", 1},
	}
}

// ParseByteSize parses a byte count: a non-negative integer, optionally
// followed by a unit: B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB,
// TiB (powers of 1024), in any case.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return r < '0' || r > '9' })
	if i < 0 {
		i = len(t)
	}
	digits, unit := t[:i], strings.TrimSpace(t[i:])
	mult := int64(0)
	if unit == "" {
		mult = 1
	}
	for _, u := range byteUnits() {
		if strings.EqualFold(unit, u.name) {
			mult = u.size
		}
	}
	if digits == "" || mult == 0 {
		return 0, fmt.Errorf("invalid byte size %q: want an integer with an optional unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)", s)
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid byte size %q: too large", s)
	}
	return ByteSize(n * mult), nil
}

// String returns b with the largest unit that divides it exactly, such as
// "1GiB"; [ParseByteSize] reads it back.
func (b ByteSize) String() string {
	for _, u := range byteUnits() {
		if b != 0 && int64(b)%u.size == 0 {
			return fmt.Sprintf("%d%s", int64(b)/u.size, u.name)
		}
	}
	return fmt.Sprintf("%dB", int64(b))
}

// UnmarshalTOML implements github.com/BurntSushi/toml.Unmarshaler: it
// accepts a non-negative integer or a string for [ParseByteSize].
func (b *ByteSize) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case int64:
		if v < 0 {
			return fmt.Errorf("invalid byte size %d: must not be negative", v)
		}
		*b = ByteSize(v)
		return nil
	case string:
		n, err := ParseByteSize(v)
		if err != nil {
			return err
		}
		*b = n
		return nil
	default:
		return fmt.Errorf("invalid byte size %v: want an integer or a string such as \"1GiB\"", v)
	}
}
