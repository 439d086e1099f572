package plot

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"math"
)

// Default line plot size.
const (
	lineWidth  = 640
	lineHeight = 400
)

// farOff bounds, in plot heights, how far off the axes a value is placed,
// keeping pixel coordinates finite and the clipped lines accurate.
const farOff = 1e6

// Lines writes a PNG line plot of one or more series, each drawn through
// its values at x = 0, 1, 2, ... in a colour of its own, on axes whose ends
// are labelled with the values they stand for. NaN and ±Inf values leave
// gaps; a finite value with no finite neighbour is drawn as a dot. Options
// describes the size and the y range.
func Lines(w io.Writer, series [][]float64, opts Options) error {
	if err := checkSeries(series); err != nil {
		return err
	}
	if err := opts.check(); err != nil {
		return err
	}
	l, err := layoutLines(longest(series), opts.span(series...), opts)
	if err != nil {
		return err
	}
	img := newCanvas(l.size)
	drawTitle(img, opts.Title, l.margin, l.scale)
	drawAxes(img, l)
	for i, s := range series {
		drawSeries(img, l, s, seriesColours[i%len(seriesColours)])
	}
	return encode(w, img)
}

// checkSeries reports whether there is nothing to draw.
func checkSeries(series [][]float64) error {
	if len(series) == 0 {
		return errors.New("plot: no series to draw")
	}
	for i, s := range series {
		if len(s) == 0 {
			return fmt.Errorf("plot: series %d is empty", i)
		}
	}
	return nil
}

// longest returns the length of the longest series.
func longest(series [][]float64) int {
	n := 0
	for _, s := range series {
		n = max(n, len(s))
	}
	return n
}

// lineLayout says where each part of a line plot goes.
type lineLayout struct {
	size   image.Point     // of the whole picture
	scale  int             // of the text, and width of the lines
	margin int             // around and between the parts
	plot   image.Rectangle // the data area, the axes just outside it
	xs, ys span            // the values at its left and right, bottom and top
}

// layoutLines lays out a plot of series up to n values long whose y range
// is ys.
func layoutLines(n int, ys span, opts Options) (lineLayout, error) {
	size := image.Pt(orDefault(opts.Width, lineWidth), orDefault(opts.Height, lineHeight))
	scale := textScale(size.X, size.Y)
	m := 4 * scale
	lineH := textHeight(scale)
	xs := span{0, float64(max(n-1, 1))}
	yLabelW := max(textWidth(formatValue(ys.hi), scale), textWidth(formatValue(ys.lo), scale))
	plot := image.Rect(
		m+yLabelW+m+scale,                           // y labels, gap, axis
		m+titleHeight(opts.Title, m, scale)+lineH/2, // the top label's upper half
		size.X-m-textWidth(formatValue(xs.hi), scale)/2,
		size.Y-m-lineH-m-scale, // x labels, gap, axis
	)
	if plot.Dx() < 2 || plot.Dy() < 2 {
		return lineLayout{}, fmt.Errorf("plot: picture %dx%d is too small for this line plot: it needs at least %dx%d",
			size.X, size.Y, size.X-plot.Dx()+2, size.Y-plot.Dy()+2)
	}
	return lineLayout{size: size, scale: scale, margin: m, plot: plot, xs: xs, ys: ys}, nil
}

// at returns where the value y at x is drawn.
func (l lineLayout) at(x, y float64) point {
	fx := l.xs.frac(x)
	fy := max(-farOff, min(farOff, l.ys.frac(y)))
	return point{
		x: float64(l.plot.Min.X) + fx*float64(l.plot.Dx()-1),
		y: float64(l.plot.Max.Y-1) - fy*float64(l.plot.Dy()-1),
	}
}

// drawAxes draws the axes along the left and bottom of the plot, and labels
// their ends.
func drawAxes(img *image.RGBA, l lineLayout) {
	p, s := l.plot, l.scale
	fill(img, image.Rect(p.Min.X-s, p.Min.Y, p.Min.X, p.Max.Y+s), ink)
	fill(img, image.Rect(p.Min.X-s, p.Max.Y, p.Max.X, p.Max.Y+s), ink)

	half := textHeight(s) / 2
	right := p.Min.X - s - l.margin // of the y labels
	for _, y := range []struct {
		v  float64
		at int
	}{{l.ys.hi, p.Min.Y}, {l.ys.lo, p.Max.Y - 1}} {
		label := formatValue(y.v)
		drawText(img, image.Pt(right-textWidth(label, s), y.at-half), label, s, ink)
	}

	top := p.Max.Y + s + l.margin // of the x labels
	for _, x := range []struct {
		v  float64
		at int
	}{{l.xs.lo, p.Min.X}, {l.xs.hi, p.Max.X - 1}} {
		label := formatValue(x.v)
		drawText(img, image.Pt(x.at-textWidth(label, s)/2, top), label, s, ink)
	}
}

// drawSeries draws ys as a line of colour c.
func drawSeries(img *image.RGBA, l lineLayout, ys []float64, c color.RGBA) {
	for i, y := range ys {
		if !finite(y) {
			continue
		}
		p := l.at(float64(i), y)
		switch {
		case i+1 < len(ys) && finite(ys[i+1]):
			drawSegment(img, l.plot, p, l.at(float64(i+1), ys[i+1]), l.scale, c)
		case i == 0 || !finite(ys[i-1]):
			drawSegment(img, l.plot, p, p, l.scale, c) // a dot
		}
	}
}

// point is a position in the picture, in pixels.
type point struct{ x, y float64 }

// lerp returns the point a fraction t of the way from p to q.
func (p point) lerp(q point, t float64) point {
	return point{p.x + t*(q.x-p.x), p.y + t*(q.y-p.y)}
}

// drawSegment draws the part of the segment p–q inside r with a square pen
// of the given width and colour c.
func drawSegment(img *image.RGBA, r image.Rectangle, p, q point, pen int, c color.RGBA) {
	p, q, ok := clipSegment(p, q, r)
	if !ok {
		return
	}
	n := int(math.Ceil(max(math.Abs(q.x-p.x), math.Abs(q.y-p.y))))
	for i := 0; i <= n; i++ {
		at := p.lerp(q, float64(i)/float64(max(n, 1)))
		x, y := int(math.Round(at.x)), int(math.Round(at.y))
		dot := image.Rect(x-(pen-1)/2, y-(pen-1)/2, x+pen/2+1, y+pen/2+1)
		fill(img, dot.Intersect(r), c)
	}
}

// clipSegment clips the segment p–q to the pixel centres of r
// (Liang–Barsky), reporting false if none of it is inside.
func clipSegment(p, q point, r image.Rectangle) (point, point, bool) {
	dx, dy := q.x-p.x, q.y-p.y
	t0, t1 := 0.0, 1.0
	// Inside each edge: dir*t <= dist.
	for _, e := range [...]struct{ dir, dist float64 }{
		{-dx, p.x - float64(r.Min.X)},
		{dx, float64(r.Max.X-1) - p.x},
		{-dy, p.y - float64(r.Min.Y)},
		{dy, float64(r.Max.Y-1) - p.y},
	} {
		switch {
		case e.dir == 0 && e.dist < 0:
			return p, q, false
		case e.dir < 0:
			t0 = max(t0, e.dist/e.dir)
		case e.dir > 0:
			t1 = min(t1, e.dist/e.dir)
		}
	}
	if t0 > t1 {
		return p, q, false
	}
	return p.lerp(q, t0), p.lerp(q, t1), true
}
