package plot

import (
	"fmt"
	"image"
	"io"
	"math"
)

// Default heat map cell area: its longer side, and the most pixels a cell
// side is scaled up to.
const (
	heatSide   = 512
	maxUpscale = 8
)

// HeatMap writes a PNG heat map of a rows × cols array held in row-major
// order (row 0 at the top, column 0 at the left), with a colour bar whose
// ends are labelled with the values they stand for. The package
// documentation describes the colours, NaN and ±Inf cells and resampling;
// Options describes the size and the range.
func HeatMap(w io.Writer, data []float64, rows, cols int, opts Options) error {
	if err := checkGrid(len(data), rows, cols); err != nil {
		return err
	}
	if err := opts.check(); err != nil {
		return err
	}
	s := opts.span(data)
	l, err := layoutHeatMap(rows, cols, s, opts)
	if err != nil {
		return err
	}
	img := newCanvas(l.size)
	drawTitle(img, opts.Title, l.margin, l.scale)
	paintCells(img, l.cells, data, rows, cols, s)
	paintBar(img, l.bar)
	drawText(img, l.hiAt, formatValue(s.hi), l.scale, ink)
	drawText(img, l.loAt, formatValue(s.lo), l.scale, ink)
	return encode(w, img)
}

// checkGrid reports whether n values cannot form a rows × cols array.
func checkGrid(n, rows, cols int) error {
	if rows <= 0 || cols <= 0 {
		return fmt.Errorf("plot: heat map of %d rows x %d cols: rows and cols must be positive", rows, cols)
	}
	if n%cols != 0 || n/cols != rows {
		return fmt.Errorf("plot: len(data) = %d, want rows*cols = %d*%d", n, rows, cols)
	}
	return nil
}

// heatLayout says where each part of a heat map goes.
type heatLayout struct {
	size       image.Point     // of the whole picture
	scale      int             // of the text
	margin     int             // around and between the parts
	cells      image.Rectangle // where the array is drawn
	bar        image.Rectangle // the colour bar
	hiAt, loAt image.Point     // top-left corners of the bar's labels
}

// layoutHeatMap lays out the heat map of a rows × cols array showing the
// values in s.
func layoutHeatMap(rows, cols int, s span, opts Options) (heatLayout, error) {
	cw, ch := defaultCellArea(rows, cols)
	scale := textScale(orDefault(opts.Width, cw), orDefault(opts.Height, ch))
	m := 4 * scale
	barW := 4 * m
	lineH := textHeight(scale)
	labelW := max(textWidth(formatValue(s.hi), scale), textWidth(formatValue(s.lo), scale))
	top := m + titleHeight(opts.Title, m, scale)
	// Everything but the cells: across, margin, cells, gap, bar, gap,
	// labels, margin; down, title, cells, margin.
	extra := image.Pt(m+2*m+barW+m+labelW+m, top+m)
	minBarH := 2*lineH + m // the labels must not overlap

	size := extra.Add(image.Pt(cw, max(ch, minBarH)))
	size.X = max(size.X, textWidth(opts.Title, scale)+2*m)
	if opts.Width > 0 {
		size.X = opts.Width
		cw = size.X - extra.X
	}
	if opts.Height > 0 {
		size.Y = opts.Height
		ch = size.Y - extra.Y
	}
	if cw < 1 || size.Y-extra.Y < minBarH {
		return heatLayout{}, fmt.Errorf("plot: picture %dx%d is too small for this heat map: it needs at least %dx%d",
			size.X, size.Y, extra.X+1, extra.Y+minBarH)
	}

	cells := image.Rect(m, top, m+cw, top+ch)
	bar := image.Rect(cells.Max.X+2*m, top, cells.Max.X+2*m+barW, size.Y-m)
	return heatLayout{
		size:   size,
		scale:  scale,
		margin: m,
		cells:  cells,
		bar:    bar,
		hiAt:   image.Pt(bar.Max.X+m, bar.Min.Y),
		loAt:   image.Pt(bar.Max.X+m, bar.Max.Y-lineH),
	}, nil
}

// defaultCellArea returns the default size of the area the cells of a
// rows × cols array are drawn in: whole square cells of 1 to maxUpscale
// pixels, the longer side at most heatSide; or, for arrays longer than
// that, heatSide pixels along the longer side, keeping the aspect.
func defaultCellArea(rows, cols int) (w, h int) {
	long := max(rows, cols)
	if long <= heatSide {
		k := min(maxUpscale, heatSide/long)
		return cols * k, rows * k
	}
	shrink := func(n int) int {
		return max(1, int(math.Round(float64(n)*heatSide/float64(long))))
	}
	return shrink(cols), shrink(rows)
}

// paintCells draws the rows × cols array data into r. Each pixel shows the
// mean of the finite cells it covers.
func paintCells(img *image.RGBA, r image.Rectangle, data []float64, rows, cols int, s span) {
	w, h := r.Dx(), r.Dy()
	for y := range h {
		r0, r1 := cover(y, h, rows)
		for x := range w {
			c0, c1 := cover(x, w, cols)
			v := mean(data, cols, r0, r1, c0, c1)
			img.SetRGBA(r.Min.X+x, r.Min.Y+y, cellColour(v, s))
		}
	}
}

// cover returns the cells [lo, hi) out of n that pixel i out of m shows.
// If there are fewer pixels than cells, successive pixels cover successive
// runs of cells; else each pixel shows the cell it falls in.
func cover(i, m, n int) (lo, hi int) {
	lo = i * n / m
	return lo, max((i+1)*n/m, lo+1)
}

// mean returns the mean of the finite values among rows [r0, r1) and
// columns [c0, c1) of the row-major array data of the given width, or NaN
// if there are none.
func mean(data []float64, cols, r0, r1, c0, c1 int) float64 {
	sum, n := 0.0, 0
	for r := r0; r < r1; r++ {
		for _, v := range data[r*cols+c0 : r*cols+c1] {
			if finite(v) {
				sum += v
				n++
			}
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}

// paintBar draws the colour map into r, its high end at the top.
func paintBar(img *image.RGBA, r image.Rectangle) {
	h := r.Dy()
	for y := range h {
		c := viridis(1 - float64(y)/float64(max(h-1, 1)))
		fill(img, image.Rect(r.Min.X, r.Min.Y+y, r.Max.X, r.Min.Y+y+1), c)
	}
}
