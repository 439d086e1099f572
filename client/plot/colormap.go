package plot

import (
	"image/color"
	"math"
)

// viridisAnchors samples matplotlib's viridis colour map (Stéfan van der
// Walt and Nathaniel Smith, CC0) at 16 evenly spaced points, from its dark
// purple low end to its yellow high end. Viridis is perceptually uniform,
// readable in grey scale and by the colour blind. Interpolating linearly
// between the anchors stays within 7/255 of the full 256-entry table.
var viridisAnchors = [...]color.RGBA{
	{68, 1, 84, 255}, {72, 26, 108, 255}, {71, 47, 125, 255}, {65, 68, 135, 255},
	{57, 86, 140, 255}, {49, 104, 142, 255}, {42, 120, 142, 255}, {35, 136, 142, 255},
	{31, 152, 139, 255}, {34, 168, 132, 255}, {53, 183, 121, 255}, {84, 197, 104, 255},
	{122, 209, 81, 255}, {165, 219, 54, 255}, {210, 226, 27, 255}, {253, 231, 37, 255},
}

// Colours of everything but the data.
var (
	background = color.RGBA{255, 255, 255, 255}
	ink        = color.RGBA{0, 0, 0, 255}       // text and axes
	missing    = color.RGBA{128, 128, 128, 255} // NaN and ±Inf heat map cells
)

// seriesColours are the colours of successive series in a line plot
// (Tableau 10 without its grey), reused in turn beyond the ninth.
var seriesColours = [...]color.RGBA{
	{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255},
	{214, 39, 40, 255}, {148, 103, 189, 255}, {140, 86, 75, 255},
	{227, 119, 194, 255}, {188, 189, 34, 255}, {23, 190, 207, 255},
}

// viridis returns the colour at t in the colour map, t clamped to [0, 1].
func viridis(t float64) color.RGBA {
	switch {
	case !(t > 0): // NaN too
		t = 0
	case t > 1:
		t = 1
	}
	x := t * float64(len(viridisAnchors)-1)
	i := min(int(x), len(viridisAnchors)-2)
	f := x - float64(i)
	a, b := viridisAnchors[i], viridisAnchors[i+1]
	return color.RGBA{lerp(a.R, b.R, f), lerp(a.G, b.G, f), lerp(a.B, b.B, f), 255}
}

// lerp returns the channel value a fraction f of the way from a to b.
func lerp(a, b uint8, f float64) uint8 {
	return uint8(math.Round(float64(a) + f*(float64(b)-float64(a))))
}

// cellColour returns the colour of a cell of value v in a heat map of range s.
func cellColour(v float64, s span) color.RGBA {
	if !finite(v) {
		return missing
	}
	return viridis(s.frac(v))
}
