// Package plot draws numeric data as PNG pictures, using nothing beyond the
// standard library. It turns fields and time series gathered from a
// simulation into images, from Go programs and from the console's
// plot(T, "T.png").
//
// It draws two kinds of picture:
//
//   - HeatMap colours each cell of a rows × cols array (row 0 at the top)
//     with the viridis colour map, beside a colour bar labelled with the
//     values its ends stand for. NaN and ±Inf cells are drawn grey and do
//     not count towards the range. When the array has more cells along a
//     side than the picture has pixels, each pixel shows the mean of the
//     finite cells it covers (grey if there are none); when it has fewer,
//     each cell becomes a block of pixels (nearest neighbour).
//   - Lines draws one or more series, each a line through its values at
//     x = 0, 1, 2, ..., on axes labelled with the values at their ends.
//     NaN and ±Inf values leave gaps in a line and do not count towards
//     the range.
//
// Auto picks between them from the shape of the data, and WriteFile writes
// Auto's picture to a file.
//
// The range of values shown is that of the finite data unless
// Options.Min and Options.Max fix it. Data whose values are all equal is
// drawn at the middle of the colour map or of the y axis.
//
// Text is drawn with a built-in 5×7 pixel font of digits, letters (lower
// case drawn as upper case) and common punctuation; any other character is
// drawn as a box. Numbers are written as with %.4g.
package plot
