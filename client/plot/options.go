package plot

import (
	"fmt"
	"math"
)

// maxSide is the largest picture side, in pixels, that Options may ask for.
const maxSide = 1 << 14

// Options tune a picture; the zero value gives sensible defaults.
type Options struct {
	// Title is drawn centred at the top of the picture, if set.
	Title string

	// Width and Height are the size of the whole picture in pixels,
	// margins, labels and colour bar included, at most 16384 each. Zero
	// picks a default for that side. Lines defaults to 640 × 400. HeatMap
	// defaults to a cell area whose longer side is about 512 pixels, plus
	// room for the rest: arrays up to 512 cells a side get whole square
	// cells of 1 to 8 pixels, larger ones are downsampled to 512 pixels
	// along their longer side, keeping their aspect. A size that is set
	// stretches the cell area (or the axes) to fill what the rest leaves.
	Width, Height int

	// Min and Max fix the range of values that the colour map (HeatMap) or
	// the y axis (Lines) spans; values beyond it take the colour map's end
	// colours, or run off the axes. If both are zero, the range is that of
	// the finite data.
	Min, Max float64
}

// check reports what is wrong with o, if anything.
func (o Options) check() error {
	if o.Width < 0 || o.Height < 0 || o.Width > maxSide || o.Height > maxSide {
		return fmt.Errorf("plot: picture size %dx%d out of range: each side must be 0 (default) to %d", o.Width, o.Height, maxSide)
	}
	if !finite(o.Min) || !finite(o.Max) {
		return fmt.Errorf("plot: Min %g and Max %g must be finite", o.Min, o.Max)
	}
	if o.Min > o.Max {
		return fmt.Errorf("plot: Min %g is greater than Max %g", o.Min, o.Max)
	}
	return nil
}

// span returns the range of values to draw: Min to Max if either is set,
// else that of the finite values in data.
func (o Options) span(data ...[]float64) span {
	if o.Min != 0 || o.Max != 0 {
		return span{o.Min, o.Max}
	}
	return spanOf(data...)
}

// span is the closed range [lo, hi] of values a picture shows.
type span struct{ lo, hi float64 }

// spanOf returns the range of the finite values in data; it is [0, 0] if
// there are none.
func spanOf(data ...[]float64) span {
	s := span{math.Inf(1), math.Inf(-1)}
	for _, d := range data {
		for _, v := range d {
			if finite(v) {
				s.lo = min(s.lo, v)
				s.hi = max(s.hi, v)
			}
		}
	}
	if s.lo > s.hi {
		return span{}
	}
	return s
}

// frac returns where v lies in s: 0 at lo, 1 at hi, beyond them outside.
// An empty range (lo == hi) puts every value at 0.5.
func (s span) frac(v float64) float64 {
	if !(s.hi > s.lo) {
		return 0.5
	}
	// Halving first keeps hi-lo finite even for ±MaxFloat64.
	return (v/2 - s.lo/2) / (s.hi/2 - s.lo/2)
}

// finite reports whether v is neither NaN nor ±Inf.
func finite(v float64) bool {
	return !math.IsNaN(v) && !math.IsInf(v, 0)
}

// formatValue writes v compactly, for labels.
func formatValue(v float64) string {
	return fmt.Sprintf("%.4g", v)
}
