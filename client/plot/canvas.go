package plot

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
)

// largeText is the picture side, in pixels, from which text is drawn at
// twice the font's size.
const largeText = 384

// textScale returns the scale to draw text at in a picture of about the
// given size.
func textScale(w, h int) int {
	if max(w, h) >= largeText {
		return 2
	}
	return 1
}

// orDefault returns n if it is set (positive), else def.
func orDefault(n, def int) int {
	if n > 0 {
		return n
	}
	return def
}

// newCanvas returns a picture of the given size filled with the background.
func newCanvas(size image.Point) *image.RGBA {
	img := image.NewRGBA(image.Rectangle{Max: size})
	fill(img, img.Bounds(), background)
	return img
}

// fill paints the part of r inside img with c.
func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	draw.Draw(img, r, &image.Uniform{C: c}, image.Point{}, draw.Src)
}

// drawTitle draws title centred at the top of img, a margin m from the
// edge; it draws nothing for an empty title.
func drawTitle(img *image.RGBA, title string, m, scale int) {
	x := max(m, (img.Bounds().Dx()-textWidth(title, scale))/2)
	drawText(img, image.Pt(x, m), title, scale, ink)
}

// titleHeight returns the height taken by a title and the gap below it.
func titleHeight(title string, m, scale int) int {
	if title == "" {
		return 0
	}
	return textHeight(scale) + m
}

// encode writes img to w as a PNG.
func encode(w io.Writer, img image.Image) error {
	if err := png.Encode(w, img); err != nil {
		return fmt.Errorf("plot: writing PNG: %w", err)
	}
	return nil
}
