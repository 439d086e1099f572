package plot

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// Auto writes the picture that suits data of the given shape: a heat map
// (HeatMap) for 2 dimensions, rows × cols, or a line (Lines) for 1. A nil
// shape means 1 dimension of len(data). Other shapes are an error naming
// the shape.
func Auto(w io.Writer, data []float64, shape []int, opts Options) error {
	if shape == nil {
		return Lines(w, [][]float64{data}, opts)
	}
	if slices.ContainsFunc(shape, func(n int) bool { return n <= 0 }) {
		return fmt.Errorf("plot: shape %v has a non-positive dimension", shape)
	}
	switch len(shape) {
	case 1:
		if shape[0] != len(data) {
			return fmt.Errorf("plot: len(data) = %d, want %d for shape %v", len(data), shape[0], shape)
		}
		return Lines(w, [][]float64{data}, opts)
	case 2:
		return HeatMap(w, data, shape[0], shape[1], opts)
	default:
		return fmt.Errorf("plot: cannot draw data of shape %v: want 1 or 2 dimensions, not %d", shape, len(shape))
	}
}

// WriteFile writes Auto's picture to the file at path, creating it or
// truncating it, with mode 0644 before the umask. The picture is drawn
// before the file is opened, so if drawing fails the file is left as it
// was; if writing fails, the file is removed.
func WriteFile(path string, data []float64, shape []int, opts Options) error {
	var buf bytes.Buffer
	if err := Auto(&buf, data, shape, opts); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(buf.Bytes())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return errors.Join(err, os.Remove(path))
	}
	return nil
}
